//! The store suite: the same checks on both backends (the embedded SQLite file and a throw-away
//! PostgreSQL server), plus what only a shared store has to get right: two replicas recording and
//! claiming at once, the owner election, consent notifications. The PostgreSQL runs skip with a
//! notice when PostgreSQL is not installed, and fail then in CI.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::PgStore;
use crate::config::PostgresConfig;
use crate::events::{Committed, FeedPosition};
use crate::ledger::{self, Period};
use crate::openings::Outbox;
use crate::webhooks::{WebhookEvent, WebhookQueue};

#[path = "../../tests/pg/mod.rs"]
mod pg_server;

fn settings(url: String) -> PostgresConfig {
    PostgresConfig {
        url,
        password: None,
        pool_size: 8,
        owner_retry: Duration::from_millis(100),
        claim: Duration::from_secs(30),
    }
}

async fn shared(url: &str) -> Outbox {
    Outbox::shared(PgStore::connect(&settings(url.to_owned())).await.unwrap())
}

fn event(n: u32) -> WebhookEvent {
    WebhookEvent {
        id: format!("evt-{n}"),
        event_type: "message.created",
        time: "2026-11-22T00:00:00.000Z".to_owned(),
        consent_id: "c-1".to_owned(),
        message_id: Some(i64::from(n)),
    }
}

/// Openings: once per (consent, message) even when recorded concurrently, due, delivered,
/// retried, parked, requeued, counted.
async fn openings_suite(store: Outbox) {
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
async fn feed_and_webhooks_suite(store: Outbox) {
    let queue = WebhookQueue::new(store);
    let position = FeedPosition::new(queue.clone());
    let endpoints = vec!["https://hooks.example/a".to_owned()];
    assert_eq!(position.load().await.unwrap(), None);
    let page = vec![event(1), event(2)];
    let committed = position
        .commit_page(None, "t1".into(), &endpoints, page.clone(), 2)
        .await
        .unwrap();
    assert_eq!(committed, Committed::Advanced { queued: 2 });
    assert_eq!(position.load().await.unwrap().as_deref(), Some("t1"));
    let stale = position
        .commit_page(None, "t1".into(), &endpoints, page.clone(), 2)
        .await
        .unwrap();
    assert_eq!(stale, Committed::Stale);
    let repeated = position
        .commit_page(Some("t1".into()), "t2".into(), &endpoints, page.clone(), 2)
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

#[tokio::test]
async fn sqlite_passes_the_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    openings_suite(Outbox::open(dir.path().join("a.db")).await.unwrap()).await;
    feed_and_webhooks_suite(Outbox::open(dir.path().join("b.db")).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL binaries (apt-get install postgresql); run: cargo test --workspace -- --ignored --skip steady_load"]
async fn postgres_passes_the_store_suite() {
    let server = pg_server::require("postgres_passes_the_store_suite");
    openings_suite(shared(&server.create_database("suite_a").await).await).await;
    feed_and_webhooks_suite(shared(&server.create_database("suite_b").await).await).await;

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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL binaries (apt-get install postgresql); run: cargo test --workspace -- --ignored --skip steady_load"]
async fn postgres_elects_one_owner_and_hands_over() {
    let server = pg_server::require("postgres_elects_one_owner_and_hands_over");
    let url = server.create_database("owner").await;
    let a = PgStore::connect(&settings(url.clone())).await.unwrap();
    let b = PgStore::connect(&settings(url)).await.unwrap();
    let (stop_a, stopped_a) = watch::channel(false);
    let (stop_b, stopped_b) = watch::channel(false);
    let (mut owner_a, task_a) = super::spawn_owner_election(a.clone(), stopped_a);
    let (mut owner_b, task_b) = super::spawn_owner_election(b.clone(), stopped_b);
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
    let listener = super::spawn_consent_listener(b.clone(), consents.clone(), stopped);
    let position = FeedPosition::new(WebhookQueue::new(Outbox::shared(a)));
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
