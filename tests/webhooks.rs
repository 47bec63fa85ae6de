//! Webhooks over real sockets to a real HTTPS receiver (certificate from the sandbox CA): a
//! receiver that fails and then recovers gets every event, each exactly as signed; a receiver
//! that never recovers ends up with parked deliveries that the CLI lists and replays.

mod common;
mod receiver;
mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::Harness;
use ikkuna::webhooks::signature::{verify, REPLAY_WINDOW_SECS, SIGNATURE_HEADER};
use receiver::Delivery;
use serde_json::json;

fn ok_ids(d: &[Delivery]) -> HashSet<String> {
    d.iter()
        .filter(|d| d.ok())
        .map(|d| d.header("ikkuna-event-id").to_owned())
        .collect()
}

async fn admin_ok(h: &Harness, path: &str, body: serde_json::Value) -> serde_json::Value {
    let a = h.sandbox_admin("POST", path, Some(body)).await;
    assert!(a.status < 300, "{path}: {:?}", a.json());
    a.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_then_recovers_gets_every_event_exactly_as_signed() {
    let (h, rx) =
        support::start_with_receiver(&[("IKKUNA_WEBHOOKS_MAX_ATTEMPTS", "100")], 503).await;
    let citizen = h.citizen("Active");
    let token = h.token(&citizen);

    // message.created (twice), message.read, message.receipt_confirmed, consent.revoked,
    // consent.granted.
    let normal = admin_ok(
        &h,
        "/admin/messages",
        json!({"endUserId": citizen, "title": "Päätös", "body": "secret body"}),
    )
    .await["messageId"]
        .as_i64()
        .unwrap();
    let verifiable = admin_ok(
        &h,
        "/admin/messages",
        json!({"endUserId": citizen, "title": "Haaste", "body": "secret body",
               "messageServiceType": "Verifiable"}),
    )
    .await["messageId"]
        .as_i64()
        .unwrap();
    let read = h
        .call("GET", &format!("/v1/messages/{normal}"), Some(&token))
        .await;
    assert_eq!(read.status, 200);
    let receipt = h
        .call(
            "POST",
            &format!("/v1/messages/{verifiable}/receipt"),
            Some(&token),
        )
        .await;
    assert!(receipt.status < 300, "{:?}", receipt.json());
    admin_ok(&h, "/admin/consents/revoke", json!({"endUserId": citizen})).await;
    admin_ok(&h, "/admin/consents/grant", json!({"endUserId": citizen})).await;

    // The feed must show all six before the expected set is taken (message.read is emitted when
    // the opening reaches DVV).
    let mut feed = Vec::new();
    for _ in 0..100 {
        feed = support::feed(&h, "provider-a").await;
        if feed.len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expected: HashMap<String, (&'static str, String)> = feed
        .iter()
        .filter_map(|e| {
            let w = ikkuna::webhooks::WebhookEvent::from_feed(e)?;
            Some((w.id.clone(), (w.event_type, w.body())))
        })
        .collect();
    let types: HashSet<&str> = expected.values().map(|(t, _)| *t).collect();
    assert_eq!(types.len(), 5, "every webhook type is exercised: {types:?}");

    // Failures first, then recovery.
    rx.wait_for(30, "failed attempts", |d| {
        d.iter().filter(|d| !d.ok()).count() >= 6
    })
    .await;
    rx.set_status(200);
    let want: HashSet<String> = expected.keys().cloned().collect();
    let seen = rx
        .wait_for(30, "every event after recovery", |d| ok_ids(d) == want)
        .await;

    let now = chrono::Utc::now().timestamp();
    let secret = support::SECRET.as_bytes();
    for d in &seen {
        let id = d.header("ikkuna-event-id");
        let (event_type, body) = expected.get(id).expect("an id DVV's feed explains");
        // Exactly as signed: the body is the one the signature covers, with a fresh timestamp.
        verify(
            secret,
            d.header(SIGNATURE_HEADER),
            &d.body,
            now,
            REPLAY_WINDOW_SECS,
        )
        .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert!(verify(
            b"another secret of sufficient length!!",
            d.header(SIGNATURE_HEADER),
            &d.body,
            now,
            REPLAY_WINDOW_SECS
        )
        .is_err());
        assert_eq!(std::str::from_utf8(&d.body).unwrap(), body.as_str());
        assert_eq!(d.header("ikkuna-event-type"), *event_type);
        assert_eq!(d.header("content-type"), "application/json");
        let json = d.json();
        let keys: HashSet<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(
            keys.is_subset(&HashSet::from([
                "id",
                "type",
                "time",
                "consentId",
                "messageId",
                "notification"
            ])),
            "{keys:?}"
        );
        let text = String::from_utf8_lossy(&d.body);
        assert!(!text.contains(&citizen), "no identity code in a webhook");
        assert!(
            !text.contains("secret body") && !text.contains("Päätös"),
            "no content"
        );
    }
    let attempts: Vec<u32> = seen
        .iter()
        .filter(|d| d.ok())
        .map(|d| d.header("ikkuna-delivery-attempt").parse().unwrap())
        .collect();
    assert!(
        attempts.iter().any(|a| *a > 1),
        "retried deliveries: {attempts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_recovers_gets_parked_events_which_the_cli_replays() {
    let (h, rx) = support::start_with_receiver(&[("IKKUNA_WEBHOOKS_MAX_ATTEMPTS", "3")], 500).await;
    let citizen = h.citizen("Active");
    admin_ok(&h, "/admin/consents/revoke", json!({"endUserId": citizen})).await;
    admin_ok(&h, "/admin/consents/grant", json!({"endUserId": citizen})).await;

    rx.wait_for(30, "three attempts per event", |d| d.len() >= 6)
        .await;
    let mut parked = Vec::new();
    for _ in 0..100 {
        let (ok, out, err) = support::cli(&h, &["webhooks", "parked"]).await;
        assert!(ok, "{err}");
        parked = out
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
            .collect();
        if parked.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(parked.len(), 2, "{parked:?}");
    for p in &parked {
        assert_eq!(p["attempts"], 3);
        assert_eq!(p["lastStatus"], 500);
        assert_eq!(p["endpoint"], rx.url.as_str());
        assert!(p["eventType"].as_str().unwrap().starts_with("consent."));
    }
    // Parked means no more attempts.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.deliveries().len(), 6);

    rx.set_status(204);
    let (ok, out, err) = support::cli(&h, &["webhooks", "replay"]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("2 parked"), "{out}");
    let want: HashSet<String> = parked
        .iter()
        .map(|p| p["eventId"].as_str().unwrap().to_owned())
        .collect();
    rx.wait_for(30, "replayed deliveries", |d| ok_ids(d) == want)
        .await;
    let (_, out, _) = support::cli(&h, &["webhooks", "parked"]).await;
    assert!(out.trim().is_empty(), "{out}");
}
