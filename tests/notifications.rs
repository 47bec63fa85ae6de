//! Notification hints over real sockets: the `message.created` webhook says what the operator may
//! show, as each sender allowed — the sender only when allowed, the sender's own texts when given,
//! a neutral text otherwise — and never a title, a body or a hidden sender. Canary titles, bodies
//! and sender names prove that a hidden sender reaches no webhook, no log line and no metric,
//! even while the citizen lists and reads those very messages through the gateway.

mod common;
mod receiver;
mod support;

use std::collections::HashMap;

use common::Harness;
use serde_json::{json, Value};

async fn new_message(h: &Harness, body: Value) -> i64 {
    let a = h.sandbox_admin("POST", "/admin/messages", Some(body)).await;
    assert!(a.status < 300, "{:?}", a.json());
    a.json()["messageId"].as_i64().expect("messageId")
}

fn settings(hidden: bool, customised: Option<(&str, &str)>) -> Value {
    let localised = |s: &str| json!({"fi": format!("{s} (fi)"), "sv": format!("{s} (sv)"), "en": format!("{s} (en)")});
    json!({
        "senderDetailsInNotifications": if hidden { "None" } else { "Organisation and service name" },
        "customisedNewMessageNotification": customised
            .map(|(title, text)| json!({"title": localised(title), "content": localised(text)})),
        "unreadMessageNotification": {"reminder": "Default reminder"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_follow_the_senders_settings_and_a_hidden_sender_never_leaves_the_inbox() {
    // Debug logging: the most the gateway ever writes.
    let (h, rx) = support::start_with_receiver(&[("RUST_LOG", "debug")], 200).await;
    let citizen = h.citizen("Active");
    let token = h.token(&citizen);
    let tag = format!("{:08x}", rand::random::<u32>());
    let hidden_sender = format!("CNRYHIDDENSENDER{tag}");
    let shown_sender = format!("ShownSender{tag}");
    let title = |n: u32| format!("CNRYTITLE{tag}n{n}");
    let body = |n: u32| format!("CNRYBODY{tag}n{n}");

    // (sender, settings, service type) → the hint expected.
    let plan = [
        (&hidden_sender, settings(true, None), "Normal"),
        (
            &hidden_sender,
            settings(true, Some(("Asiasi eteni", "Lue viesti"))),
            "Verifiable",
        ),
        (&shown_sender, settings(false, None), "Verifiable"),
        (
            &shown_sender,
            settings(false, Some(("Päätös valmis", "Katso päätös"))),
            "Normal",
        ),
    ];
    let mut ids = Vec::new();
    for (n, (sender, notifications, service)) in (1u32..).zip(plan.iter()) {
        ids.push(
            new_message(
                &h,
                json!({"endUserId": citizen, "title": title(n), "body": body(n),
                       "senderName": sender, "messageServiceType": service,
                       "notifications": notifications}),
            )
            .await,
        );
    }
    // The citizen lists the inbox and reads the hidden sender's normal message through the
    // gateway: its title, body and sender pass through, and must still leave no trace.
    let list = h.call("GET", "/v1/messages", Some(&token)).await;
    assert_eq!(list.status, 200);
    assert!(String::from_utf8_lossy(&list.body).contains(&hidden_sender));
    let read = h
        .call("GET", &format!("/v1/messages/{}", ids[0]), Some(&token))
        .await;
    assert_eq!(read.status, 200);

    let seen = rx
        .wait_for(60, "four message.created webhooks", |d| {
            d.iter()
                .filter(|d| d.header("ikkuna-event-type") == "message.created")
                .count()
                >= 4
        })
        .await;
    let hints: HashMap<i64, Value> = seen
        .iter()
        .filter(|d| d.header("ikkuna-event-type") == "message.created")
        .map(|d| {
            let json = d.json();
            (
                json["messageId"].as_i64().unwrap(),
                json["notification"].clone(),
            )
        })
        .collect();

    // Hidden, neutral: no sender, Ikkuna's neutral text.
    let h1 = &hints[&ids[0]];
    assert!(h1.get("sender").is_none(), "{h1}");
    assert_eq!(h1["source"], "neutral");
    assert_eq!(h1["fi"]["title"], "Uusi viesti");
    assert_eq!(h1["sv"]["title"], "Nytt meddelande");
    assert_eq!(h1["en"]["text"], "You have received a new message.");
    // Hidden, customised: the sender's own texts, still no sender.
    let h2 = &hints[&ids[1]];
    assert!(h2.get("sender").is_none(), "{h2}");
    assert_eq!(h2["source"], "sender");
    assert_eq!(h2["fi"]["title"], "Asiasi eteni (fi)");
    assert_eq!(h2["sv"]["text"], "Lue viesti (sv)");
    assert_eq!(h2["en"]["title"], "Asiasi eteni (en)");
    // Shown, neutral (Verifiable): the sender is named, the text asks for a receipt.
    let h3 = &hints[&ids[2]];
    assert_eq!(h3["sender"], shown_sender.as_str());
    assert_eq!(
        h3["en"]["title"],
        format!("New message from {shown_sender}")
    );
    assert!(h3["en"]["text"].as_str().unwrap().contains("receipt"));
    // Shown, customised.
    let h4 = &hints[&ids[3]];
    assert_eq!(h4["sender"], shown_sender.as_str());
    assert_eq!(h4["fi"]["text"], "Katso päätös (fi)");

    // Nothing secret anywhere: webhook bodies and headers, the gateway's log, its metrics.
    let metrics = h.scrape_metrics().await;
    let log = h.log_text();
    assert!(!log.is_empty());
    let secrets: Vec<String> = [
        hidden_sender.clone(),
        format!("CNRYTITLE{tag}"),
        format!("CNRYBODY{tag}"),
    ]
    .into();
    for d in &seen {
        let text = String::from_utf8_lossy(&d.body);
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "webhook carries {s}: {text}");
        }
        assert!(!text.contains(&citizen), "no identity code in a webhook");
    }
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "the gateway log holds {s}");
        assert!(!metrics.contains(s.as_str()), "the metrics hold {s}");
    }
    // A shown sender is not a secret in a webhook, but it is not logged either.
    assert!(!log.contains(&shown_sender));
}
