//! The requirement catalogue: requirement ids, their source clauses, whether admission depends on
//! them, and the cases that prove them. Data, not code: `certification/catalogue.toml`.

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The catalogue shipped with the suite.
pub const DEFAULT_CATALOGUE: &str = include_str!("../catalogue.toml");

/// One requirement.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// Stable id such as `WIN-1`.
    pub id: String,
    /// What must be true.
    pub title: String,
    /// The clause it comes from.
    pub source: String,
    /// Whether a failure blocks certification.
    pub mandatory: bool,
    /// Ids of the cases that prove it.
    pub cases: Vec<String>,
}

/// The whole catalogue.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// Requirements in file order.
    #[serde(rename = "requirement")]
    pub requirements: Vec<Requirement>,
}

impl Catalogue {
    /// Parses a catalogue and checks that every case it names exists.
    pub fn parse(text: &str, known_cases: &[&str]) -> anyhow::Result<Self> {
        let catalogue: Catalogue = toml::from_str(text).context("parsing the catalogue")?;
        let mut problems = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for r in &catalogue.requirements {
            if !seen.insert(r.id.clone()) {
                problems.push(format!("{}: duplicate id", r.id));
            }
            for c in &r.cases {
                if !known_cases.contains(&c.as_str()) {
                    problems.push(format!("{}: unknown case {c}", r.id));
                }
            }
        }
        anyhow::ensure!(problems.is_empty(), "catalogue: {}", problems.join("; "));
        Ok(catalogue)
    }

    /// The built-in catalogue.
    pub fn builtin() -> anyhow::Result<Self> {
        Self::parse(DEFAULT_CATALOGUE, crate::cases::ALL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_names_only_known_cases_and_every_case_is_used() {
        let c = Catalogue::builtin().unwrap();
        for case in crate::cases::ALL {
            assert!(
                c.requirements
                    .iter()
                    .any(|r| r.cases.iter().any(|x| x == case)),
                "case {case} proves no requirement"
            );
        }
        for n in 1..=7 {
            assert!(
                c.requirements
                    .iter()
                    .any(|r| r.source.contains(&format!("DESIGN 3.{n}")) && !r.cases.is_empty()),
                "invariant {n} has no case"
            );
        }
    }

    #[test]
    fn unknown_cases_are_refused() {
        let text =
            "[[requirement]]\nid='X-1'\ntitle='t'\nsource='s'\nmandatory=true\ncases=['nope']\n";
        assert!(Catalogue::parse(text, &["yes"]).is_err());
    }
}
