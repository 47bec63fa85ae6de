//! The ledger over real sockets: its numbers equal what the sandbox DVV recorded for the same
//! run, including first opens that a second provider won.

mod common;
mod receiver;
mod support;

use std::time::{Duration, Instant};

use common::Harness;
use ikkuna::dvv::OpeningReport;
use serde_json::{json, Value};

async fn ledger_json(h: &Harness, extra: &[&str]) -> Value {
    let mut args = vec!["ledger", "report"];
    args.extend_from_slice(extra);
    let (ok, out, err) = support::cli(h, &args).await;
    assert!(ok, "ledger report failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_numbers_equal_what_dvv_recorded_with_a_second_provider_winning_some() {
    let h = Harness::start(&[]).await;
    // Aino has consents with both providers.
    let citizen = "150385-9046";
    let token = h.token(citizen);

    // New mail, so nobody has opened it yet.
    let mut messages = Vec::new();
    for n in 0..5 {
        let a = h
            .sandbox_admin(
                "POST",
                "/admin/messages",
                Some(json!({"endUserId": citizen, "title": format!("Ledger {n}"), "body": "x"})),
            )
            .await;
        assert_eq!(a.status, 201, "{:?}", a.json());
        messages.push(a.json()["messageId"].as_i64().unwrap());
    }

    // provider-b opens two of them first, in its own window.
    let b = support::dvv_client(&h, "provider-b");
    let consent_b = b
        .lookup_consent(&ikkuna_hetu::IdentityCode::parse(citizen).unwrap())
        .await
        .expect("lookup as provider-b")
        .value
        .expect("Aino has a consent with provider-b")
        .consent_id;
    for id in &messages[..2] {
        b.get_message(&consent_b, *id)
            .await
            .expect("provider-b reads the message");
        let report = OpeningReport {
            opening_id: uuid::Uuid::new_v4().to_string(),
            opened_at: chrono::Utc::now(),
        };
        let answer = b.report_opening(&consent_b, *id, &report).await.unwrap();
        assert!(answer.value.first_open, "provider-b was first");
    }

    // The citizen reads all five through this gateway (provider-a).
    for id in &messages {
        let read = h
            .call("GET", &format!("/v1/messages/{id}"), Some(&token))
            .await;
        assert_eq!(read.status, 200);
    }
    let openings = h
        .wait_openings(30, |o| {
            o.iter().filter(|o| o["providerId"] == "provider-a").count() >= messages.len()
        })
        .await;
    let ours: Vec<&Value> = openings
        .iter()
        .filter(|o| o["providerId"] == "provider-a")
        .collect();
    let dvv_first_opens = ours.iter().filter(|o| o["firstOpen"] == true).count();
    assert_eq!(dvv_first_opens, 3, "provider-b won two: {ours:?}");

    // The ledger settles once the outbox has stored DVV's answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let report = ledger_json(&h, &[]).await;
        if report["total"]["delivered"] == json!(ours.len()) {
            break report;
        }
        assert!(Instant::now() < deadline, "ledger never settled: {report}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let total = &report["total"];
    assert_eq!(total["recorded"], json!(ours.len()));
    assert_eq!(total["delivered"], json!(ours.len()));
    assert_eq!(total["pending"], 0);
    assert_eq!(total["parked"], 0);
    assert_eq!(total["firstOpens"], json!(dvv_first_opens));
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    assert_eq!(report["months"][0]["month"], month.as_str());
    assert_eq!(report["timeZone"], "UTC");

    // CSV carries the same numbers; a period without openings is empty.
    let (ok, csv, err) = support::cli(&h, &["ledger", "report", "--format", "csv"]).await;
    assert!(ok, "{err}");
    let n = ours.len();
    assert_eq!(
        csv,
        format!(
            "month,recorded,delivered,pending,parked,first_opens\n{month},{n},{n},0,0,{dvv_first_opens}\ntotal,{n},{n},0,0,{dvv_first_opens}\n"
        )
    );
    let empty = ledger_json(&h, &["--from", "2020-01-01", "--to", "2020-12-31"]).await;
    assert_eq!(empty["total"]["recorded"], 0);
    assert_eq!(empty["months"], json!([]));
    let (ok, _, err) = support::cli(&h, &["ledger", "report", "--from", "2026-13-01"]).await;
    assert!(!ok && err.contains("YYYY-MM-DD"), "{err}");
}
