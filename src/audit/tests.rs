//! The writer and the verifier together: chains resume after a restart and a torn line, rotate
//! by size without breaking, and each kind of tampering is named at its line.

use std::io::Write;
use std::path::Path;

use super::verify::verify;
use super::writer::{self, rotated_files, WriterSettings};
use super::{Access, Action, Outcome};

fn access(n: i64) -> Access {
    Access {
        time: chrono::Utc::now(),
        request_id: format!("req-{n}"),
        action: Action::MessageRead,
        consent_id: Some("consent-1".to_owned()),
        message_id: Some(n),
        attachment_id: None,
        outcome: Outcome::Ok,
        status: 200,
        reason: None,
        trace_id: Some(format!("trace-{n}")),
        citizen: Some("ab".repeat(32)),
        reply: None,
    }
}

fn settings(file: &Path, max: u64) -> WriterSettings {
    WriterSettings {
        file: file.to_path_buf(),
        max_file_bytes: max,
        rotate_daily: false,
        fsync: false,
    }
}

async fn write(file: &Path, max: u64, range: std::ops::Range<i64>) {
    let (handle, thread) = writer::start(settings(file, max)).expect("writer starts");
    for n in range {
        handle.append(access(n)).await.expect("written");
    }
    drop(handle);
    thread.join().expect("writer thread ends");
}

fn all_files(active: &Path) -> Vec<std::path::PathBuf> {
    let mut files = rotated_files(active);
    files.push(active.to_path_buf());
    files
}

#[tokio::test]
async fn a_restart_and_a_torn_line_resume_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("audit.jsonl");
    write(&file, 0, 0..5).await;
    // A crash in the middle of a line.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .expect("open")
        .write_all(br#"{"seq":5,"time":"#)
        .expect("torn write");
    write(&file, 0, 5..8).await;
    let report = verify(std::slice::from_ref(&file)).expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.records, 8);
    assert_eq!(report.head.expect("head").0, 7);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the audit file is the gateway's only");
    }
}

#[tokio::test]
async fn rotation_by_size_keeps_one_chain_across_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("audit.jsonl");
    write(&file, 4096, 0..40).await;
    write(&file, 4096, 40..60).await;
    let files = all_files(&file);
    assert!(files.len() >= 3, "rotated: {files:?}");
    for f in &files {
        assert!(std::fs::metadata(f).expect("meta").len() <= 4096);
    }
    let report = verify(&files).expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.records, 60);
    // A rotated file missing from the middle is a gap.
    let mut without = files.clone();
    without.remove(1);
    let report = verify(&without).expect("verify");
    assert!(
        report.problems[0].what.contains("removed"),
        "{:?}",
        report.problems
    );
}
