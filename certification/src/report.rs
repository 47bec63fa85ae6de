//! The report: JSON for machines, one self-contained HTML page for people (no script, no fetch,
//! no external style), and the verdict that sets the exit status.

use std::path::Path;

use serde::Serialize;

use crate::catalogue::Requirement;
use crate::outcome::{Outcome, Verdict};

/// One case's result inside a requirement.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseResult {
    /// Case id.
    pub id: String,
    /// Its outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// How long it ran.
    pub duration_ms: u128,
}

/// One requirement with its aggregated verdict.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequirementResult {
    /// The catalogue entry.
    #[serde(flatten)]
    pub requirement: Requirement,
    /// Aggregated verdict.
    pub verdict: Verdict,
    /// Listed in the expected-failures file.
    pub expected_failure: bool,
    /// Its cases' results.
    pub results: Vec<CaseResult>,
}

/// Counts and the overall decision.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// `CERTIFIED` or `NOT CERTIFIED`.
    pub decision: String,
    /// Requirements in the catalogue.
    pub requirements: usize,
    /// Per verdict.
    pub pass: usize,
    /// Per verdict.
    pub fail: usize,
    /// Per verdict.
    pub error: usize,
    /// Per verdict.
    pub not_applicable: usize,
    /// Per verdict.
    pub not_checked: usize,
    /// Requirements without cases.
    pub gaps: usize,
    /// Mandatory requirements that failed and were not expected to.
    pub mandatory_failures: Vec<String>,
    /// Mandatory requirements neither proven nor failed (not checked, gaps): certification is
    /// not claimed while any remain.
    pub mandatory_unproven: Vec<String>,
    /// Failures listed in the expected-failures file that happened.
    pub expected_failures: Vec<String>,
    /// Listed as expected failures, but they did not fail: the list is out of date.
    pub expected_failures_not_seen: Vec<String>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `ikkuna-certify`.
    pub suite: String,
    /// Suite version.
    pub version: String,
    /// `launched` (mode 1) or `attached` (mode 2).
    pub mode: String,
    /// The operator API certified.
    pub gateway_url: String,
    /// What was certified: binary, version, commit, SHA-256, configuration (secrets removed).
    pub subject: crate::subject::Subject,
    /// Cases the suite has.
    pub cases: usize,
    /// When the run started and ended (RFC 3339).
    pub started_at: String,
    /// See `started_at`.
    pub finished_at: String,
    /// Wall time of the run.
    pub duration_ms: u128,
    /// The decision and counts.
    pub summary: Summary,
    /// Every requirement.
    pub requirements: Vec<RequirementResult>,
}

/// Aggregates case verdicts into a requirement verdict.
pub fn aggregate(results: &[CaseResult]) -> Verdict {
    let v: Vec<Verdict> = results.iter().map(|r| r.outcome.verdict).collect();
    if v.is_empty() {
        Verdict::Gap
    } else if v.contains(&Verdict::Fail) {
        Verdict::Fail
    } else if v.contains(&Verdict::Error) {
        Verdict::Error
    } else if v.iter().all(|x| *x == Verdict::Pass) {
        Verdict::Pass
    } else if v.contains(&Verdict::NotChecked) {
        Verdict::NotChecked
    } else {
        Verdict::NotApplicable
    }
}

/// Counts verdicts and decides; `partial` when only some cases were selected.
pub fn summarise(reqs: &[RequirementResult], partial: bool) -> Summary {
    let count = |v: Verdict| reqs.iter().filter(|r| r.verdict == v).count();
    let mandatory_failures = reqs
        .iter()
        .filter(|r| r.requirement.mandatory && r.verdict.blocks() && !r.expected_failure)
        .map(|r| r.requirement.id.clone())
        .collect::<Vec<_>>();
    // A gap is never hidden under a certification, mandatory or not.
    let mandatory_unproven = reqs
        .iter()
        .filter(|r| {
            (r.requirement.mandatory && r.verdict == Verdict::NotChecked)
                || r.verdict == Verdict::Gap
        })
        .map(|r| r.requirement.id.clone())
        .collect::<Vec<_>>();
    let decision = if !mandatory_failures.is_empty() {
        "NOT CERTIFIED".to_owned()
    } else if partial {
        "PARTIAL RUN: NO MANDATORY FAILURE (not a certification)".to_owned()
    } else if !mandatory_unproven.is_empty() {
        format!(
            "NO MANDATORY FAILURE, BUT {} REQUIREMENT(S) NOT PROVEN (not a certification)",
            mandatory_unproven.len()
        )
    } else {
        "CERTIFIED".to_owned()
    };
    Summary {
        decision,
        mandatory_unproven,
        requirements: reqs.len(),
        pass: count(Verdict::Pass),
        fail: count(Verdict::Fail),
        error: count(Verdict::Error),
        not_applicable: count(Verdict::NotApplicable),
        not_checked: count(Verdict::NotChecked),
        gaps: count(Verdict::Gap),
        mandatory_failures,
        expected_failures: reqs
            .iter()
            .filter(|r| r.expected_failure && r.verdict.blocks())
            .map(|r| r.requirement.id.clone())
            .collect(),
        expected_failures_not_seen: reqs
            .iter()
            .filter(|r| r.expected_failure && !r.verdict.blocks())
            .map(|r| r.requirement.id.clone())
            .collect(),
    }
}

impl Report {
    /// Whether no mandatory requirement failed. Certification proper also needs every mandatory
    /// requirement proven and no gap: see [`Report::certified`].
    pub fn no_mandatory_failure(&self) -> bool {
        self.summary.mandatory_failures.is_empty()
    }

    /// Whether the decision is CERTIFIED (a full run, every mandatory requirement proven, no gap).
    pub fn certified(&self) -> bool {
        self.summary.decision == "CERTIFIED"
    }

    /// The exit status: 0 certified, or a partial run with no mandatory failure; 1 otherwise.
    pub fn exit_ok(&self) -> bool {
        self.certified()
            || (self.no_mandatory_failure() && self.summary.decision.starts_with("PARTIAL"))
    }

    /// The verdict of a requirement.
    pub fn verdict_of(&self, id: &str) -> Option<Verdict> {
        self.requirements
            .iter()
            .find(|r| r.requirement.id == id)
            .map(|r| r.verdict)
    }

    /// Writes `DIR/report.json` and `DIR/report.html`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(self)?)?;
        std::fs::write(dir.join("report.html"), self.html())?;
        Ok(())
    }

    /// The HTML page.
    pub fn html(&self) -> String {
        let s = &self.summary;
        let mut h = String::new();
        h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
        h.push_str("<title>Ikkuna certification report</title><style>");
        h.push_str(STYLE);
        h.push_str("</style></head><body>\n");
        h.push_str(&format!(
            "<h1>Ikkuna certification report</h1>\n<p class=\"decision {}\">{}</p>\n",
            if s.decision == "CERTIFIED" {
                "ok"
            } else {
                "bad"
            },
            esc(&s.decision)
        ));
        let sub = &self.subject;
        h.push_str(&format!(
            "<table class=\"meta\"><tr><th>Gateway</th><td>{}</td></tr>\
             <tr><th>Binary</th><td>{}</td></tr><tr><th>Version</th><td>{}</td></tr>\
             <tr><th>Commit</th><td>{}</td></tr><tr><th>SHA-256</th><td><code>{}</code></td></tr>\
             <tr><th>Mode</th><td>{}</td></tr>\
             <tr><th>Started</th><td>{}</td></tr><tr><th>Finished</th><td>{}</td></tr>\
             <tr><th>Duration</th><td>{:.1} s</td></tr>\
             <tr><th>Suite</th><td>{} {} ({} cases)</td></tr>\
             <tr><th>Configuration</th><td>{}</td></tr></table>\n",
            esc(&self.gateway_url),
            esc(&sub.binary),
            esc(&sub.version),
            esc(&sub.commit),
            esc(&sub.sha256),
            esc(&self.mode),
            esc(&self.started_at),
            esc(&self.finished_at),
            self.duration_ms as f64 / 1000.0,
            esc(&self.suite),
            esc(&self.version),
            self.cases,
            esc(&sub.configuration_file),
        ));
        if !sub.configuration.is_empty() || !sub.overrides.is_empty() {
            h.push_str("<details><summary>Configuration checked (secrets removed)</summary><pre>");
            h.push_str(&esc(&sub.configuration));
            if !sub.overrides.is_empty() {
                h.push_str("\n\n# overrides\n");
                h.push_str(&esc(&sub.overrides.join("\n")));
            }
            h.push_str("</pre></details>\n");
        }
        h.push_str(&format!(
            "<p class=\"counts\">{} requirements: {} pass, {} fail, {} error, {} not applicable, \
             {} not checked, {} gaps.</p>\n",
            s.requirements, s.pass, s.fail, s.error, s.not_applicable, s.not_checked, s.gaps
        ));
        for (label, list) in [
            ("Mandatory failures", &s.mandatory_failures),
            ("Mandatory requirements not checked", &s.mandatory_unproven),
            ("Expected failures that happened", &s.expected_failures),
            (
                "Expected failures that did not happen",
                &s.expected_failures_not_seen,
            ),
        ] {
            if !list.is_empty() {
                h.push_str(&format!(
                    "<p><b>{label}:</b> {}</p>\n",
                    esc(&list.join(", "))
                ));
            }
        }
        h.push_str(
            "<h2>Summary</h2>\n<table class=\"summary\"><tr><th>Id</th><th>Requirement</th>\
                    <th>Mandatory</th><th>Verdict</th></tr>\n",
        );
        for r in &self.requirements {
            h.push_str(&format!(
                "<tr><td><a href=\"#{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                esc(&r.requirement.title),
                if r.requirement.mandatory { "yes" } else { "no" },
                badge(r.verdict, r.expected_failure),
                id = esc(&r.requirement.id)
            ));
        }
        h.push_str("</table>\n<h2>Requirements</h2>\n");
        for r in &self.requirements {
            h.push_str(&format!(
                "<section id=\"{id}\"><h3>{id} {} {}</h3><p class=\"src\">Source: {} · {}</p>\n",
                badge(r.verdict, r.expected_failure),
                esc(&r.requirement.title),
                esc(&r.requirement.source),
                if r.requirement.mandatory {
                    "mandatory"
                } else {
                    "not mandatory"
                },
                id = esc(&r.requirement.id)
            ));
            if r.results.is_empty() {
                h.push_str("<p class=\"gap\">No case proves this requirement: it is a gap.</p>\n");
            }
            for c in &r.results {
                h.push_str(&format!(
                    "<div class=\"case\"><p><code>{}</code> {} <span class=\"ms\">{} ms</span></p><ul>",
                    esc(&c.id),
                    badge(c.outcome.verdict, false),
                    c.duration_ms
                ));
                for e in &c.outcome.evidence {
                    h.push_str(&format!("<li>{}</li>", esc(e)));
                }
                h.push_str("</ul><details><summary>log</summary><pre>");
                h.push_str(&esc(&c.outcome.log.join("\n")));
                h.push_str("</pre></details></div>\n");
            }
            h.push_str("</section>\n");
        }
        h.push_str("</body></html>\n");
        h
    }
}

fn badge(v: Verdict, expected: bool) -> String {
    let (class, text) = match v {
        Verdict::Pass => ("pass", "PASS"),
        Verdict::Fail => ("fail", "FAIL"),
        Verdict::Error => ("fail", "ERROR"),
        Verdict::NotApplicable => ("na", "NOT APPLICABLE"),
        Verdict::NotChecked => ("na", "NOT CHECKED"),
        Verdict::Gap => ("gap", "GAP"),
    };
    let suffix = if expected && v.blocks() {
        " (expected)"
    } else {
        ""
    };
    format!("<span class=\"badge {class}\">{text}{suffix}</span>")
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse}.summary td:first-child{white-space:nowrap}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}\
.decision{font-size:1.6em;font-weight:bold}.decision.ok{color:#176f2c}.decision.bad{color:#b3261e}\
.badge{display:inline-block;padding:.1em .5em;border-radius:.3em;font-size:.85em;font-weight:bold;color:#fff}\
.pass{background:#2e7d32}.fail{background:#c62828}.na{background:#757575}.gap{background:#ef6c00}\
p.gap{color:#ef6c00}section{border-top:1px solid #ddd;margin-top:1em}.src{color:#555;font-size:.9em}\
.case{margin-left:1em}.ms{color:#777;font-size:.8em}pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap}";
