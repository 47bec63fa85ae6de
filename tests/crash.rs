//! Openings survive a SIGKILL: recorded before the body leaves, delivered after restart, exactly
//! one opening id per message at DVV, none invented. The outbox holds no content.

mod common;

use common::Harness;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openings_survive_sigkill_and_are_delivered_exactly_once() {
    let mut h = Harness::start(&[]).await;
    let citizen = h.richest_citizen().await;
    let token = h.token(&citizen);
    let consent_id = h.call("GET", "/v1/consent", Some(&token)).await.json()["consentId"]
        .as_str()
        .expect("consentId")
        .to_owned();
    let page = h
        .call("GET", "/v1/messages?limit=100", Some(&token))
        .await
        .json();
    let normal: Vec<(i64, String)> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["messageServiceType"] == "Normal")
        .take(4)
        .map(|m| {
            (
                m["messageId"].as_i64().unwrap(),
                m["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(normal.len() >= 2, "{page}");

    // DVV refuses these openings for now, so they must wait in the outbox.
    let paths: Vec<String> = normal
        .iter()
        .map(|(id, _)| format!("/v1/consents/{consent_id}/messages/{id}/openings"))
        .collect();
    let f = h
        .sandbox_admin(
            "POST",
            "/admin/faults",
            Some(json!({"durationMs": 60000, "errorRate": 1.0, "paths": paths})),
        )
        .await;
    assert!(f.status < 300, "{:?}", f.json());

    for (id, _) in &normal {
        let a = h
            .call("GET", &format!("/v1/messages/{id}"), Some(&token))
            .await;
        assert_eq!(a.status, 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    h.kill_gateway().await;
    assert!(
        h.dvv_openings()
            .await
            .iter()
            .all(|o| !normal.iter().any(|(id, _)| o["messageId"] == *id)),
        "DVV refused them all while the gateway was up"
    );

    // The store holds ids and times only: no title, no identity code.
    let store_dir = h.dir.path().join("gateway");
    for entry in std::fs::read_dir(&store_dir).unwrap().flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&citizen),
            "identity code in {:?}",
            entry.path()
        );
        for (_, title) in &normal {
            assert!(
                !text.contains(title.as_str()),
                "title in {:?}",
                entry.path()
            );
        }
    }

    let cleared = h.sandbox_admin("DELETE", "/admin/faults", None).await;
    assert!(cleared.status < 300);
    h.start_gateway().await;

    let openings = h
        .wait_openings(30, |o| {
            normal
                .iter()
                .all(|(id, _)| o.iter().any(|x| x["messageId"] == *id))
        })
        .await;
    for (id, _) in &normal {
        let ours: Vec<_> = openings
            .iter()
            .filter(|x| x["messageId"] == *id && x["providerId"] == "provider-a")
            .collect();
        assert_eq!(ours.len(), 1, "exactly one opening for {id}: {ours:?}");
    }
    // None invented: every opening DVV has from us is for a message we released.
    for o in openings.iter().filter(|o| o["providerId"] == "provider-a") {
        assert!(
            normal.iter().any(|(id, _)| o["messageId"] == *id),
            "invented: {o}"
        );
    }
    // Nothing private in the gateway's log.
    let log = h.log_text();
    assert!(!log.contains(&citizen));
    assert!(!log.contains(&token));
    for (_, title) in &normal {
        assert!(!log.contains(title.as_str()));
    }
}
