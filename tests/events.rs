//! The events feed over real sockets: a revocation at DVV closes the window through the feed
//! long before the cache's TTL, a grant reopens it, and a gateway killed while working through a
//! feed page neither loses nor duplicates webhook event ids after it restarts.

mod common;
mod receiver;
mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::Harness;
use serde_json::json;

async fn consent_state(h: &Harness, token: &str) -> String {
    h.call("GET", "/v1/consent", Some(token)).await.json()["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn wait_state(h: &Harness, token: &str, want: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if consent_state(h, token).await == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "consent never became {want} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn last_seq(calls: &[serde_json::Value]) -> i64 {
    calls
        .iter()
        .filter_map(|c| c["seq"].as_i64())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_through_the_feed_closes_the_window_long_before_the_cache_ttl() {
    // Cached answers would live two minutes: only the feed can close the window quickly.
    let h = Harness::start(&[
        ("IKKUNA_CONSENT_REVOCATION_BOUND_SECS", "120"),
        ("IKKUNA_CONSENT_NEGATIVE_TTL_SECS", "120"),
        ("IKKUNA_EVENTS_POLL_INTERVAL_MS", "200"),
    ])
    .await;
    let citizen = h.citizen("Active");
    let token = h.token(&citizen);
    assert_eq!(consent_state(&h, &token).await, "Active");
    assert_eq!(
        h.call("GET", "/v1/messages", Some(&token)).await.status,
        200
    );

    let before = last_seq(&h.dvv_calls("provider-a").await);
    h.revoke_consent(&citizen).await;
    let took = wait_state(&h, &token, "Revoked", Duration::from_secs(20)).await;
    eprintln!("revocation enforced through the feed after {took:?} (cache TTL 120 s)");
    let list = h.call("GET", "/v1/messages", Some(&token)).await;
    assert_eq!(list.status, 403, "{:?}", list.json());
    let message_calls: Vec<_> = h
        .dvv_calls("provider-a")
        .await
        .into_iter()
        .filter(|c| c["seq"].as_i64().unwrap_or(0) > before)
        .filter(|c| c["path"].as_str().unwrap_or("").contains("/messages"))
        .collect();
    assert!(
        message_calls.is_empty(),
        "no message call after the revocation: {message_calls:?}"
    );

    // A grant reopens it through the feed too, although "revoked" was cached for two minutes.
    let granted = h
        .sandbox_admin(
            "POST",
            "/admin/consents/grant",
            Some(json!({"endUserId": citizen, "providerId": "provider-a"})),
        )
        .await;
    assert_eq!(granted.status, 200, "{:?}", granted.json());
    wait_state(&h, &token, "Active", Duration::from_secs(20)).await;
    assert_eq!(
        h.call("GET", "/v1/messages", Some(&token)).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_in_the_middle_of_a_page_neither_loses_nor_duplicates_webhook_ids() {
    // The receiver refuses everything while the gateway is being killed, so any success later
    // is the one and only delivery of its event.
    let (mut h, rx) =
        support::start_with_receiver(&[("IKKUNA_WEBHOOKS_MAX_ATTEMPTS", "100")], 503).await;
    h.kill_gateway().await;

    // A page of events waits for the gateway: new mail for every active citizen, and consent
    // changes.
    let active: Vec<String> = h.citizens("Active");
    for round in 0..8 {
        for citizen in &active {
            let a = h
                .sandbox_admin(
                    "POST",
                    "/admin/messages",
                    Some(json!({"endUserId": citizen, "title": format!("Round {round}"), "body": "x"})),
                )
                .await;
            assert_eq!(a.status, 201, "{:?}", a.json());
        }
    }
    for path in ["/admin/consents/revoke", "/admin/consents/grant"] {
        let a = h
            .sandbox_admin("POST", path, Some(json!({"endUserId": active[0]})))
            .await;
        assert_eq!(a.status, 200);
    }
    let expected: HashSet<String> = support::feed(&h, "provider-a")
        .await
        .iter()
        .map(|e| ikkuna::webhooks::webhook_id(&e.event_id))
        .collect();
    assert!(expected.len() >= 8 * active.len() + 2, "{}", expected.len());

    // Start it and kill it at staggered moments while it reads, applies and commits the page.
    for delay_ms in [60u64, 90, 110, 130, 160, 220, 400, 800] {
        support::spawn_gateway_unready(&mut h);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        h.kill_gateway().await;
    }
    h.start_gateway().await;
    let log = h.log_text();
    eprintln!(
        "{} gateway starts, {} page commits",
        log.matches("gateway started").count(),
        log.matches("events feed page applied").count()
    );
    rx.set_status(200);
    let seen = rx
        .wait_for(60, "every event delivered", |d| {
            let ok: HashSet<String> = d
                .iter()
                .filter(|d| d.ok())
                .map(|d| d.header("ikkuna-event-id").to_owned())
                .collect();
            ok == expected
        })
        .await;
    let mut successes: HashMap<String, usize> = HashMap::new();
    for d in seen.iter().filter(|d| d.ok()) {
        *successes
            .entry(d.json()["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let repeated: Vec<_> = successes.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "delivered twice: {repeated:?}");
    for d in &seen {
        assert!(
            expected.contains(d.header("ikkuna-event-id")),
            "an event id that DVV never sent"
        );
    }
    let dir = support::data_dir(&h);
    let rows = support::store_count(&dir, "SELECT COUNT(*) FROM webhook_deliveries");
    let distinct = support::store_count(
        &dir,
        "SELECT COUNT(DISTINCT event_id) FROM webhook_deliveries",
    );
    assert_eq!(rows, distinct);
    assert_eq!(rows as usize, expected.len());
}
