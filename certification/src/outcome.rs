//! What one case concluded, with the evidence behind the verdict and the case's own log.

use serde::Serialize;

/// A case's (or a requirement's) verdict.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// The check ran and the requirement held.
    Pass,
    /// The check ran and the requirement was violated.
    Fail,
    /// The check could not run to a conclusion (setup failed, the gateway did not answer).
    Error,
    /// The deployment has no such feature to check (for example no audit file).
    NotApplicable,
    /// The check could not be made in this mode or on this machine (for example no openssl).
    NotChecked,
    /// A requirement without any case: nothing proves it.
    Gap,
}

impl Verdict {
    /// Whether a mandatory requirement with this verdict blocks certification.
    pub fn blocks(self) -> bool {
        matches!(self, Verdict::Fail | Verdict::Error)
    }
}

/// The result of one case.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The verdict.
    pub verdict: Verdict,
    /// Short facts that justify the verdict.
    pub evidence: Vec<String>,
    /// What the case did, step by step.
    pub log: Vec<String>,
}

impl Default for Outcome {
    fn default() -> Self {
        Self::new()
    }
}

impl Outcome {
    /// An outcome still being built (its verdict is `Error` until decided).
    pub fn new() -> Self {
        Self {
            verdict: Verdict::Error,
            evidence: Vec::new(),
            log: Vec::new(),
        }
    }

    /// Adds a log line.
    pub fn log(&mut self, line: impl Into<String>) {
        self.log.push(line.into());
    }

    /// Adds a piece of evidence.
    pub fn evidence(&mut self, line: impl Into<String>) {
        self.evidence.push(line.into());
    }

    /// Concludes with a verdict and a final piece of evidence.
    pub fn conclude(mut self, verdict: Verdict, why: impl Into<String>) -> Self {
        self.verdict = verdict;
        self.evidence.push(why.into());
        self
    }

    /// Pass.
    pub fn pass(self, why: impl Into<String>) -> Self {
        self.conclude(Verdict::Pass, why)
    }

    /// Fail.
    pub fn fail(self, why: impl Into<String>) -> Self {
        self.conclude(Verdict::Fail, why)
    }

    /// Could not conclude.
    pub fn error(self, why: impl Into<String>) -> Self {
        self.conclude(Verdict::Error, why)
    }

    /// Pass when `ok`, else fail, with the matching reason.
    pub fn decide(self, ok: bool, pass: impl Into<String>, fail: impl Into<String>) -> Self {
        if ok {
            self.pass(pass)
        } else {
            self.fail(fail)
        }
    }
}
