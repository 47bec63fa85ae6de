//! Reminders of unread messages over real sockets, with both clocks moved ahead: DVV's through the
//! sandbox's admin call, the gateway's by restarting it (SIGKILL) with a clock offset. Two weeks
//! pass in seconds, and the receiver sees exactly the reminders it should: after the configured
//! delays, only where the sender allowed them, at most `max_count` per message, and none for a
//! message read or confirmed in another operator's window, nor after the consent ended.
//!
//! The one test of this binary moves the sandbox's process-wide clock, so it lives alone here.

mod common;
mod receiver;
mod support;

use std::collections::{BTreeSet, HashSet};

use common::Harness;
use ikkuna::dvv::OpeningReport;
use ikkuna_hetu::IdentityCode;
use receiver::Delivery;
use serde_json::{json, Value};

const DAY: i64 = 86_400;
/// Aino Testinen: active consents with both provider-a (the gateway) and provider-b.
const AINO: &str = "150385-9046";
/// Emma Uusimerkki: active consent with provider-a only.
const EMMA: &str = "090904A941E";

async fn new_message(h: &Harness, citizen: &str, verifiable: bool, remind: bool) -> i64 {
    let body = json!({
        "endUserId": citizen, "title": "Muistutettava", "body": "b",
        "messageServiceType": if verifiable { "Verifiable" } else { "Normal" },
        "notifications": {
            "senderDetailsInNotifications": "None",
            "unreadMessageNotification": {
                "reminder": if remind { "Default reminder" } else { "No reminders" }
            }
        }
    });
    let a = h.sandbox_admin("POST", "/admin/messages", Some(body)).await;
    assert!(a.status < 300, "{:?}", a.json());
    a.json()["messageId"].as_i64().expect("messageId")
}

async fn admin_ok(h: &Harness, path: &str, body: Value) -> Value {
    let a = h.sandbox_admin("POST", path, Some(body)).await;
    assert!(a.status < 300, "{path}: {:?}", a.json());
    a.json()
}

/// Distinct delivered webhooks of `event_type`, as JSON bodies (at least once: a redelivery of
/// the same id counts once).
fn delivered(d: &[Delivery], event_type: &str) -> Vec<Value> {
    let mut seen = HashSet::new();
    d.iter()
        .filter(|d| d.ok() && d.header("ikkuna-event-type") == event_type)
        .filter(|d| seen.insert(d.header("ikkuna-event-id").to_owned()))
        .map(Delivery::json)
        .collect()
}

/// `(messageId, reminder number)` of every distinct reminder delivered.
fn reminders(d: &[Delivery]) -> BTreeSet<(i64, u64)> {
    delivered(d, "message.reminder")
        .iter()
        .map(|r| {
            (
                r["messageId"].as_i64().unwrap(),
                r["reminder"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Moves DVV's clock and restarts the gateway (SIGKILL first) with its clock `days` ahead.
async fn move_clocks_to(h: &mut Harness, days: i64, dvv_already: &mut i64) {
    admin_ok(
        h,
        "/admin/clock",
        json!({"advanceSecs": (days - *dvv_already) * DAY}),
    )
    .await;
    *dvv_already = days;
    h.kill_gateway().await;
    h.gateway_env
        .retain(|(k, _)| k != "IKKUNA_REMINDERS_CLOCK_OFFSET_SECS");
    h.gateway_env.push((
        "IKKUNA_REMINDERS_CLOCK_OFFSET_SECS".into(),
        (days * DAY).to_string(),
    ));
    h.start_gateway().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_weeks_pass_and_exactly_the_due_reminders_arrive_none_for_mail_read_elsewhere() {
    let (mut h, rx) = support::start_with_receiver(
        &[
            ("IKKUNA_REMINDERS_MAX_COUNT", "2"),
            ("IKKUNA_REMINDERS_POLL_INTERVAL_MS", "200"),
        ],
        200,
    )
    .await;
    let other_window = support::dvv_client(&h, "provider-b");
    let aino = IdentityCode::parse(AINO).unwrap();
    let aino_at_b = other_window
        .lookup_consent(&aino)
        .await
        .expect("lookup")
        .value
        .expect("Aino has a consent with provider-b")
        .consent_id;

    // Day 0.
    let normal = new_message(&h, AINO, false, true).await; // reminded at 7 d and 14 d
    let no_reminders = new_message(&h, AINO, false, false).await; // never
    let read_elsewhere = new_message(&h, AINO, false, true).await; // read at day 2 at provider-b
    let verifiable = new_message(&h, AINO, true, true).await; // reminded at 3 d and 6 d
    let confirmed_elsewhere = new_message(&h, AINO, true, true).await; // confirmed at provider-b
    let revoked = new_message(&h, EMMA, false, true).await; // Emma revokes at day 1
    rx.wait_for(60, "six message.created webhooks", |d| {
        delivered(d, "message.created").len() >= 6
    })
    .await;

    // Day 1: Emma ends her consent. Day 2: the other window reads one message and confirms
    // another's receipt.
    let mut dvv_days = 0;
    admin_ok(&h, "/admin/clock", json!({"advanceSecs": DAY})).await;
    dvv_days += 1;
    admin_ok(&h, "/admin/consents/revoke", json!({"endUserId": EMMA})).await;
    admin_ok(&h, "/admin/clock", json!({"advanceSecs": DAY})).await;
    dvv_days += 1;
    // The other window's citizen reads the message (DVV releases it, on DVV's moved clock),
    // then its opening is reported at that moment of DVV's clock.
    other_window
        .get_message(&aino_at_b, read_elsewhere)
        .await
        .expect("provider-b reads the message");
    other_window
        .report_opening(
            &aino_at_b,
            read_elsewhere,
            &OpeningReport {
                opening_id: "reminder-test-read-elsewhere".into(),
                opened_at: chrono::Utc::now() + chrono::TimeDelta::days(dvv_days),
            },
        )
        .await
        .expect("provider-b reports its opening");
    other_window
        .confirm_receipt(&aino_at_b, confirmed_elsewhere)
        .await
        .expect("provider-b confirms receipt");
    rx.wait_for(60, "the read, the receipt and the revocation", |d| {
        !delivered(d, "message.read").is_empty()
            && !delivered(d, "message.receipt_confirmed").is_empty()
            && !delivered(d, "consent.revoked").is_empty()
    })
    .await;
    assert!(
        reminders(&rx.deliveries()).is_empty(),
        "nothing is due on day 2"
    );

    // Day 8: the first reminders.
    move_clocks_to(&mut h, 8, &mut dvv_days).await;
    let want = BTreeSet::from([(normal, 1), (verifiable, 1), (verifiable, 2)]);
    rx.wait_for(60, "the day-8 reminders", |d| reminders(d) == want)
        .await;

    // The citizen reads the normal message in the other window on day 8; a message that needs
    // a receipt arrives (reminded on day 11 and day 14).
    other_window
        .get_message(&aino_at_b, normal)
        .await
        .expect("provider-b reads the message");
    other_window
        .report_opening(
            &aino_at_b,
            normal,
            &OpeningReport {
                opening_id: "reminder-test-read-on-day-8".into(),
                opened_at: chrono::Utc::now() + chrono::TimeDelta::days(dvv_days),
            },
        )
        .await
        .expect("provider-b reports its opening");
    let marker = new_message(&h, AINO, true, true).await;
    rx.wait_for(60, "the day-8 read reached the gateway", |d| {
        delivered(d, "message.read")
            .iter()
            .any(|r| r["messageId"] == normal)
            && delivered(d, "message.created")
                .iter()
                .any(|c| c["messageId"] == marker)
    })
    .await;

    // Day 15: the marker's two reminders (due on days 11 and 14) prove the schedule was worked
    // through past day 14, where the normal message's second reminder would have fallen due.
    move_clocks_to(&mut h, 15, &mut dvv_days).await;
    rx.wait_for(60, "the marker's reminders", |d| {
        reminders(d).contains(&(marker, 2))
    })
    .await;
    let want = BTreeSet::from([
        (normal, 1),
        (verifiable, 1),
        (verifiable, 2),
        (marker, 1),
        (marker, 2),
    ]);
    assert_eq!(reminders(&rx.deliveries()), want);
    for never in [no_reminders, read_elsewhere, confirmed_elsewhere, revoked] {
        assert!(
            !reminders(&rx.deliveries()).iter().any(|(m, _)| *m == never),
            "message {never} must not be reminded"
        );
    }

    // Each reminder: a neutral hint (no sender, no title), the due time, the right consent.
    let all = delivered(&rx.deliveries(), "message.reminder");
    for r in &all {
        let hint = &r["notification"];
        assert!(hint.get("sender").is_none(), "{r}");
        assert_eq!(hint["source"], "neutral");
        assert_eq!(hint["en"]["title"], "Unread message");
        assert!(!r.to_string().contains("Muistutettava"));
        let needs_receipt = r["messageId"] == verifiable || r["messageId"] == marker;
        assert_eq!(
            hint["en"]["text"].as_str().unwrap().contains("receipt"),
            needs_receipt,
            "{r}"
        );
    }
    let normal_first = all
        .iter()
        .find(|r| r["messageId"] == normal)
        .expect("normal reminded");
    let created = delivered(&rx.deliveries(), "message.created")
        .into_iter()
        .find(|c| c["messageId"] == normal)
        .expect("created");
    let at = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap())
            .unwrap()
            .timestamp()
    };
    assert_eq!(
        at(normal_first) - at(&created),
        7 * DAY,
        "a week after arrival"
    );
    assert_eq!(normal_first["consentId"], created["consentId"]);
}
