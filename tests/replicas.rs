//! Several gateway replicas on one PostgreSQL store, over real sockets: a throw-away
//! PostgreSQL server on loopback, the sandbox DVV, a webhook receiver and three `ikkuna run`
//! processes sharing the store. The workload reads every message through two replicas at once,
//! revokes consents, and SIGKILLs the feed owner and a second (delivering) replica mid-run. It
//! shows: every opening exactly once at DVV, every webhook event delivered at least once and
//! never under two ids, revocations enforced on every replica through the owner's `NOTIFY`, and
//! the shared ledger equal to DVV's record.
//!
//! Needs PostgreSQL (Debian's `postgresql`): `#[ignore]`d with that reason, run with
//! `cargo test --test replicas -- --ignored` (CI does).

mod common;
mod pg;
mod receiver;
mod replica;
mod support;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Harness;
use ikkuna::webhooks::WebhookEvent;
use receiver::Receiver;
use replica::{call, shared_env, spawn_replica, wait_ready, Replica};
use serde_json::{json, Value};

async fn admin_ok(h: &Harness, path: &str, body: Value) -> Value {
    let a = h.sandbox_admin("POST", path, Some(body)).await;
    assert!(a.status < 300, "{path}: {:?}", a.json());
    a.json()
}

/// The consent state `r` reports for the citizen: from its cache while cached (answers live
/// 120 s here), so a change shows only when the feed or its notification reached `r`.
async fn consent(h: &Harness, r: &Replica, token: &str) -> Value {
    let a = call(h, r, "/v1/consent", token).await;
    assert_eq!(a.status, 200, "{}: {:?}", r.name, a.json());
    a.json()
}

/// Waits until `r` reports the citizen's consent revoked, then checks the inbox is refused;
/// returns how long it took.
async fn wait_revoked(h: &Harness, r: &Replica, token: &str, bound: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if consent(h, r, token).await["state"] == "Revoked" {
            break;
        }
        assert!(
            start.elapsed() < bound,
            "{} still has the revoked consent cached as active",
            r.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = start.elapsed();
    assert_eq!(call(h, r, "/v1/messages", token).await.status, 403);
    took
}

/// Openings the shared store holds in `state`.
async fn openings_in(url: &str, state: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let n: i64 = client
        .query_one("SELECT COUNT(*) FROM openings WHERE state = $1", &[&state])
        .await
        .unwrap()
        .get(0);
    drop(client);
    let _ = driver.await;
    n
}

/// `ikkuna ledger report` against the shared store.
async fn ledger(h: &Harness, env: &[(String, String)]) -> Value {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ikkuna"));
    cmd.args(["ledger", "report", "--config"])
        .arg(h.config_path())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("ledger in time")
        .expect("ledger runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ledger JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL binaries (apt-get install postgresql); run: cargo test --test replicas -- --ignored"]
async fn three_replicas_share_one_store_through_kills() {
    let server = pg::require("three_replicas_share_one_store_through_kills");
    let started = Instant::now();
    let url = server.create_database("replicas").await;
    let h = Harness::with_sandbox().await;
    let path = |key: &str| PathBuf::from(h.info[key].as_str().unwrap());
    let receiver = Receiver::start(&path("gatewayCert"), &path("gatewayKey"), 200).await;
    let env = shared_env(&h, &receiver, &url);
    let mut replicas: Vec<Replica> = (0..3).map(|n| spawn_replica(&h, &env, n)).collect();
    for r in &replicas {
        wait_ready(&h, r).await;
    }

    let active: Vec<String> = h.citizens("Active");
    assert!(active.len() >= 3, "the sandbox seeds active citizens");
    let (readers, revoked_early, revoked_late) = (
        &active[..active.len() - 2],
        &active[active.len() - 2],
        &active[active.len() - 1],
    );
    let mut messages: Vec<(String, i64)> = Vec::new();
    for citizen in readers {
        for n in 0..4 {
            let m = admin_ok(
                &h,
                "/admin/messages",
                json!({"endUserId": citizen, "title": format!("Päätös {n}"), "body": "secret"}),
            )
            .await["messageId"]
                .as_i64()
                .unwrap();
            messages.push((h.token(citizen), m));
        }
    }

    // Revocations reach every replica's cache (answers cached for 120 s) through the owner.
    let early = h.token(revoked_early);
    let late = h.token(revoked_late);
    for r in &replicas {
        assert_eq!(consent(&h, r, &early).await["state"], "Active");
        assert_eq!(consent(&h, r, &late).await["state"], "Active");
    }
    h.revoke_consent(revoked_early).await;
    for r in &replicas {
        let took = wait_revoked(&h, r, &early, Duration::from_secs(15)).await;
        eprintln!("{}: revocation enforced after {took:?}", r.name);
    }

    // Every message read through two replicas at once; the first half with all three up.
    let half = messages.len() / 2;
    let read_pair = |(token, m): (String, i64), a: usize, b: usize| {
        let (ra, rb) = (&replicas[a], &replicas[b]);
        let h = &h;
        async move {
            let path = format!("/v1/messages/{m}");
            let (x, y) = tokio::join!(call(h, ra, &path, &token), call(h, rb, &path, &token));
            assert_eq!((x.status, y.status), (200, 200), "message {m}");
        }
    };
    for (i, msg) in messages[..half].iter().cloned().enumerate() {
        read_pair(msg, i % 3, (i + 1) % 3).await;
    }

    // The owner and a second replica read the rest together and are SIGKILLed right after,
    // with their openings just recorded and being delivered.
    let deadline = Instant::now() + Duration::from_secs(10);
    let owner = loop {
        if let Some(i) = replicas.iter().position(Replica::owns) {
            break i;
        }
        assert!(Instant::now() < deadline, "no replica owns the feed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let second = (owner + 1) % 3;
    let survivor = (owner + 2) % 3;
    // DVV takes 1.5 s to answer these reports, so they are in flight at the kill.
    let mut slow = Vec::new();
    for (token, m) in &messages[half..] {
        let consent_id = consent(&h, &replicas[survivor], token).await["consentId"]
            .as_str()
            .unwrap()
            .to_owned();
        slow.push(format!("/v1/consents/{consent_id}/messages/{m}/openings"));
    }
    admin_ok(
        &h,
        "/admin/faults",
        json!({"durationMs": 2500, "latencyMs": 1500, "paths": slow}),
    )
    .await;
    let rest: Vec<_> = messages[half..].to_vec();
    futures_util::future::join_all(rest.into_iter().map(|msg| read_pair(msg, owner, second))).await;
    let killed_at = Instant::now();
    replicas[owner].kill().await;
    replicas[second].kill().await;
    eprintln!(
        "killed {} (feed owner) and {} with {} openings pending",
        replicas[owner].name,
        replicas[second].name,
        openings_in(&url, "pending").await
    );

    // The survivor takes the feed over: a new revocation still closes its window.
    h.revoke_consent(revoked_late).await;
    let took = wait_revoked(&h, &replicas[survivor], &late, Duration::from_secs(20)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !replicas[survivor].owns() {
        assert!(Instant::now() < deadline, "the survivor never took over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "{} took over; revocation after the kill enforced after {took:?} ({:?} after the kill)",
        replicas[survivor].name,
        killed_at.elapsed()
    );

    // Every opening exactly once at DVV, with one opening id per message.
    let expected: HashSet<i64> = messages.iter().map(|(_, m)| *m).collect();
    let openings = h
        .wait_openings(30, |o| {
            let ours: HashSet<i64> = o
                .iter()
                .filter(|x| x["providerId"] == "provider-a")
                .filter_map(|x| x["messageId"].as_i64())
                .collect();
            expected.is_subset(&ours)
        })
        .await;
    let mut per_message: HashMap<i64, Vec<String>> = HashMap::new();
    for o in openings.iter().filter(|o| o["providerId"] == "provider-a") {
        per_message
            .entry(o["messageId"].as_i64().unwrap())
            .or_default()
            .push(o["openingId"].as_str().unwrap().to_owned());
    }
    for m in &expected {
        assert_eq!(per_message[m].len(), 1, "message {m}: {:?}", per_message[m]);
    }
    let first_opens = openings
        .iter()
        .filter(|o| o["providerId"] == "provider-a" && o["firstOpen"] == true)
        .count();

    // The shared ledger settles and equals DVV's record.
    let deadline = Instant::now() + Duration::from_secs(30);
    let total = loop {
        let report = ledger(&h, &env).await;
        let total = report["total"].clone();
        if total["pending"] == 0 && total["delivered"] == total["recorded"] {
            break total;
        }
        assert!(Instant::now() < deadline, "ledger never settled: {report}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        total["recorded"].as_u64(),
        Some(expected.len() as u64),
        "{total}"
    );
    assert_eq!(
        total["firstOpens"].as_u64(),
        Some(first_opens as u64),
        "{total}"
    );

    // Every feed event reaches the receiver at least once, each under its one id.
    let feed = support::feed(&h, "provider-a").await;
    let wanted: HashMap<String, WebhookEvent> = feed
        .iter()
        .filter_map(WebhookEvent::from_feed)
        .map(|w| (w.id.clone(), w))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok: HashSet<String> = receiver
            .deliveries()
            .iter()
            .filter(|d| d.ok())
            .map(|d| d.header("ikkuna-event-id").to_owned())
            .collect();
        if wanted.keys().all(|id| ok.contains(id)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "webhooks missing: {:?}",
            wanted
                .keys()
                .filter(|id| !ok.contains(*id))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut ids_per_event: HashMap<String, HashSet<String>> = HashMap::new();
    for d in receiver.deliveries() {
        let body = d.json();
        let id = d.header("ikkuna-event-id").to_owned();
        assert_eq!(
            body["id"].as_str(),
            Some(id.as_str()),
            "header and body agree"
        );
        assert!(
            wanted.contains_key(&id),
            "a webhook id no DVV event explains: {body}"
        );
        let key = format!(
            "{}|{}|{}|{}",
            body["type"], body["consentId"], body["messageId"], body["time"]
        );
        ids_per_event.entry(key).or_default().insert(id);
    }
    assert!(
        ids_per_event.values().all(|ids| ids.len() == 1),
        "an event delivered under two ids: {ids_per_event:?}"
    );
    let duplicates = receiver.deliveries().len() - ids_per_event.len();
    eprintln!(
        "{} openings, {} webhook events ({} repeated deliveries), {:?} in all",
        expected.len(),
        wanted.len(),
        duplicates,
        started.elapsed()
    );
    for r in &mut replicas {
        r.kill().await;
    }
}

/// Reminders on a shared store: two replicas run their reminder clocks eight days ahead (DVV is
/// the local sandbox), twenty messages that allow reminders arrive, and the owner is SIGKILLed
/// as soon as the first reminders are out. Every message gets exactly one reminder id at the
/// receiver (at least once on the wire, never under two ids, never a second one with
/// `max_count = 1`), whichever replica queued it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL binaries (apt-get install postgresql); run: cargo test --test replicas -- --ignored"]
async fn replicas_send_each_reminder_once_through_an_owner_kill() {
    let server = pg::require("replicas_send_each_reminder_once_through_an_owner_kill");
    let url = server.create_database("reminders").await;
    let h = Harness::with_sandbox().await;
    let path = |key: &str| PathBuf::from(h.info[key].as_str().unwrap());
    let receiver = Receiver::start(&path("gatewayCert"), &path("gatewayKey"), 200).await;
    let mut env = shared_env(&h, &receiver, &url);
    for (k, v) in [
        ("IKKUNA_REMINDERS_CLOCK_OFFSET_SECS", "691200"),
        ("IKKUNA_REMINDERS_POLL_INTERVAL_MS", "100"),
        ("IKKUNA_REMINDERS_MAX_COUNT", "1"),
        ("IKKUNA_STORE_OWNER_LEASE_MS", "2000"),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    let mut replicas: Vec<Replica> = (0..2).map(|n| spawn_replica(&h, &env, n)).collect();
    for r in &replicas {
        wait_ready(&h, r).await;
    }
    let citizen = h.citizen("Active");
    let mut messages = HashSet::new();
    for n in 0..20 {
        let m = admin_ok(
            &h,
            "/admin/messages",
            json!({"endUserId": citizen, "title": format!("Muistutus {n}"), "body": "b",
                   "notifications": {"unreadMessageNotification": {"reminder": "Default reminder"}}}),
        )
        .await["messageId"]
            .as_i64()
            .unwrap();
        messages.insert(m);
    }
    let reminders = |d: &[receiver::Delivery]| -> Vec<(String, i64, u64)> {
        d.iter()
            .filter(|d| d.ok() && d.header("ikkuna-event-type") == "message.reminder")
            .map(|d| {
                let v = d.json();
                (
                    v["id"].as_str().unwrap().to_owned(),
                    v["messageId"].as_i64().unwrap(),
                    v["reminder"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    receiver
        .wait_for(60, "the first reminders", |d| !reminders(d).is_empty())
        .await;
    let owner = replicas
        .iter()
        .position(Replica::owns)
        .expect("a replica owns the singleton work");
    replicas[owner].kill().await;
    let seen = receiver
        .wait_for(90, "a reminder for every message", |d| {
            reminders(d)
                .iter()
                .map(|(_, m, _)| *m)
                .collect::<HashSet<_>>()
                == messages
        })
        .await;
    // Let the survivor's scheduler run a while longer: nothing more may come.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = reminders(&receiver.deliveries());
    let ids: HashMap<String, i64> = all.iter().map(|(id, m, _)| (id.clone(), *m)).collect();
    assert_eq!(ids.len(), 20, "one reminder id per message: {all:?}");
    assert!(
        all.iter().all(|(_, _, n)| *n == 1),
        "max_count = 1: {all:?}"
    );
    eprintln!(
        "{} reminder deliveries for 20 messages ({} distinct ids) after killing {}; {} deliveries seen when all had arrived",
        all.len(),
        ids.len(),
        replicas[owner].name,
        seen.len()
    );
}
