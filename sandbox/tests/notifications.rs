//! Notification settings travel with each message (inbox, message, `Electronic message created`)
//! in the Suomi.fi Messages shape, and DVV's clock moves forward on request.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn notification_settings_travel_with_the_message_and_its_created_event() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let t = a.token().await;
    let consent = a.consent_id(&t, AINO).await;
    let (_, start) = drain_events(&a, &t, None).await;

    let settings = json!({
        "senderDetailsInNotifications": "None",
        "customisedNewMessageNotification": {
            "title": {"fi": "Uusi viesti", "sv": "Nytt meddelande", "en": "New message"},
            "content": {"fi": "Lue viesti.", "sv": "Läs meddelandet.", "en": "Read the message."}
        },
        "unreadMessageNotification": {"reminder": "No reminders"}
    });
    let (hidden, _) = h
        .admin
        .new_message(json!({"endUserId": AINO, "title": "t", "body": "b",
            "senderName": "Klinikka", "messageServiceType": "Verifiable",
            "notifications": settings}))
        .await;
    let (plain, _) = h
        .admin
        .new_message(json!({"endUserId": AINO, "title": "t", "body": "b"}))
        .await;

    let detail = a
        .get(&format!("/v1/consents/{consent}/messages/{hidden}"), &t)
        .await
        .expect(200)
        .json();
    assert_eq!(detail["notifications"], settings);
    let defaults = json!({
        "senderDetailsInNotifications": "Organisation and service name",
        "customisedNewMessageNotification": null,
        "unreadMessageNotification": {"reminder": "Default reminder"}
    });
    let list = all_messages(&a, &t, &consent, 100).await;
    let summary = |id: i64| -> Value {
        list.iter()
            .find(|m| m["messageId"] == id)
            .cloned()
            .expect("listed")
    };
    assert_eq!(summary(hidden)["notifications"], settings);
    assert_eq!(summary(plain)["notifications"], defaults);
    // Seeded messages carry theirs too: Aino's inbox has a hidden sender.
    assert!(list
        .iter()
        .any(|m| m["notifications"]["senderDetailsInNotifications"] == "None"));

    let (events, _) = drain_events(&a, &t, Some(&start)).await;
    let created: Vec<&Value> = events
        .iter()
        .filter(|e| e["eventType"] == "Electronic message created")
        .collect();
    assert_eq!(created.len(), 2, "{events:?}");
    let m = &created[0]["metadata"];
    assert_eq!(m["messageId"], hidden);
    assert_eq!(m["senderName"], "Klinikka");
    assert_eq!(m["messageServiceType"], "Verifiable");
    assert_eq!(m["notifications"], settings);
    assert!(m.get("title").is_none() && m.get("body").is_none());
    assert_eq!(created[1]["metadata"]["notifications"], defaults);

    // Other events carry none of it.
    // An opening follows the release of the content (the contract corroborates openedAt).
    a.get(&format!("/v1/consents/{consent}/messages/{plain}"), &t)
        .await
        .expect(200);
    let opened_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    a.post_json(
        &format!("/v1/consents/{consent}/messages/{plain}/openings"),
        &t,
        &json!({"openingId": "op-notif-1", "openedAt": opened_at}),
    )
    .await
    .expect(201);
    let (events, _) = drain_events(&a, &t, Some(&start)).await;
    let read = events
        .iter()
        .find(|e| e["eventType"] == "Electronic message read")
        .expect("read event");
    assert!(read["metadata"].get("notifications").is_none(), "{read}");

    // Invalid settings are refused.
    for notifications in [
        json!({"senderDetailsInNotifications": "Nobody"}),
        json!({"unreadMessageNotification": {"reminder": "Sometimes"}}),
        json!({"customisedNewMessageNotification": {
            "title": {"fi": "", "sv": "x", "en": "x"},
            "content": {"fi": "x", "sv": "x", "en": "x"}}}),
        json!({"customisedNewMessageNotification": {
            "title": {"fi": "x", "sv": "x"},
            "content": {"fi": "x", "sv": "x", "en": "x"}}}),
    ] {
        h.admin
            .post(
                "/admin/messages",
                json!({"endUserId": AINO, "title": "t", "body": "b",
                    "notifications": notifications}),
            )
            .await
            .expect(400);
    }
}
