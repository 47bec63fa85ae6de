//! The store suite: every case runs on both backends (the embedded SQLite file and a throw-away
//! PostgreSQL server) — a new durable operation adds its case to [`suite`] — plus what only a
//! shared store has to get right: two replicas recording and claiming at once, the owner lease
//! and its takeover, consent notifications and their catch-up. The PostgreSQL runs skip with a
//! notice when PostgreSQL is not installed, and fail then in CI.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::postgres::PgStore;
use super::{ConsentChange, ConsentSink, NewReminder, ReminderChange, ReminderDelivery, Store};
use crate::config::{PostgresConfig, PostgresTls, SslMode};
use crate::events::{Committed, FeedPosition};
use crate::ledger::{self, Period};
use crate::webhooks::{WebhookEvent, WebhookQueue};

#[path = "../../tests/pg/mod.rs"]
mod pg_server;

/// Plain TCP settings for a throw-away server on loopback.
pub(crate) fn settings(url: String) -> PostgresConfig {
    PostgresConfig {
        url: url.replace("?sslmode=disable", ""),
        tls: PostgresTls {
            mode: SslMode::Disable,
            root_cert: None,
            client: None,
        },
        password: None,
        pool_size: 8,
        owner_retry: Duration::from_millis(100),
        owner_lease: Duration::from_secs(2),
        claim: Duration::from_secs(30),
    }
}

async fn connect(settings: &PostgresConfig) -> PgStore {
    PgStore::connect(settings).await.unwrap()
}

async fn shared(url: &str) -> Store {
    Store::new(Arc::new(connect(&settings(url.to_owned())).await))
}

fn event(n: u32) -> WebhookEvent {
    WebhookEvent {
        id: format!("evt-{n}"),
        event_type: "message.created",
        time: "2026-11-22T00:00:00.000Z".to_owned(),
        consent_id: "c-1".to_owned(),
        message_id: Some(i64::from(n)),
        notification: None,
        reminder: None,
        in_reply_to_message_id: None,
    }
}

/// Openings: once per (consent, message) even when recorded concurrently, due, delivered,
/// retried, parked, requeued, counted.
async fn openings_suite(store: Store) {
    let first = store.record_opening("c-1", 1).await.unwrap();
    assert!(first.newly_recorded);
    let again = store.record_opening("c-1", 1).await.unwrap();
    assert_eq!(
        (again.opening_id.as_str(), again.newly_recorded),
        (first.opening_id.as_str(), false)
    );
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.record_opening("c-1", 2).await.unwrap() })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut new = 0;
    for racer in racers {
        let r = racer.await.unwrap();
        ids.insert(r.opening_id);
        new += usize::from(r.newly_recorded);
    }
    assert_eq!(
        (ids.len(), new),
        (1, 1),
        "one opening per (consent, message)"
    );
    let second = ids.into_iter().next().unwrap();

    let due = store.due(Utc::now(), 10).await.unwrap();
    let due_ids: HashSet<_> = due.iter().map(|o| o.opening_id.clone()).collect();
    assert_eq!(
        due_ids,
        HashSet::from([first.opening_id.clone(), second.clone()])
    );
    store
        .mark_delivered(&first.opening_id, true, Utc::now())
        .await
        .unwrap();
    let later = Utc::now() + chrono::TimeDelta::seconds(60);
    store.mark_failed(&second, "timeout", later).await.unwrap();
    assert!(store.due(Utc::now(), 10).await.unwrap().is_empty());
    assert!(store.next_due_after(Utc::now()).await.unwrap().is_some());
    store.park(&second, "not_found").await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (
            stats.pending,
            stats.parked,
            stats.delivered,
            stats.first_opens
        ),
        (0, 1, 1, 1)
    );
    assert_eq!(store.requeue_parked().await.unwrap(), 1);
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.pending, stats.parked), (1, 0));
    assert!(stats.oldest_pending_age.is_some());
    store.check_writable().await.unwrap();

    let report = ledger::report(&store, Period::default()).await.unwrap();
    assert_eq!(
        (
            report.total.recorded,
            report.total.delivered,
            report.total.first_opens
        ),
        (2, 1, 1)
    );
    assert_eq!(report.months.len(), 1);
    assert_eq!(
        ledger::prune(&store, Duration::from_secs(86_400))
            .await
            .unwrap(),
        0
    );
}

/// Webhooks and the feed position: a page commits once (compare-and-set), its deliveries are
/// queued once, delivered, failed, parked, replayed.
async fn feed_and_webhooks_suite(store: Store) {
    let queue = WebhookQueue::new(store);
    let position = FeedPosition::new(queue.clone());
    let endpoints = vec!["https://hooks.example/a".to_owned()];
    assert_eq!(position.load().await.unwrap(), None);
    let page = vec![event(1), event(2)];
    let committed = position
        .commit_page(None, "t1".into(), &endpoints, page.clone(), &[], 2)
        .await
        .unwrap();
    assert_eq!(committed, Committed::Advanced { queued: 2 });
    assert_eq!(position.load().await.unwrap().as_deref(), Some("t1"));
    let stale = position
        .commit_page(None, "t1".into(), &endpoints, page.clone(), &[], 2)
        .await
        .unwrap();
    assert_eq!(stale, Committed::Stale);
    let repeated = position
        .commit_page(
            Some("t1".into()),
            "t2".into(),
            &endpoints,
            page.clone(),
            &[],
            2,
        )
        .await
        .unwrap();
    assert_eq!(repeated, Committed::Advanced { queued: 0 });
    assert_eq!(queue.enqueue(&endpoints, &page).await.unwrap(), 0);
    assert_eq!(queue.enqueue(&endpoints, &[event(3)]).await.unwrap(), 1);

    let due = queue.due(Utc::now(), 10).await.unwrap();
    assert_eq!(due.len(), 3);
    let events: HashSet<_> = due.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(events, HashSet::from(["evt-1", "evt-2", "evt-3"]));
    assert!(due[0].body.contains("evt-"));
    queue.mark_delivered(due[0].id, 204).await.unwrap();
    let later = Utc::now() + chrono::TimeDelta::seconds(60);
    queue
        .mark_failed(due[1].id, "status", Some(500), later, true)
        .await
        .unwrap();
    queue
        .mark_failed(due[2].id, "timeout", None, later, false)
        .await
        .unwrap();
    assert!(queue.due(Utc::now(), 10).await.unwrap().is_empty());
    assert!(queue.next_due_after(Utc::now()).await.unwrap().is_some());
    let parked = queue.parked(10).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].last_status, Some(500));
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.pending, stats.parked, stats.delivered), (1, 1, 1));
    assert_eq!(queue.replay(&[parked[0].id]).await.unwrap(), 1);
    assert_eq!(queue.replay(&[]).await.unwrap(), 0);
    assert_eq!(queue.due(Utc::now(), 10).await.unwrap().len(), 1);
    assert_eq!(queue.prune_delivered(Duration::ZERO).await.unwrap(), 1);
}

/// Consent changes: logged and read back in order where other replicas exist; nothing to tell
/// (and nothing logged) with one process per store.
async fn consent_log_suite(store: Store, shared: bool) {
    store
        .publish_consent_changes(&[(true, "c-1".into()), (false, "c-2".into())])
        .await
        .unwrap();
    let inner = store.backend();
    let logged = inner.consent_changes_after(0, 10).await.unwrap();
    if !shared {
        assert!(logged.is_empty());
        return;
    }
    let seen: Vec<(bool, &str)> = logged
        .iter()
        .map(|c| (c.revoked, c.consent_id.as_str()))
        .collect();
    assert_eq!(seen, vec![(true, "c-1"), (false, "c-2")]);
    assert!(logged[0].seq < logged[1].seq);
    let after_first = inner
        .consent_changes_after(logged[0].seq, 10)
        .await
        .unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].consent_id, "c-2");
}

/// Side effects happen once, above the backends: every write's outcome updates the store's
/// health (as it did for SQLite only, before), and new work wakes its worker.
async fn side_effects_suite(store: Store) {
    let first = store.record_opening("c-h", 1).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), store.recorded())
        .await
        .expect("a new opening wakes the deliverer");
    store
        .mark_delivered(&first.opening_id, true, Utc::now())
        .await
        .unwrap();
    assert!(store.store_status().writable);
    let endpoints = vec!["https://hooks.example/h".to_owned()];
    let queue = WebhookQueue::new(store.clone());
    queue.enqueue(&endpoints, &[event(90)]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), queue.woken())
        .await
        .expect("a queued delivery wakes the dispatcher");
    let due = queue.due(Utc::now(), 1).await.unwrap();
    queue.mark_delivered(due[0].id, 200).await.unwrap();
    assert_eq!(queue.stats().await.unwrap().delivered_total, 1);
}

fn remind(
    consent: &str,
    message: i64,
    due: chrono::DateTime<Utc>,
    receipt: bool,
) -> ReminderChange {
    ReminderChange::Schedule(NewReminder {
        consent_id: consent.to_owned(),
        message_id: message,
        first_due_at: due,
        interval: Duration::from_secs(3_600),
        needs_receipt: receipt,
    })
}

fn reminder_webhooks() -> ReminderDelivery {
    Arc::new(|fired| crate::webhooks::delivery(&WebhookEvent::reminder(fired)))
}

/// The reminder schedule: changed with a feed page in page order, fired at most `max_count`
/// times per message into webhook deliveries in the same transaction, cancelled by message and
/// by consent, never rescheduled by a repeated announcement.
async fn reminders_suite(store: Store) {
    let queue = WebhookQueue::new(store.clone());
    let position = FeedPosition::new(queue.clone());
    let endpoints = vec!["https://hooks.example/r".to_owned()];
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let hour = chrono::TimeDelta::hours(1);
    let page = [
        remind("c-1", 1, t0 + hour, false),
        remind("c-1", 2, t0 + hour, false),
        remind("c-2", 3, t0 + hour, true),
        remind("c-3", 4, t0 + hour, false),
        remind("c-4", 5, t0 + hour, false),
        // Announced and read in the same page: nothing remains.
        ReminderChange::CancelMessage(5),
    ];
    position
        .commit_page(None, "r1".into(), &endpoints, Vec::new(), &page, 6)
        .await
        .unwrap();
    let cancel = [
        ReminderChange::CancelMessage(2),
        ReminderChange::CancelConsent("c-3".into()),
        // Announced again (a page read twice): the schedule does not start over.
        remind("c-1", 1, t0 + hour * 100, false),
    ];
    position
        .commit_page(
            Some("r1".into()),
            "r2".into(),
            &endpoints,
            Vec::new(),
            &cancel,
            3,
        )
        .await
        .unwrap();
    assert_eq!(store.scheduled_reminders().await.unwrap(), 2);

    let fire = |at: chrono::DateTime<Utc>, max: u32| {
        let (store, endpoints) = (store.clone(), endpoints.clone());
        async move {
            let mut fired: Vec<(i64, u32, bool)> = store
                .fire_reminders(at, 10, max, &endpoints, reminder_webhooks())
                .await
                .unwrap()
                .into_iter()
                .map(|f| (f.message_id, f.number, f.needs_receipt))
                .collect();
            fired.sort_unstable();
            fired
        }
    };
    assert!(fire(t0, 2).await.is_empty(), "nothing due yet");
    assert_eq!(fire(t0 + hour, 2).await, [(1, 1, false), (3, 1, true)]);
    assert!(fire(t0 + hour, 2).await.is_empty(), "each fires once");
    let due = queue.due(Utc::now(), 10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert!(due.iter().all(|d| d.event_type == "message.reminder"));
    assert!(due.iter().all(|d| d.body.contains("\"reminder\":1")));
    assert_eq!(fire(t0 + hour * 2, 2).await, [(1, 2, false), (3, 2, true)]);
    assert_eq!(
        store.scheduled_reminders().await.unwrap(),
        0,
        "at most max_count"
    );
    assert!(fire(t0 + hour * 50, 2).await.is_empty());
    assert_eq!(store.webhook_counts().await.unwrap().pending, 4);

    // A row already at the (lowered) maximum ends without another reminder.
    position
        .commit_page(
            Some("r2".into()),
            "r3".into(),
            &endpoints,
            Vec::new(),
            &[remind("c-5", 6, t0 + hour, false)],
            1,
        )
        .await
        .unwrap();
    assert_eq!(fire(t0 + hour, 3).await, [(6, 1, false)]);
    assert!(fire(t0 + hour * 2, 1).await.is_empty());
    assert_eq!(store.scheduled_reminders().await.unwrap(), 0);
}

/// Opening verdicts, parked openings and the reconciliation reads: a provisional verdict is
/// stored with its settling time, listed for the ledger, replaced only by a settled one; parked
/// openings are listed with their reason and replayed one by one or all at once.
async fn verdicts_suite(store: Store) {
    let mut ids = Vec::new();
    for m in 1..=4 {
        ids.push(store.record_opening("c-v", m).await.unwrap().opening_id);
    }
    let read_at = Utc::now();
    let settles = read_at + chrono::TimeDelta::days(7);
    let provisional = crate::store::DvvVerdict {
        first_open: true,
        read_at,
        settles_at: Some(settles),
    };
    store
        .mark_delivered_with(&ids[0], &provisional)
        .await
        .unwrap();
    store.mark_delivered(&ids[1], false, read_at).await.unwrap();
    store.park(&ids[2], "opened_outside_consent").await.unwrap();
    store.park(&ids[3], "message_not_found").await.unwrap();

    let all = store.ledger_openings(i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(all.len(), 4);
    let row = |id: &str| all.iter().find(|o| o.opening_id == id).unwrap().clone();
    assert_eq!(row(&ids[0]).state, crate::store::OpeningState::Delivered);
    assert_eq!(row(&ids[0]).first_open, Some(true));
    assert_eq!(
        row(&ids[0]).settles_at.map(|t| t.timestamp_millis()),
        Some(settles.timestamp_millis())
    );
    assert_eq!(row(&ids[1]).settles_at, None);
    assert_eq!(row(&ids[2]).state, crate::store::OpeningState::Parked);
    assert_eq!(
        row(&ids[2]).last_error.as_deref(),
        Some("opened_outside_consent")
    );
    assert!(store.ledger_openings(0, 1).await.unwrap().is_empty());

    // Only provisional verdicts are replaced, and only once.
    let settled = vec![
        (ids[0].clone(), false, read_at),
        (ids[1].clone(), true, read_at),
    ];
    assert_eq!(store.adopt_settled_verdicts(&settled).await.unwrap(), 1);
    assert_eq!(store.adopt_settled_verdicts(&settled).await.unwrap(), 0);
    let all = store.ledger_openings(i64::MIN, i64::MAX).await.unwrap();
    let row = |id: &str| all.iter().find(|o| o.opening_id == id).unwrap().clone();
    assert_eq!(
        (row(&ids[0]).first_open, row(&ids[0]).settles_at),
        (Some(false), None)
    );
    assert_eq!(
        row(&ids[1]).first_open,
        Some(false),
        "a settled verdict stays"
    );

    let parked = store.parked_openings(10).await.unwrap();
    assert_eq!(parked.len(), 2);
    let reasons: HashSet<_> = parked.iter().map(|p| p.reason.clone().unwrap()).collect();
    assert_eq!(
        reasons,
        HashSet::from([
            "opened_outside_consent".to_owned(),
            "message_not_found".to_owned()
        ])
    );
    assert!(parked
        .iter()
        .all(|p| p.attempts == 1 && p.opened_at.ends_with('Z')));
    let json = serde_json::to_string(&parked[0]).unwrap();
    assert!(
        !json.contains("c-v"),
        "no consent id in the listing: {json}"
    );
    assert_eq!(
        store
            .replay_openings(&[ids[2].clone(), "unknown".into()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.parked_openings(10).await.unwrap().len(), 1);
    assert_eq!(store.replay_openings(&[]).await.unwrap(), 1);
    assert!(store.parked_openings(10).await.unwrap().is_empty());
    assert_eq!(store.stats().await.unwrap().pending, 2);
}

/// Every case of the suite, on one backend.
async fn suite(
    open: impl Fn(&'static str) -> futures_util::future::BoxFuture<'static, Store>,
    shared: bool,
) {
    openings_suite(open("a").await).await;
    verdicts_suite(open("e").await).await;
    feed_and_webhooks_suite(open("b").await).await;
    consent_log_suite(open("c").await, shared).await;
    side_effects_suite(open("d").await).await;
    reminders_suite(open("f").await).await;
}

#[tokio::test]
async fn sqlite_passes_the_store_suite() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let open = |name: &'static str| {
        let path = dir.path().join(format!("{name}.db"));
        Box::pin(async move { Store::open(path).await.unwrap() })
            as futures_util::future::BoxFuture<'static, Store>
    };
    suite(open, false).await;
}

#[tokio::test]
async fn sqlite_health_follows_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("h.db")).await.unwrap();
    let opening = store.record_opening("c-1", 1).await.unwrap();
    store
        .run(|c| Ok(c.pragma_update(None, "query_only", true)?))
        .await
        .unwrap();
    assert!(store
        .mark_delivered(&opening.opening_id, true, Utc::now())
        .await
        .is_err());
    assert_eq!(store.store_status().failure, Some("read_only"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL binaries (apt-get install postgresql); run: cargo test --workspace -- --ignored --skip steady_load"]
async fn postgres_passes_the_store_suite() {
    let server = pg_server::require("postgres_passes_the_store_suite");
    let server = Arc::new(server);
    let srv = Arc::clone(&server);
    let open = move |name: &'static str| {
        let srv = Arc::clone(&srv);
        Box::pin(async move { shared(&srv.create_database(&format!("suite_{name}")).await).await })
            as futures_util::future::BoxFuture<'static, Store>
    };
    suite(open, true).await;

    // Two replicas on one database: one opening per message, disjoint claims, one migration.
    let url = server.create_database("replicas").await;
    let (a, b) = (shared(&url).await, shared(&url).await);
    let (ra, rb) = tokio::join!(a.record_opening("c-9", 7), b.record_opening("c-9", 7));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.opening_id, rb.opening_id);
    assert!(ra.newly_recorded ^ rb.newly_recorded);
    for n in 0..20 {
        a.record_opening("c-9", 100 + n).await.unwrap();
    }
    let (da, db) = tokio::join!(a.due(Utc::now(), 12), b.due(Utc::now(), 12));
    let (da, db) = (da.unwrap(), db.unwrap());
    let ids_a: HashSet<_> = da.iter().map(|o| o.opening_id.clone()).collect();
    let ids_b: HashSet<_> = db.iter().map(|o| o.opening_id.clone()).collect();
    assert!(ids_a.is_disjoint(&ids_b), "a row is claimed by one replica");
    assert_eq!(ids_a.len() + ids_b.len(), 21);
    assert!(
        a.due(Utc::now(), 50).await.unwrap().is_empty(),
        "all claimed"
    );

    // Two replicas firing the same due reminders at once: each reminder fires once, its webhook
    // is queued once.
    let url = server.create_database("reminders_race").await;
    let (a, b) = (shared(&url).await, shared(&url).await);
    let endpoints = vec!["https://hooks.example/race".to_owned()];
    let due_at = Utc::now() - chrono::TimeDelta::minutes(1);
    let schedule: Vec<_> = (1..=40)
        .map(|m| remind(&format!("c-{m}"), m, due_at, false))
        .collect();
    FeedPosition::new(WebhookQueue::new(a.clone()))
        .commit_page(None, "x".into(), &endpoints, Vec::new(), &schedule, 40)
        .await
        .unwrap();
    let mut fired = Vec::new();
    for _ in 0..10 {
        let (fa, fb) = tokio::join!(
            a.fire_reminders(Utc::now(), 7, 1, &endpoints, reminder_webhooks()),
            b.fire_reminders(Utc::now(), 7, 1, &endpoints, reminder_webhooks())
        );
        fired.extend(fa.unwrap().into_iter().map(|f| f.message_id));
        fired.extend(fb.unwrap().into_iter().map(|f| f.message_id));
    }
    fired.sort_unstable();
    assert_eq!(
        fired,
        (1..=40).collect::<Vec<i64>>(),
        "each reminder fired once"
    );
    let counts = a.webhook_counts().await.unwrap();
    assert_eq!(counts.pending, 40, "each reminder's webhook queued once");
}

/// A consent sink that records what it was given.
fn recording_sink() -> (ConsentSink, Arc<Mutex<Vec<ConsentChange>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&seen);
    let sink: ConsentSink = Arc::new(move |c: &ConsentChange| into.lock().unwrap().push(c.clone()));
    (sink, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL binaries (apt-get install postgresql); run: cargo test --workspace -- --ignored --skip steady_load"]
async fn postgres_elects_one_owner_and_hands_over() {
    let server = pg_server::require("postgres_elects_one_owner_and_hands_over");
    let url = server.create_database("owner").await;
    let a = shared(&url).await;
    let b = shared(&url).await;
    let (stop_a, stopped_a) = watch::channel(false);
    let (stop_b, stopped_b) = watch::channel(false);
    let (owner_a, task_a) = a.spawn_owner_election(stopped_a);
    let (owner_b, task_b) = b.spawn_owner_election(stopped_b);
    let (mut owner_a, mut owner_b) = (owner_a.watch(), owner_b.watch());
    let deadline = Duration::from_secs(10);
    tokio::time::timeout(deadline, async {
        while !*owner_a.borrow() && !*owner_b.borrow() {
            tokio::select! {
                _ = owner_a.changed() => {}
                _ = owner_b.changed() => {}
            }
        }
    })
    .await
    .expect("an owner within the bound");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(*owner_a.borrow() ^ *owner_b.borrow(), "exactly one owner");
    let (stop_owner, mut other, other_stop) = if *owner_a.borrow() {
        (stop_a, owner_b, stop_b)
    } else {
        (stop_b, owner_a, stop_a)
    };
    stop_owner.send(true).unwrap();
    tokio::time::timeout(deadline, other.wait_for(|owned| *owned))
        .await
        .expect("the other replica takes over")
        .unwrap();
    other_stop.send(true).unwrap();
    let _ = tokio::join!(task_a, task_b);

    // Consent changes published by the owner reach a listener on another replica.
    let consents = crate::consent::ConsentCache::new(crate::consent::ConsentCacheSettings {
        capacity: 100,
        positive_ttl: Duration::from_secs(60),
        negative_ttl: Duration::from_secs(5),
    });
    let (stop, stopped) = watch::channel(false);
    let cache = consents.clone();
    let sink: ConsentSink = Arc::new(move |c: &ConsentChange| {
        if c.revoked {
            cache.revoke(&c.consent_id);
        } else {
            cache.invalidate_consent(&c.consent_id);
        }
    });
    let listener = b.spawn_consent_listener(sink, stopped).unwrap();
    let position = FeedPosition::new(WebhookQueue::new(a));
    tokio::time::timeout(deadline, async {
        loop {
            position
                .publish_consent_changes(&[(true, "c-revoked".to_owned())])
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            if consents.stats().invalidations > 0 {
                break;
            }
        }
    })
    .await
    .expect("the revocation reaches the other replica");
    stop.send(true).unwrap();
    listener.await.unwrap();
}

/// A loopback TCP relay to the server that can be cut off: while frozen it forwards nothing and
/// keeps every socket open (a black-holed network, or a peer whose kernel still answers
/// keep-alives) — what neither side can tell from a slow answer.
struct Relay {
    port: u16,
    frozen: Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    async fn start(target: u16) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&frozen);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let flag = Arc::clone(&flag);
                tokio::spawn(async move {
                    while flag.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let Ok(upstream) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (ur, uw) = upstream.into_split();
                    tokio::join!(
                        Self::pump(cr, uw, Arc::clone(&flag)),
                        Self::pump(ur, cw, flag)
                    );
                });
            }
        });
        Self { port, frozen }
    }

    async fn pump(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        frozen: Arc<std::sync::atomic::AtomicBool>,
    ) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            while frozen.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    fn freeze(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL binaries (apt-get install postgresql); run: cargo test --workspace -- --ignored --skip steady_load"]
async fn postgres_an_owner_cut_off_is_replaced_once_its_lease_runs_out() {
    let server =
        pg_server::require("postgres_an_owner_cut_off_is_replaced_once_its_lease_runs_out");
    let url = server.create_database("lease").await;
    let relay = Relay::start(server.port).await;
    let relayed = url.replace(&format!(":{}/", server.port), &format!(":{}/", relay.port));
    let lease = Duration::from_secs(2);
    let a = Store::new(Arc::new(connect(&settings(relayed)).await));
    let b = shared(&url).await;
    let (_stop_a, stopped_a) = watch::channel(false);
    let (_stop_b, stopped_b) = watch::channel(false);
    let (owner_a, _task_a) = a.spawn_owner_election(stopped_a);
    tokio::time::timeout(Duration::from_secs(10), owner_a.watch().wait_for(|o| *o))
        .await
        .expect("a owns")
        .unwrap();
    let (owner_b, _task_b) = b.spawn_owner_election(stopped_b);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        owner_a.is_held() && !owner_b.is_held(),
        "a keeps it while it renews"
    );

    let cut = tokio::time::Instant::now();
    relay.freeze();
    let mut a_stopped = None;
    let deadline = cut + lease * 3 + Duration::from_secs(5);
    let b_started = loop {
        let (a_held, b_held) = (owner_a.is_held(), owner_b.is_held());
        assert!(!(a_held && b_held), "never two owners at once");
        if !a_held && a_stopped.is_none() {
            a_stopped = Some(cut.elapsed());
        }
        if b_held {
            break cut.elapsed();
        }
        assert!(tokio::time::Instant::now() < deadline, "no takeover");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let a_stopped = a_stopped.expect("a stopped first");
    eprintln!(
        "FIGURE owner cut off: it stopped acting after {a_stopped:?}, \
         the other replica owned after {b_started:?} (lease {lease:?})"
    );
    assert!(
        a_stopped <= lease + Duration::from_millis(500),
        "{a_stopped:?}"
    );
    assert!(
        b_started <= lease * 2 + Duration::from_secs(1),
        "{b_started:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL binaries (apt-get install postgresql); run: cargo test --workspace -- --ignored --skip steady_load"]
async fn postgres_a_listener_that_lost_its_connection_catches_up() {
    let server = pg_server::require("postgres_a_listener_that_lost_its_connection_catches_up");
    let url = server.create_database("listen").await;
    let publisher = shared(&url).await;
    let mut slow = settings(url.clone());
    // Long enough to publish while the listener is away.
    slow.owner_retry = Duration::from_millis(1500);
    let listening = Store::new(Arc::new(connect(&slow).await));
    let (sink, seen) = recording_sink();
    let (_stop, stopped) = watch::channel(false);
    let _listener = listening.spawn_consent_listener(sink, stopped).unwrap();
    let wait_for = |n: usize| {
        let seen = Arc::clone(&seen);
        async move {
            for _ in 0..500 {
                if seen.lock().unwrap().len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("only {:?}", seen.lock().unwrap());
        }
    };
    // Wait until it listens: a change then arrives by notification.
    loop {
        publisher
            .publish_consent_changes(&[(false, "c-ping".into())])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !seen.lock().unwrap().is_empty() {
            break;
        }
    }
    // Let the last pings' notifications arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = seen.lock().unwrap().len();
    server
        .execute(
            "listen",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'ikkuna-consent-listener'",
        )
        .await;
    server
        .execute(
            "listen",
            "DO $$ BEGIN
               WHILE EXISTS (SELECT 1 FROM pg_stat_activity
                             WHERE application_name = 'ikkuna-consent-listener') LOOP
                 PERFORM pg_sleep(0.02);
               END LOOP;
             END $$",
        )
        .await;
    publisher
        .publish_consent_changes(&[(true, "c-missed-1".into()), (true, "c-missed-2".into())])
        .await
        .unwrap();
    wait_for(before + 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = seen.lock().unwrap();
    let after: Vec<&str> = seen[before..]
        .iter()
        .map(|c| c.consent_id.as_str())
        .collect();
    assert_eq!(
        after,
        vec!["c-missed-1", "c-missed-2"],
        "each missed change once"
    );
    assert!(seen[before..].iter().all(|c| c.revoked));
}

/// TLS to a real PostgreSQL started with `ssl = on`, a throw-away CA, and rules that refuse every
/// TCP connection without TLS and a client certificate: what connects has not sent a byte in
/// clear.
mod tls {
    use std::path::PathBuf;

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };

    use super::*;
    use crate::config::SecretFile;

    struct Ca {
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate, key) signed by `ca`.
    fn leaf(
        ca: &Ca,
        names: &[&str],
        cn: &str,
        purpose: ExtendedKeyUsagePurpose,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![purpose];
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        path
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL binaries (apt-get install postgresql); run: cargo test --workspace -- --ignored --skip steady_load"]
    async fn postgres_over_tls_verifies_the_server_and_names_the_setting_on_failure() {
        assert!(
            pg_server::bin_dir().is_some(),
            "PostgreSQL binaries not found: apt-get install postgresql"
        );
        crate::tls_provider::install();
        let authority = ca("ikkuna test CA");
        let (server_cert, server_key) = leaf(
            &authority,
            &["localhost"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            &authority,
            &[],
            pg_server::USER,
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let server = pg_server::PgServer::start_tls(&pg_server::ServerTls {
            cert_pem: server_cert,
            key_pem: server_key,
            client_ca_pem: authority.pem.clone(),
            hba: "local all all trust\n\
                  hostssl all all 127.0.0.1/32 cert\n\
                  hostnossl all all 127.0.0.1/32 reject\n"
                .to_owned(),
        });
        server.create_database("tls").await;
        let files = tempfile::tempdir().unwrap();
        let ca_file = write(files.path(), "ca.pem", &authority.pem);
        let wrong_ca = write(files.path(), "other-ca.pem", &ca("someone else").pem);
        let cert_file = write(files.path(), "client.pem", &client_cert);
        let key_file = write(files.path(), "client.key", &client_key);
        let by_name = format!(
            "postgresql://{}@localhost:{}/tls?hostaddr=127.0.0.1",
            pg_server::USER,
            server.port
        );
        let by_address = format!(
            "postgresql://{}@127.0.0.1:{}/tls",
            pg_server::USER,
            server.port
        );
        let with = |url: &str, mode: SslMode, root: Option<&PathBuf>, client: bool| {
            let mut s = settings(url.to_owned());
            s.tls = PostgresTls {
                mode,
                root_cert: root.cloned(),
                client: client.then(|| (cert_file.clone(), SecretFile::unread(key_file.clone()))),
            };
            s
        };

        // verify-full: the right CA and the certificate's host name.
        let store = PgStore::connect(&with(&by_name, SslMode::VerifyFull, Some(&ca_file), true))
            .await
            .expect("verify-full connects");
        let ssl: bool = store
            .client()
            .await
            .unwrap()
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(ssl, "the session is encrypted");
        let shared = Store::new(Arc::new(store));
        shared.record_opening("c-tls", 1).await.unwrap();

        // require: encrypted without checking the certificate.
        PgStore::connect(&with(&by_address, SslMode::Require, None, true))
            .await
            .expect("require connects");

        // A wrong CA, a wrong host name, no client certificate, and plain TCP are refused.
        let failure = |r: Result<PgStore, crate::store::StoreError>| match r {
            Ok(_) => panic!("connected"),
            Err(e) => e.to_string(),
        };
        let wrong = failure(
            PgStore::connect(&with(&by_name, SslMode::VerifyFull, Some(&wrong_ca), true)).await,
        );
        assert!(wrong.contains("store.ssl_root_cert"), "{wrong}");
        assert!(wrong.contains("verify-full"), "{wrong}");
        let host = failure(
            PgStore::connect(&with(
                &by_address,
                SslMode::VerifyFull,
                Some(&ca_file),
                true,
            ))
            .await,
        );
        assert!(host.contains("host name in store.url"), "{host}");
        let anonymous = failure(
            PgStore::connect(&with(&by_name, SslMode::VerifyFull, Some(&ca_file), false)).await,
        );
        assert!(anonymous.contains("store.ssl_cert"), "{anonymous}");
        let plain =
            failure(PgStore::connect(&with(&by_address, SslMode::Disable, None, false)).await);
        assert!(
            plain.contains("cannot be opened") || plain.contains("pg_hba"),
            "{plain}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL binaries (apt-get install postgresql); run: cargo test --workspace -- --ignored --skip steady_load"]
    async fn postgres_without_tls_is_refused_rather_than_spoken_to_in_clear() {
        let server = pg_server::require("postgres_without_tls_is_refused");
        crate::tls_provider::install();
        let url = server.create_database("plain").await;
        for mode in [SslMode::Require, SslMode::VerifyFull] {
            let mut s = settings(url.clone());
            s.tls.mode = mode;
            let refused = match PgStore::connect(&s).await {
                Ok(_) => panic!("{mode:?} connected to a server without TLS"),
                Err(e) => e.to_string(),
            };
            assert!(
                refused.contains("does not offer TLS") && refused.contains(mode.as_str()),
                "{refused}"
            );
        }
    }
}

/// `ikkuna ledger reconcile`'s reads and writes on the shared store (the case itself is in
/// `src/ledger/tests.rs`, where it also runs on SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL binaries (apt-get install postgresql); run: cargo test --workspace -- --ignored --skip steady_load"]
async fn postgres_reconciles_with_a_scripted_dvv() {
    let server = pg_server::require("postgres_reconciles_with_a_scripted_dvv");
    let url = server.create_database("reconcile").await;
    crate::ledger::tests::reconcile_against_a_scripted_dvv(shared(&url).await).await;
}
