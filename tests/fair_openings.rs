//! Fair first openings with real processes (the sandbox DVV and the gateway binary): an opening
//! made before a revocation survives DVV being down and the gateway being killed, is accepted and
//! marks the message read everywhere; the provider that opened first is the settled first open
//! even when its report arrives last; a backdated opening is refused with its named reason; parked
//! openings are listed and replayed; and `ledger reconcile` is clean after all that, and finds a
//! row deleted at DVV's side.

mod common;
mod receiver;
mod support;

use std::time::{Duration, Instant};

use common::Harness;
use ikkuna::dvv::{DvvError, FirstOpenStatus, OpeningRefusal, OpeningReport};
use serde_json::{json, Value};

/// Aino: consents with both providers.
const CITIZEN: &str = "150385-9046";

fn month() -> String {
    chrono::Utc::now().format("%Y-%m").to_string()
}

async fn new_message(h: &Harness, title: &str) -> i64 {
    let a = h
        .sandbox_admin(
            "POST",
            "/admin/messages",
            Some(json!({"endUserId": CITIZEN, "title": title, "body": "x"})),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.json());
    a.json()["messageId"].as_i64().unwrap()
}

/// `ikkuna ledger reconcile --month <now> --format json`: (exit ok, the JSON).
async fn reconcile(h: &Harness) -> (bool, Value) {
    let m = month();
    let (ok, out, err) = support::cli(
        h,
        &["ledger", "reconcile", "--month", &m, "--format", "json"],
    )
    .await;
    let json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} / {err}"));
    (ok, json)
}

async fn parked(h: &Harness) -> Vec<Value> {
    let (ok, out, err) = support::cli(h, &["openings", "parked"]).await;
    assert!(ok, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Installs a fault plan at the sandbox DVV (cleared by [`dvv_back`]).
async fn plan_faults(h: &Harness, plan: Value) {
    let f = h.sandbox_admin("POST", "/admin/faults", Some(plan)).await;
    assert!(f.status < 300, "{:?}", f.json());
}

/// DVV answers every call with 503 until the plan is cleared.
async fn dvv_down(h: &Harness) {
    plan_faults(h, json!({"durationMs": 120000, "errorRate": 1.0})).await;
}

/// DVV answers 503 to provider-a's report of the opening of `id` until the plan is cleared.
async fn hold_report(h: &Harness, id: i64) -> String {
    let consent_a = support::consent_id(h, CITIZEN).await;
    plan_faults(
        h,
        json!({"durationMs": 120000, "errorRate": 1.0, "methods": ["POST"],
                "paths": [format!("/v1/consents/{consent_a}/messages/{id}/openings")]}),
    )
    .await;
    consent_a
}

async fn dvv_back(h: &Harness) {
    let cleared = h.sandbox_admin("DELETE", "/admin/faults", None).await;
    assert!(cleared.status < 300);
}

/// open → DVV down → (SIGKILL) → revoke → DVV back: accepted, nothing parked, read everywhere,
/// reconciled clean; then a row deleted at DVV's side is a final discrepancy.
async fn open_then_revoke_while_dvv_is_down(kill: bool) {
    let mut h = Harness::start(&[]).await;
    let token = h.token(CITIZEN);
    let id = new_message(&h, "Read before the switch").await;
    // DVV refuses the report from the start (so it cannot slip through before the outage), the
    // citizen reads the message, then all of DVV goes down.
    hold_report(&h, id).await;
    let read = h
        .call("GET", &format!("/v1/messages/{id}"), Some(&token))
        .await;
    assert_eq!(read.status, 200);
    dvv_down(&h).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    if kill {
        h.kill_gateway().await;
    }
    // The citizen switches services: provider-a's consent is revoked while its report waits.
    tokio::time::sleep(Duration::from_millis(20)).await;
    h.revoke_consent(CITIZEN).await;
    assert!(
        !h.dvv_openings().await.iter().any(|o| o["messageId"] == id),
        "DVV was down: nothing reached it yet"
    );
    if kill {
        support::spawn_gateway_unready(&mut h);
    }
    dvv_back(&h).await;

    let openings = h
        .wait_openings(60, |o| {
            o.iter()
                .any(|x| x["messageId"] == id && x["providerId"] == "provider-a")
        })
        .await;
    let ours: Vec<&Value> = openings
        .iter()
        .filter(|o| o["messageId"] == id && o["providerId"] == "provider-a")
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0]["firstOpen"], true);
    assert_eq!(ours[0]["firstOpenStatus"], "Provisional");

    // Read in every window: provider-b sees readAt set.
    let b = support::dvv_client(&h, "provider-b");
    let consent_b = b
        .lookup_consent(&ikkuna_hetu::IdentityCode::parse(CITIZEN).unwrap())
        .await
        .unwrap()
        .value
        .unwrap()
        .consent_id;
    let seen = b.get_message(&consent_b, id).await.unwrap().value;
    assert_eq!(
        seen.summary
            .read_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        ours[0]["readAt"].as_str().map(str::to_owned)
    );

    // The gateway stored DVV's answer: nothing parked, the ledger reconciles clean.
    let deadline = Instant::now() + Duration::from_secs(30);
    let clean = loop {
        let (ok, r) = reconcile(&h).await;
        if ok && r["gatewayOpenings"] == 1 && r["provisional"].as_array().unwrap().len() == 1 {
            break r;
        }
        assert!(Instant::now() < deadline, "never reconciled clean: {r}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(clean["dvvOpenings"], 1);
    assert_eq!(clean["finalDiscrepancies"], 0);
    assert_eq!(clean["provisional"][0]["gatewayFirstOpen"], true);
    assert!(parked(&h).await.is_empty());
    let (ok, text, _) = support::cli(&h, &["ledger", "reconcile", "--month", &month()]).await;
    assert!(
        ok && text.contains("result: clean (1 verdicts still provisional)"),
        "{text}"
    );

    // A row deleted at DVV's side is a final discrepancy: non-zero exit, in every format.
    let opening_id = ours[0]["openingId"].as_str().unwrap();
    let deleted = h
        .sandbox_admin(
            "DELETE",
            &format!("/admin/openings?providerId=provider-a&openingId={opening_id}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, 200);
    let (ok, r) = reconcile(&h).await;
    assert!(!ok, "a final discrepancy exits non-zero: {r}");
    assert_eq!(r["finalDiscrepancies"], 1);
    assert_eq!(r["gatewayOnly"][0]["openingId"], opening_id);
    assert_eq!(r["gatewayOnly"][0]["final"], true);
    let (ok, csv, err) = support::cli(
        &h,
        &[
            "ledger",
            "reconcile",
            "--month",
            &month(),
            "--format",
            "csv",
        ],
    )
    .await;
    assert!(!ok && err.contains("1 final discrepancies"), "{err}");
    assert!(
        csv.contains(&format!("\ngateway_only,{opening_id},{id},")),
        "{csv}"
    );
    let log = h.log_text();
    assert!(!log.contains(CITIZEN), "no identity code in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opening_made_before_a_revocation_is_accepted_after_an_outage() {
    open_then_revoke_while_dvv_is_down(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opening_made_before_a_revocation_survives_a_sigkill_during_the_outage() {
    open_then_revoke_while_dvv_is_down(true).await;
}

/// provider-a's citizen opens first but its report is held up; provider-b opens later and reports
/// at once. provider-a is the settled first open; the ledger adopts the settled verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_opener_wins_even_when_its_report_arrives_last() {
    let mut h = Harness::with_sandbox_options(|o| {
        o.settlement_window = Duration::from_secs(15);
    })
    .await;
    h.start_gateway().await;
    let token = h.token(CITIZEN);
    let id = new_message(&h, "Opened in two windows").await;
    hold_report(&h, id).await;
    let read = h
        .call("GET", &format!("/v1/messages/{id}"), Some(&token))
        .await;
    assert_eq!(read.status, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;

    // provider-b: reads later, reports at once, and is provisionally first.
    let b = support::dvv_client(&h, "provider-b");
    let consent_b = b
        .lookup_consent(&ikkuna_hetu::IdentityCode::parse(CITIZEN).unwrap())
        .await
        .unwrap()
        .value
        .unwrap()
        .consent_id;
    b.get_message(&consent_b, id).await.unwrap();
    let report_b = OpeningReport {
        opening_id: uuid::Uuid::new_v4().to_string(),
        opened_at: chrono::Utc::now(),
    };
    let answer = b
        .report_opening(&consent_b, id, &report_b)
        .await
        .unwrap()
        .value;
    assert!(answer.first_open);
    assert_eq!(answer.first_open_status, FirstOpenStatus::Provisional);

    // A backdated opening is refused with its named, permanent reason.
    let backdated = OpeningReport {
        opening_id: uuid::Uuid::new_v4().to_string(),
        opened_at: chrono::Utc::now() - chrono::Duration::minutes(10),
    };
    let refused = b
        .report_opening(&consent_b, id, &backdated)
        .await
        .unwrap_err();
    assert_eq!(
        refused.opening_refusal(),
        Some(OpeningRefusal::OpenedBeforeRelease),
        "{refused:?}"
    );
    assert!(
        matches!(refused, DvvError::BadRequest { .. }),
        "{refused:?}"
    );

    // provider-a's report goes through late and takes the first open.
    dvv_back(&h).await;
    let openings = h
        .wait_openings(60, |o| {
            o.iter()
                .any(|x| x["messageId"] == id && x["providerId"] == "provider-a")
        })
        .await;
    let of = |p: &str| {
        openings
            .iter()
            .find(|o| o["messageId"] == id && o["providerId"] == p)
            .cloned()
            .unwrap()
    };
    assert!(
        of("provider-a")["receivedAt"].as_str() > of("provider-b")["receivedAt"].as_str(),
        "provider-a's report arrived last"
    );
    assert_eq!(of("provider-a")["firstOpen"], true);
    assert_eq!(of("provider-b")["firstOpen"], false);

    // Once settled, DVV's statement says so for both, and provider-a's ledger adopts it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let r = loop {
        let (ok, r) = reconcile(&h).await;
        if ok && r["provisional"].as_array().is_some_and(Vec::is_empty) && r["dvvOpenings"] == 1 {
            break r;
        }
        assert!(Instant::now() < deadline, "never settled clean: {r}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(r["finalDiscrepancies"], 0);
    let (start, end) = (
        chrono::Utc::now() - chrono::Duration::hours(1),
        chrono::Utc::now() + chrono::Duration::hours(1),
    );
    let statement_b = b.statement(start, end, None).await.unwrap().value;
    let line = statement_b
        .openings
        .iter()
        .find(|o| o.opening_id == report_b.opening_id)
        .unwrap();
    assert_eq!(
        (line.first_open, line.first_open_status),
        (false, FirstOpenStatus::Settled)
    );
    let dir = support::data_dir(&h);
    assert_eq!(
        support::store_count(
            &dir,
            "SELECT COUNT(*) FROM openings WHERE state = 'delivered' AND first_open = 1
             AND verdict_settles_at IS NULL"
        ),
        1,
        "the settled first open is in the ledger"
    );
}

/// A parked opening (the store is edited to stand for a permanent refusal) is listed without
/// identity codes and reported again by `openings replay`, across a SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_openings_are_listed_and_replayed() {
    let mut h = Harness::start(&[]).await;
    let token = h.token(CITIZEN);
    let id = new_message(&h, "Parked then replayed").await;
    let consent_a = hold_report(&h, id).await;
    let read = h
        .call("GET", &format!("/v1/messages/{id}"), Some(&token))
        .await;
    assert_eq!(read.status, 200);
    h.kill_gateway().await;
    let dir = support::data_dir(&h);
    {
        let conn = rusqlite::Connection::open(dir.join("ikkuna.db")).unwrap();
        let n = conn
            .execute(
                "UPDATE openings SET state = 'parked', last_error_kind = 'opened_outside_consent'
                 WHERE message_id = ?1",
                [id],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let list = parked(&h).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["messageId"], id);
    assert_eq!(list[0]["reason"], "opened_outside_consent");
    let line = list[0].to_string();
    assert!(
        !line.contains(CITIZEN) && !line.contains(&consent_a),
        "{line}"
    );
    let opening_id = list[0]["openingId"].as_str().unwrap().to_owned();

    dvv_back(&h).await;
    let (ok, out, err) = support::cli(&h, &["openings", "replay", "--id", &opening_id]).await;
    assert!(
        ok && out.starts_with("1 parked opening queued again"),
        "{out} {err}"
    );
    assert!(parked(&h).await.is_empty());
    h.start_gateway().await;
    let openings = h
        .wait_openings(60, |o| {
            o.iter().any(|x| x["openingId"] == opening_id.as_str())
        })
        .await;
    assert_eq!(
        openings
            .iter()
            .filter(|o| o["messageId"] == id && o["providerId"] == "provider-a")
            .count(),
        1
    );
}

/// A refusal the contract does not name permanent — here 403 `Consent revoked`, as a DVV without
/// consent periods answered — is retried, never parked, and the opening lands once DVV accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_the_contract_does_not_name_permanent_is_retried_not_parked() {
    let h = Harness::start(&[]).await;
    let token = h.token(CITIZEN);
    let id = new_message(&h, "Refused for now").await;
    let consent_a = support::consent_id(&h, CITIZEN).await;
    let path = format!("/v1/consents/{consent_a}/messages/{id}/openings");
    plan_faults(
        &h,
        json!({"durationMs": 120000, "errorRate": 1.0, "methods": ["POST"],
                "paths": [path.clone()], "errorStatus": 403,
                "errorReason": "Consent revoked"}),
    )
    .await;
    let read = h
        .call("GET", &format!("/v1/messages/{id}"), Some(&token))
        .await;
    assert_eq!(read.status, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let refused = h
            .dvv_calls("provider-a")
            .await
            .iter()
            .filter(|c| c["path"] == path.as_str() && c["status"] == 403)
            .count();
        if refused >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the gateway never retried");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(parked(&h).await.is_empty(), "nothing parked");
    dvv_back(&h).await;
    h.wait_openings(60, |o| {
        o.iter()
            .any(|x| x["messageId"] == id && x["providerId"] == "provider-a")
    })
    .await;
    assert!(parked(&h).await.is_empty());
}
