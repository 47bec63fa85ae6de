//! The outbox on a real database file in a temporary directory, and the deliverer against a fake
//! reporter (the real DVV is exercised end to end elsewhere).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::*;

async fn outbox_in(dir: &tempfile::TempDir) -> Outbox {
    Outbox::open_in(dir.path()).await.unwrap()
}

/// What the fake DVV does with each report, in order; the last step repeats.
#[derive(Clone, Copy, Debug)]
enum Step {
    Ok { first_open: bool },
    Fail { retryable: bool },
    Slow(Duration),
}

/// One report as the fake DVV saw it: consent, message, opening id, opened at.
type Call = (String, i64, String, DateTime<Utc>);

#[derive(Default)]
struct FakeDvv {
    script: Mutex<Vec<Step>>,
    calls: Mutex<Vec<Call>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl FakeDvv {
    fn scripted(steps: &[Step]) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(steps.to_vec()),
            ..Self::default()
        })
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl OpeningReporter for FakeDvv {
    async fn report(
        &self,
        consent_id: &str,
        message_id: i64,
        opening_id: &str,
        opened_at: DateTime<Utc>,
    ) -> Result<ReportOutcome, ReportError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        self.calls.lock().unwrap().push((
            consent_id.to_owned(),
            message_id,
            opening_id.to_owned(),
            opened_at,
        ));
        let step = {
            let mut script = self.script.lock().unwrap();
            if script.len() > 1 {
                script.remove(0)
            } else {
                script[0]
            }
        };
        let result = match step {
            Step::Ok { first_open } => Ok(ReportOutcome {
                first_open,
                read_at: opened_at,
                settles_at: None,
            }),
            Step::Fail { retryable } => Err(ReportError {
                permanent: !retryable,
                kind: if retryable {
                    "unavailable"
                } else {
                    "message_not_found"
                },
            }),
            Step::Slow(delay) => {
                tokio::time::sleep(delay).await;
                Ok(ReportOutcome {
                    first_open: true,
                    read_at: opened_at,
                    settles_at: None,
                })
            }
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

fn fast() -> DelivererSettings {
    DelivererSettings {
        concurrency: 4,
        poll_interval: Duration::from_secs(3600),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(80),
    }
}

/// Polls the outbox until `done` holds, failing after 10 s.
async fn until(outbox: &Outbox, done: impl Fn(&OutboxStats) -> bool) -> OutboxStats {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = outbox.stats().await.unwrap();
        if done(&stats) {
            return stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn recording_twice_gives_one_opening() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let first = outbox.record_opening("consent-1", 42).await.unwrap();
    assert!(first.newly_recorded);
    assert!(uuid::Uuid::parse_str(&first.opening_id).is_ok());
    let again = outbox.record_opening("consent-1", 42).await.unwrap();
    assert!(!again.newly_recorded);
    assert_eq!(again.opening_id, first.opening_id);
    assert_eq!(again.opened_at, first.opened_at);
    // Another message, or the same message under another consent, is another opening.
    let other = outbox.record_opening("consent-1", 43).await.unwrap();
    let elsewhere = outbox.record_opening("consent-2", 42).await.unwrap();
    assert!(other.newly_recorded && elsewhere.newly_recorded);
    assert_eq!(outbox.stats().await.unwrap().pending, 3);
}

#[tokio::test]
async fn concurrent_records_of_one_message_give_one_opening_id() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let tasks = (0..64).map(|_| {
        let outbox = outbox.clone();
        tokio::spawn(async move { outbox.record_opening("consent-1", 7).await.unwrap() })
    });
    let results: Vec<RecordedOpening> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ids: HashSet<_> = results.iter().map(|r| r.opening_id.clone()).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(results.iter().filter(|r| r.newly_recorded).count(), 1);
    assert_eq!(outbox.stats().await.unwrap().pending, 1);
}

#[tokio::test]
async fn openings_survive_a_restart_and_are_delivered_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let recorded = {
        let outbox = outbox_in(&dir).await;
        let r = outbox.record_opening("consent-1", 42).await.unwrap();
        // The process dies here: no deliverer ever ran.
        drop(outbox);
        r
    };
    let outbox = outbox_in(&dir).await;
    let stats = outbox.stats().await.unwrap();
    assert_eq!(stats.pending, 1);
    assert!(stats.oldest_pending_age.is_some());
    let dvv = FakeDvv::scripted(&[Step::Ok { first_open: true }]);
    let (stop, shutdown) = watch::channel(false);
    let deliverer = spawn_deliverer(outbox.clone(), dvv.clone(), fast(), shutdown);
    let stats = until(&outbox, |s| s.delivered == 1).await;
    assert_eq!((stats.pending, stats.first_opens), (0, 1));
    assert_eq!(stats.oldest_pending_age, None);
    assert_eq!(
        dvv.calls(),
        vec![(
            "consent-1".to_string(),
            42,
            recorded.opening_id.clone(),
            recorded.opened_at
        )]
    );
    // Reading the message again after delivery adds nothing.
    let again = outbox.record_opening("consent-1", 42).await.unwrap();
    assert_eq!(again.opening_id, recorded.opening_id);
    stop.send(true).unwrap();
    deliverer.await.unwrap();
}

#[tokio::test]
async fn failures_are_retried_with_the_same_id_until_success() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let dvv = FakeDvv::scripted(&[
        Step::Fail { retryable: true },
        Step::Fail { retryable: true },
        Step::Ok { first_open: false },
    ]);
    let (_stop, shutdown) = watch::channel(false);
    let _deliverer = spawn_deliverer(outbox.clone(), dvv.clone(), fast(), shutdown);
    let recorded = outbox.record_opening("consent-1", 42).await.unwrap();
    let stats = until(&outbox, |s| s.delivered == 1).await;
    assert_eq!(stats.first_opens, 0);
    let calls = dvv.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls
        .iter()
        .all(|c| c.2 == recorded.opening_id && c.3 == recorded.opened_at));
    let attempts: i64 = outbox
        .run(|c| Ok(c.query_row("SELECT attempts FROM openings", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(attempts, 3);
}

#[tokio::test]
async fn a_repeated_report_answer_settles_the_opening() {
    // The reporter maps DVV's 409 (the original answer repeated) to an outcome, like a 201.
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let dvv = FakeDvv::scripted(&[Step::Ok { first_open: true }]);
    outbox.record_opening("consent-1", 1).await.unwrap();
    outbox.record_opening("consent-1", 2).await.unwrap();
    let (_stop, shutdown) = watch::channel(false);
    let _deliverer = spawn_deliverer(outbox.clone(), dvv.clone(), fast(), shutdown);
    let stats = until(&outbox, |s| s.delivered == 2).await;
    assert_eq!(stats.first_opens, 2);
    let (first_open, read_at): (Option<bool>, Option<i64>) = outbox
        .run(|c| {
            Ok(c.query_row(
                "SELECT first_open, dvv_read_at FROM openings WHERE message_id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(first_open, Some(true));
    assert!(read_at.is_some());
    assert_eq!(dvv.calls().len(), 2);
}

#[tokio::test]
async fn a_permanent_refusal_parks_the_opening_until_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let dvv = FakeDvv::scripted(&[
        Step::Fail { retryable: false },
        Step::Ok { first_open: true },
    ]);
    let (_stop, shutdown) = watch::channel(false);
    let _deliverer = spawn_deliverer(outbox.clone(), dvv.clone(), fast(), shutdown);
    outbox.record_opening("consent-1", 42).await.unwrap();
    let stats = until(&outbox, |s| s.parked == 1).await;
    assert_eq!(stats.pending, 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(dvv.calls().len(), 1, "a parked opening is not retried");
    let kind: String = outbox
        .run(|c| Ok(c.query_row("SELECT last_error_kind FROM openings", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(kind, "message_not_found");

    assert_eq!(outbox.requeue_parked().await.unwrap(), 1);
    until(&outbox, |s| s.delivered == 1 && s.parked == 0).await;
}

#[tokio::test]
async fn a_new_opening_wakes_the_deliverer_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let dvv = FakeDvv::scripted(&[Step::Ok { first_open: true }]);
    let (_stop, shutdown) = watch::channel(false);
    let _deliverer = spawn_deliverer(outbox.clone(), dvv.clone(), fast(), shutdown);
    // Let the deliverer go to sleep on its (hour-long) poll interval first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    outbox.record_opening("consent-1", 42).await.unwrap();
    let woke =
        tokio::time::timeout(Duration::from_secs(2), until(&outbox, |s| s.delivered == 1)).await;
    assert!(woke.is_ok());
}

#[tokio::test]
async fn deliveries_run_concurrently_but_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    for message_id in 0..20 {
        outbox
            .record_opening("consent-1", message_id)
            .await
            .unwrap();
    }
    let dvv = FakeDvv::scripted(&[Step::Slow(Duration::from_millis(50))]);
    let (_stop, shutdown) = watch::channel(false);
    let _deliverer = spawn_deliverer(outbox.clone(), dvv.clone(), fast(), shutdown);
    until(&outbox, |s| s.delivered == 20).await;
    let max = dvv.max_in_flight.load(Ordering::SeqCst);
    assert!((2..=4).contains(&max), "max in flight {max}");
    // Each opening was reported exactly once.
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for call in dvv.calls() {
        *per_id.entry(call.2).or_default() += 1;
    }
    assert_eq!(per_id.len(), 20);
    assert!(per_id.values().all(|n| *n == 1));
}

#[tokio::test]
async fn shutdown_lets_reports_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let dvv = FakeDvv::scripted(&[Step::Slow(Duration::from_millis(200))]);
    let (stop, shutdown) = watch::channel(false);
    let deliverer = spawn_deliverer(outbox.clone(), dvv.clone(), fast(), shutdown);
    outbox.record_opening("consent-1", 42).await.unwrap();
    until(&outbox, |_| dvv.in_flight.load(Ordering::SeqCst) == 1).await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), deliverer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outbox.stats().await.unwrap().delivered, 1);
    // Nothing new is started after shutdown.
    outbox.record_opening("consent-1", 43).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(dvv.calls().len(), 1);
}

#[tokio::test]
async fn the_store_holds_ids_and_times_only() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let (tables, columns, version, journal, synchronous) = outbox
        .run(|c| {
            let tables: Vec<String> = c
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let columns: Vec<(String, String)> = c
                .prepare("SELECT name, type FROM pragma_table_info('openings') ORDER BY cid")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
            let journal: String = c.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
            let synchronous: i64 = c.pragma_query_value(None, "synchronous", |r| r.get(0))?;
            Ok((tables, columns, version, journal, synchronous))
        })
        .await
        .unwrap();
    // Beside the openings: the events feed position, the webhook queue (bodies of ids and times),
    // the ledger's retention mark and the reminder schedule (see src/webhooks, src/ledger and
    // src/reminders).
    assert_eq!(
        tables,
        [
            "feed_position",
            "ledger_retention",
            "openings",
            "reminders",
            "sqlite_sequence",
            "store_health",
            "webhook_deliveries"
        ]
    );
    let expected = [
        ("opening_id", "TEXT"),
        ("consent_id", "TEXT"),
        ("message_id", "INTEGER"),
        ("opened_at", "INTEGER"),
        ("state", "TEXT"),
        ("attempts", "INTEGER"),
        ("next_attempt_at", "INTEGER"),
        ("last_error_kind", "TEXT"),
        ("first_open", "INTEGER"),
        ("dvv_read_at", "INTEGER"),
        ("delivered_at", "INTEGER"),
        ("verdict_settles_at", "INTEGER"),
    ];
    let columns: Vec<(&str, &str)> = columns
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    assert_eq!(columns, expected);
    assert_eq!(
        version, 4,
        "1: openings; 2: feed position, webhook queue, ledger retention; 3: opening verdicts; 4: reminders"
    );
    let reminder_columns: Vec<(String, String)> = outbox
        .run(|c| {
            Ok(
                c.prepare("SELECT name, type FROM pragma_table_info('reminders') ORDER BY cid")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?,
            )
        })
        .await
        .unwrap();
    let reminder_columns: Vec<(&str, &str)> = reminder_columns
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        reminder_columns,
        [
            ("consent_id", "TEXT"),
            ("message_id", "INTEGER"),
            ("due_at", "INTEGER"),
            ("interval_ms", "INTEGER"),
            ("sent", "INTEGER"),
            ("needs_receipt", "INTEGER"),
        ],
        "the reminder schedule holds ids and times only"
    );
    assert_eq!(journal, "wal");
    assert_eq!(synchronous, 2, "synchronous=FULL");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(outbox.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn reopening_does_not_rerun_migrations_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    outbox.record_opening("consent-1", 42).await.unwrap();
    drop(outbox);
    let outbox = outbox_in(&dir).await;
    assert_eq!(outbox.stats().await.unwrap().pending, 1);
    outbox
        .run(|c| Ok(c.pragma_update(None, "user_version", 99)?))
        .await
        .unwrap();
    drop(outbox);
    let err = Outbox::open_in(dir.path()).await.err().unwrap();
    assert_eq!(err.kind(), "corrupt");
}

#[tokio::test]
async fn a_full_disk_is_a_typed_error_and_nothing_is_half_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    outbox.check_writable().await.unwrap();
    outbox.record_opening("consent-1", 1).await.unwrap();
    // Cap the database at its current size: the next page it needs is "disk full".
    outbox
        .run(|c| {
            let pages: i64 = c.pragma_query_value(None, "page_count", |r| r.get(0))?;
            c.pragma_update_and_check(None, "max_page_count", pages, |_| Ok(()))?;
            Ok(())
        })
        .await
        .unwrap();
    let mut refused = None;
    for message_id in 2..5000 {
        if let Err(err) = outbox
            .record_opening(&format!("consent-{message_id:0>200}"), message_id)
            .await
        {
            refused = Some(err);
            break;
        }
    }
    let err = refused.expect("the capped database must fill up");
    assert!(matches!(err, StoreError::DiskFull), "{err:?}");
    assert_eq!(err.kind(), "disk_full");
    assert!(err.is_unavailable());
    // The earlier opening is intact and the store still answers reads.
    let again = outbox.record_opening("consent-1", 1).await.unwrap();
    assert!(!again.newly_recorded);
}

#[tokio::test]
async fn a_read_only_store_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    outbox
        .run(|c| Ok(c.pragma_update(None, "query_only", true)?))
        .await
        .unwrap();
    let err = outbox.record_opening("consent-1", 1).await.unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly), "{err:?}");
    let err = outbox.check_writable().await.unwrap_err();
    assert!(err.is_unavailable());
}

#[test]
fn backoff_grows_is_capped_and_jittered() {
    let settings = DelivererSettings {
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(300),
        ..DelivererSettings::default()
    };
    for failures in 1..40 {
        let d = deliverer::backoff(&settings, failures);
        let ceiling = Duration::from_secs(1u64 << (failures - 1).min(30)).min(settings.max_backoff);
        assert!(d <= ceiling && d >= ceiling / 2, "{failures}: {d:?}");
    }
    let draws: HashSet<Duration> = (0..20).map(|_| deliverer::backoff(&settings, 5)).collect();
    assert!(draws.len() > 1, "jittered");
}

#[tokio::test]
async fn a_store_that_refuses_writes_is_reported_and_recovers_on_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    assert!(outbox.store_status().writable);
    outbox.record_opening("consent-1", 1).await.unwrap();
    // SQLite's own read-only answer (SQLITE_READONLY), as from a read-only mount.
    outbox
        .run(|conn| Ok(conn.pragma_update(None, "query_only", true)?))
        .await
        .unwrap();
    let refused = outbox.record_opening("consent-1", 2).await.unwrap_err();
    assert!(matches!(refused, StoreError::ReadOnly), "{refused:?}");
    let status = outbox.store_status();
    assert!(!status.writable);
    assert_eq!(status.failure, Some("read_only"));
    assert_eq!(status.outages, 1);
    // A re-read is refused too on a read-only database (its transaction cannot even begin).
    assert!(outbox.record_opening("consent-1", 1).await.is_err());
    assert!(!outbox.store_status().writable);
    outbox
        .run(|conn| Ok(conn.pragma_update(None, "query_only", false)?))
        .await
        .unwrap();
    outbox.check_writable().await.unwrap();
    let status = outbox.store_status();
    assert!(status.writable);
    assert_eq!(status.failure, None);
    assert!(
        outbox
            .record_opening("consent-1", 2)
            .await
            .unwrap()
            .newly_recorded
    );
}

#[tokio::test]
async fn the_probe_notices_returning_space_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let (stop, stopped) = watch::channel(false);
    outbox
        .run(|conn| Ok(conn.pragma_update(None, "query_only", true)?))
        .await
        .unwrap();
    assert!(outbox.record_opening("consent-1", 1).await.is_err());
    let settings = ProbeSettings {
        healthy_every: Duration::from_secs(10),
        failing_every: Duration::from_millis(20),
    };
    let probe = spawn_store_probe(outbox.clone(), settings, stopped);
    outbox
        .run(|conn| Ok(conn.pragma_update(None, "query_only", false)?))
        .await
        .unwrap();
    for _ in 0..250 {
        if outbox.store_status().writable {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        outbox.store_status().writable,
        "the probe's write flipped it back"
    );
    stop.send(true).unwrap();
    probe.await.unwrap();
}
