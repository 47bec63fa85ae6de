//! Crash consistency: at least 100 SIGKILLs at random moments while several citizens read
//! several messages concurrently and webhooks are being delivered. After every kill the store
//! passes SQLite's integrity check; at the end DVV has exactly one opening per message whose body
//! the gateway released, at most one for a read cut short by a kill, and none for a message never
//! read; and the webhook receiver has every event of DVV's feed (under the event's own id: a
//! redelivery after a kill repeats the id, never mints another).

mod common;
mod receiver;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Harness;
use http_body_util::{BodyExt, Full};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rusqlite::{Connection, OpenFlags};

const KILLS: usize = 100;

fn integrity(h: &Harness) -> String {
    let db = h.dir.path().join("gateway").join("ikkuna.db");
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("store opens read-only");
    conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .expect("integrity_check runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_sigkills_keep_the_store_sound_and_openings_exact() {
    let started = Instant::now();
    let (mut h, rx) = support::start_with_receiver(&[], 200).await;
    let mut created: Vec<i64> = Vec::new();

    // Every active citizen with Normal mail, up to 20 messages each: (citizen, message id).
    let mut targets: Vec<(String, i64)> = Vec::new();
    let mut all_messages: BTreeSet<i64> = BTreeSet::new();
    let citizens: Vec<String> = h.citizens("Active");
    let mut readers = 0;
    for citizen in &citizens {
        let page = h
            .call("GET", "/v1/messages?limit=100", Some(&h.token(citizen)))
            .await
            .json();
        let ids: Vec<i64> = page["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|m| m["messageServiceType"] == "Normal")
            .filter_map(|m| m["messageId"].as_i64())
            .collect();
        if ids.is_empty() {
            continue;
        }
        readers += 1;
        for id in ids.iter().take(20) {
            assert!(all_messages.insert(*id), "message ids are global");
            targets.push((citizen.clone(), *id));
        }
    }
    assert!(readers >= 2, "at least two citizens with Normal mail");
    assert!(targets.len() >= 6, "{targets:?}");
    // A few messages are never read: DVV must never hear of them.
    let mut rng = rand::rng();
    targets.shuffle(&mut rng);
    let never_read: Vec<(String, i64)> = targets.split_off(targets.len() - 2);

    let mut released: BTreeSet<i64> = BTreeSet::new();
    let mut cut_short: BTreeSet<i64> = BTreeSet::new();
    let (mut kills, mut restarts, mut reads_sent) = (0usize, 0usize, 0usize);
    let mut integrity_checks = 0usize;
    let mut kills_after_new_openings = 0usize;
    let mut refused: BTreeMap<u16, usize> = BTreeMap::new();
    while kills < KILLS {
        // Messages join the workload gradually (all of them by kill 80), so new openings are
        // being recorded at kill time throughout the loop, not only in its first rounds; each
        // batch prefers messages not yet released and adds some re-reads.
        let pool = &targets[..targets.len().min(2 + kills * targets.len() / 80)];
        let size = rng.random_range(2..=6);
        let fresh: Vec<&(String, i64)> = pool
            .iter()
            .filter(|(_, id)| !released.contains(id))
            .collect();
        let mut batch: Vec<(String, i64)> = fresh
            .choose_multiple(&mut rng, size / 2 + 1)
            .map(|t| (*t).clone())
            .collect();
        batch.extend(
            pool.choose_multiple(&mut rng, size - batch.len().min(size))
                .cloned(),
        );
        let mut tasks = Vec::new();
        for (citizen, id) in batch {
            let token = h.token(&citizen);
            let path = format!("/v1/messages/{id}");
            let client_h = HarnessView::of(&h);
            reads_sent += 1;
            tasks.push((
                id,
                tokio::spawn(async move { client_h.read(&path, &token).await }),
            ));
        }
        // Every few rounds a new message arrives: its `message.created` event is fed and delivered
        // while kills go on (it is never read).
        if kills % 4 == 0 {
            let citizen = targets
                .choose(&mut rng)
                .map(|t| t.0.clone())
                .unwrap_or_default();
            let a = h
                .sandbox_admin(
                    "POST",
                    "/admin/messages",
                    Some(serde_json::json!({"endUserId": citizen, "title": "Crash", "body": "b"})),
                )
                .await;
            assert_eq!(a.status, 201, "{:?}", a.json());
            created.push(a.json()["messageId"].as_i64().expect("messageId"));
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..=150))).await;
        h.kill_gateway().await;
        kills += 1;
        let released_before = released.len();
        for (id, task) in tasks {
            match task.await.expect("read task") {
                Some(200) => {
                    released.insert(id);
                }
                Some(status) => {
                    *refused.entry(status).or_default() += 1;
                }
                None => {
                    cut_short.insert(id);
                }
            }
        }
        if released.len() > released_before {
            kills_after_new_openings += 1;
        }
        assert_eq!(integrity(&h), "ok", "integrity check after kill {kills}");
        integrity_checks += 1;
        h.start_gateway().await;
        restarts += 1;
    }

    // Let the deliverer settle everything the store holds.
    let expected = |openings: &[serde_json::Value]| {
        released
            .iter()
            .all(|id| openings.iter().any(|o| o["messageId"] == *id))
    };
    let openings = h.wait_openings(30, expected).await;
    // Give a straggler report (a cut-short read recorded late) a moment, then read again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let openings = {
        let again = h.dvv_openings().await;
        if again.len() >= openings.len() {
            again
        } else {
            openings
        }
    };
    let mut per_message: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    let mut rows_per_message: BTreeMap<i64, usize> = BTreeMap::new();
    for o in openings.iter().filter(|o| o["providerId"] == "provider-a") {
        let id = o["messageId"].as_i64().expect("messageId");
        per_message
            .entry(id)
            .or_default()
            .insert(o["openingId"].as_str().unwrap_or_default().to_owned());
        *rows_per_message.entry(id).or_default() += 1;
    }
    for id in &released {
        assert_eq!(
            per_message.get(id).map(BTreeSet::len),
            Some(1),
            "exactly one opening id for released message {id}: {:?}",
            per_message.get(id)
        );
        assert_eq!(rows_per_message.get(id), Some(&1), "one DVV row for {id}");
    }
    for (id, ids) in &per_message {
        assert!(
            released.contains(id) || cut_short.contains(id),
            "opening for message {id} that was never released nor read"
        );
        assert_eq!(ids.len(), 1, "at most one opening id for {id}");
        assert_eq!(rows_per_message[id], 1, "at most one DVV row for {id}");
    }
    for id in never_read.iter().map(|(_, id)| id).chain(&created) {
        assert!(
            !per_message.contains_key(id),
            "never read, yet opened: {id}"
        );
    }

    // Webhooks: every event of DVV's feed reaches the receiver under its own id.
    let feed = support::feed(&h, "provider-a").await;
    let expected: BTreeSet<String> = feed
        .iter()
        .filter_map(|e| ikkuna::webhooks::WebhookEvent::from_feed(e).map(|w| w.id))
        .collect();
    let delivered_ids = |d: &[receiver::Delivery]| -> BTreeSet<String> {
        d.iter()
            .filter(|d| d.ok())
            .map(|d| d.header("ikkuna-event-id").to_owned())
            .collect()
    };
    let deliveries = rx
        .wait_for(60, "every webhook event after the kills", |d| {
            expected.is_subset(&delivered_ids(d))
        })
        .await;
    let ids = delivered_ids(&deliveries);
    assert_eq!(
        ids, expected,
        "no webhook id that DVV's feed does not explain"
    );
    let ok_deliveries = deliveries.iter().filter(|d| d.ok()).count();
    h.kill_gateway().await;
    assert_eq!(integrity(&h), "ok", "integrity check at the end");
    integrity_checks += 1;

    let late = cut_short.iter().filter(|id| !released.contains(id));
    let late_recorded = late
        .clone()
        .filter(|id| per_message.contains_key(id))
        .count();
    eprintln!(
        "crash loop: {readers} citizens, {} messages read, {} never read, {kills} SIGKILLs \
         ({kills_after_new_openings} right after new openings), {restarts} restarts, {reads_sent} reads sent, \
         {} bodies released, {} reads cut short ({} of them never released, {late_recorded} of \
         those recorded anyway), {} openings at DVV, {integrity_checks} integrity checks ok, complete non-200 answers {refused:?}, \
         {} webhook events ({} messages created mid-loop) all delivered, {} deliveries ({} redelivered after a kill), {:.1}s",
        targets.len(),
        never_read.len(),
        released.len(),
        cut_short.len(),
        late.count(),
        per_message.len(),
        expected.len(),
        created.len(),
        ok_deliveries,
        ok_deliveries - expected.len(),
        started.elapsed().as_secs_f64()
    );
}

/// What a spawned read needs from the harness (the harness itself stays with the test).
struct HarnessView {
    url: String,
    client: common::HttpsClient,
}

impl HarnessView {
    fn of(h: &Harness) -> Self {
        Self {
            url: h.gateway_url(),
            client: h.client.clone(),
        }
    }

    async fn read(&self, path: &str, token: &str) -> Option<u16> {
        let req = http::Request::builder()
            .uri(format!("{}{}", self.url, path))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .ok()?;
        let call = async {
            let resp = self.client.request(req).await.ok()?;
            let status = resp.status().as_u16();
            resp.into_body().collect().await.ok()?;
            Some(status)
        };
        tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .ok()
            .flatten()
    }
}
