//! `ikkuna audit verify`: walks the chain through one or more audit files (oldest first) and
//! names every line where it breaks, and how: edited, removed, inserted or reordered.
//!
//! Each line holds its sequence number and the SHA-256 of the line before. An edited line no
//! longer hashes to what its successor recorded; a removed line leaves a gap in the sequence; an
//! inserted line repeats or skips a number and breaks the hashes around it; reordered lines run
//! the sequence backwards. The last line's hash is printed as the chain head: compare it with the
//! head the gateway logged at rotation or shutdown to detect a cut-off or edited tail.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::record::{hash_line, Line, GENESIS};

/// One place where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line number in that file.
    pub line: usize,
    /// What is wrong there.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.what)
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Lines read.
    pub records: u64,
    /// Sequence number of the first line read.
    pub first_seq: Option<u64>,
    /// Sequence number and hash of the last line read: the chain head.
    pub head: Option<(u64, String)>,
    /// Every break found, in file order.
    pub problems: Vec<Problem>,
}

/// Verifies `files` as one chain, in the order given.
pub fn verify(files: &[PathBuf]) -> std::io::Result<Report> {
    let mut report = Report::default();
    let mut expected: Option<u64> = None;
    let mut prev_hash: Option<String> = None;
    for path in files {
        let file = std::fs::File::open(path)?;
        for (index, raw) in std::io::BufReader::new(file).split(b'\n').enumerate() {
            let raw = raw?;
            check_line(
                path,
                index + 1,
                &raw,
                &mut expected,
                &mut prev_hash,
                &mut report,
            );
        }
    }
    Ok(report)
}

fn check_line(
    path: &Path,
    number: usize,
    raw: &[u8],
    expected: &mut Option<u64>,
    prev_hash: &mut Option<String>,
    report: &mut Report,
) {
    let mut problem = |what: String| {
        report.problems.push(Problem {
            file: path.to_path_buf(),
            line: number,
            what,
        })
    };
    let hash = hash_line(raw);
    report.records += 1;
    let line: Line = match serde_json::from_slice(raw) {
        Ok(line) => line,
        Err(_) => {
            problem("not an audit record: edited or inserted".to_owned());
            *expected = None;
            *prev_hash = Some(hash);
            return;
        }
    };
    if report.first_seq.is_none() {
        report.first_seq = Some(line.seq);
    }
    let prev_ok = match prev_hash.as_deref() {
        Some(h) => line.prev == h,
        None => line.seq != 0 || line.prev == GENESIS,
    };
    match *expected {
        Some(e) if line.seq > e => problem(format!(
            "sequence jumps from {} to {}: {} line(s) removed before this one{}",
            e.saturating_sub(1),
            line.seq,
            line.seq - e,
            if prev_ok { "" } else { " (or lines reordered)" }
        )),
        Some(e) if line.seq < e => problem(format!(
            "sequence goes back from {} to {}: line inserted or lines reordered",
            e.saturating_sub(1),
            line.seq
        )),
        _ if !prev_ok => problem(if prev_hash.is_some() {
            format!(
                "prev does not match the hash of line {}: that line was edited, or this one was inserted",
                number.saturating_sub(1).max(1)
            )
        } else {
            "first line of the chain with a prev other than the genesis hash: edited".to_owned()
        }),
        _ => {}
    }
    *expected = Some(line.seq + 1);
    *prev_hash = Some(hash.clone());
    report.head = Some((line.seq, hash));
}
