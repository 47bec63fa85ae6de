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

/// Group commit: concurrent accesses share one sync, and none is answered before a sync that
/// covers its own line. The sync is a seam that records the file's length each time it runs and
/// holds the first sync until the other appends are queued, so the batching is not left to timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_accesses_share_one_sync_and_each_is_durable_before_its_answer() {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    const LATER: usize = 63;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("audit.jsonl");
    let syncs = Arc::new(AtomicUsize::new(0));
    let synced_len = Arc::new(AtomicU64::new(0));
    let (open_gate, gate) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let sync: writer::SyncFn = {
        let (syncs, synced_len) = (Arc::clone(&syncs), Arc::clone(&synced_len));
        Box::new(move |f: &std::fs::File| {
            if syncs.fetch_add(1, Ordering::SeqCst) == 0 {
                // The first batch (one line) stays in its sync until the rest are queued.
                let _ = gate.lock().expect("gate").recv();
            }
            f.sync_data()?;
            synced_len.store(f.metadata()?.len(), Ordering::SeqCst);
            Ok(())
        })
    };
    let mut durable = settings(&file, 0);
    durable.fsync = true;
    let (handle, thread) = writer::start_with_sync(durable, sync).expect("writer starts");

    // Each append notes how many bytes were synced when its answer came.
    let append = |n: i64| {
        let (handle, synced_len) = (handle.clone(), Arc::clone(&synced_len));
        tokio::spawn(async move {
            let seq = handle.append(access(n)).await.expect("written");
            (seq, synced_len.load(Ordering::SeqCst))
        })
    };
    let first = append(0);
    while syncs.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let later: Vec<_> = (1..=LATER as i64).map(append).collect();
    while handle.queued() < LATER {
        tokio::task::yield_now().await;
    }
    open_gate.send(()).expect("gate");
    let mut answers = vec![first.await.expect("task")];
    for task in later {
        answers.push(task.await.expect("task"));
    }
    drop(handle);
    thread.join().expect("writer thread ends");

    // 64 lines, 2 syncs: the lone first line's, then one for the 63 that queued behind it.
    assert_eq!(syncs.load(Ordering::SeqCst), 2, "one sync per batch");
    let text = std::fs::read(&file).expect("read");
    let line_ends: Vec<u64> = text
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(at, _)| at as u64 + 1)
        .collect();
    assert_eq!(line_ends.len(), LATER + 1);
    let mut seqs: Vec<u64> = answers.iter().map(|(seq, _)| *seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..=LATER as u64).collect::<Vec<_>>(),
        "one line each"
    );
    for (seq, synced) in answers {
        let end = line_ends[usize::try_from(seq).expect("seq")];
        assert!(
            synced >= end,
            "line {seq} (ends at byte {end}) was answered when only {synced} bytes were synced"
        );
    }
}
