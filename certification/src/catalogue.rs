//! The requirement catalogue: requirement ids, where each comes from (a section of
//! `docs/requirements.md`), whether admission depends on it, the ways an implementation could
//! break it and the case that catches each. Data, not code: `certification/catalogue.toml`.

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The catalogue shipped with the suite.
pub const DEFAULT_CATALOGUE: &str = include_str!("../catalogue.toml");

/// One way an implementation could break a requirement, and the case that fails on it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Break {
    /// The broken behaviour.
    pub how: String,
    /// The case that fails on it.
    pub case: String,
}

/// One requirement.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// Stable id such as `WIN-1`.
    pub id: String,
    /// What must be true.
    pub title: String,
    /// Where it is stated, with its origins: `docs/requirements.md#<id>` and a short summary.
    pub source: String,
    /// Whether a failure blocks certification.
    pub mandatory: bool,
    /// Ids of the cases that prove it.
    pub cases: Vec<String>,
    /// The ways it could be broken, each with the case that catches it.
    pub breaks: Vec<Break>,
}

/// The document the catalogue's sources point into.
pub const SOURCE_DOCUMENT: &str = "docs/requirements.md";

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
            if r.cases.is_empty() {
                problems.push(format!("{}: no case proves it (a gap)", r.id));
            }
            if r.breaks.is_empty() {
                problems.push(format!("{}: no way of breaking it is listed", r.id));
            }
            for b in &r.breaks {
                if !r.cases.contains(&b.case) {
                    problems.push(format!(
                        "{}: break {:?} names case {} it does not have",
                        r.id, b.how, b.case
                    ));
                }
            }
            let anchor = format!("{SOURCE_DOCUMENT}#{}", r.id.to_ascii_lowercase());
            if !r.source.starts_with(&anchor) {
                problems.push(format!("{}: source must start with {anchor}", r.id));
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

    fn document() -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(SOURCE_DOCUMENT);
        std::fs::read_to_string(&path).expect("docs/requirements.md exists")
    }

    #[test]
    fn builtin_catalogue_names_only_known_cases_and_every_case_is_used() {
        let c = Catalogue::builtin().unwrap();
        assert!(
            c.requirements.len() >= 32,
            "{} requirements",
            c.requirements.len()
        );
        for case in crate::cases::ALL {
            assert!(
                c.requirements
                    .iter()
                    .any(|r| r.cases.iter().any(|x| x == case)),
                "case {case} proves no requirement"
            );
        }
    }

    #[test]
    fn every_requirement_is_stated_in_the_source_document_with_its_origins() {
        let doc = document();
        let c = Catalogue::builtin().unwrap();
        for r in &c.requirements {
            let anchor = format!("<a id=\"{}\"></a>", r.id.to_ascii_lowercase());
            let at = doc
                .find(&anchor)
                .unwrap_or_else(|| panic!("{} has no section in {SOURCE_DOCUMENT}", r.id));
            // The section names where the requirement comes from.
            let section = &doc[at..];
            let end = section[anchor.len()..]
                .find("<a id=")
                .map(|e| e + anchor.len())
                .unwrap_or(section.len());
            assert!(
                section[..end].contains("Origin"),
                "{}: its section names no origin",
                r.id
            );
        }
        // Every invariant of the project is proven by some requirement.
        for n in 1..=8 {
            assert!(
                c.requirements
                    .iter()
                    .any(|r| r.source.contains(&format!("invariant {n}"))),
                "invariant {n} is cited by no requirement"
            );
        }
    }

    #[test]
    fn unknown_cases_gaps_and_unsourced_requirements_are_refused() {
        let ok = "[[requirement]]\nid='X-1'\ntitle='t'\nsource='docs/requirements.md#x-1'\nmandatory=true\ncases=['yes']\nbreaks=[{how='h', case='yes'}]\n";
        assert!(Catalogue::parse(ok, &["yes"]).is_ok());
        assert!(
            Catalogue::parse(&ok.replace("cases=['yes']", "cases=['nope']"), &["yes"]).is_err()
        );
        assert!(Catalogue::parse(&ok.replace("cases=['yes']", "cases=[]"), &["yes"]).is_err());
        assert!(Catalogue::parse(&ok.replace("#x-1", "#x-2"), &["yes"]).is_err());
        assert!(Catalogue::parse(
            &ok.replace("breaks=[{how='h', case='yes'}]", "breaks=[]"),
            &["yes"]
        )
        .is_err());
    }
}
