//! DVV down, slow, failing and stalling: clear 502/503/504 answers, and healthy afterwards.

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use http_body_util::BodyExt;
use serde_json::json;

const ENV: &[(&str, &str)] = &[
    ("IKKUNA_DVV_CALL_TIMEOUT_MS", "2000"),
    ("IKKUNA_DVV_CONNECT_TIMEOUT_MS", "1000"),
    ("IKKUNA_DVV_BODY_IDLE_TIMEOUT_MS", "1500"),
];

async fn fault(h: &Harness, spec: serde_json::Value) {
    let a = h.sandbox_admin("POST", "/admin/faults", Some(spec)).await;
    assert!(a.status < 300, "fault accepted: {:?}", a.json());
}

async fn clear(h: &Harness) {
    let a = h.sandbox_admin("DELETE", "/admin/faults", None).await;
    assert!(a.status < 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dvv_faults_become_clear_gateway_errors() {
    let h = Harness::start(ENV).await;
    let token = h.token(&h.richest_citizen().await);
    // Warm the consent cache so the faults hit the message calls.
    assert_eq!(
        h.call("GET", "/v1/messages", Some(&token)).await.status,
        200
    );

    // Slow: past the deadline → 504, answered near the deadline, not hung.
    fault(&h, json!({"durationMs": 20000, "latencyMs": 5000})).await;
    let started = Instant::now();
    let slow = h.call("GET", "/v1/messages", Some(&token)).await;
    assert_eq!(slow.status, 504, "{:?}", slow.json());
    assert!(slow.json()["reason"].is_string());
    assert!(started.elapsed() < Duration::from_secs(10));
    clear(&h).await;

    // 5xx every time → 502 after the retries.
    fault(&h, json!({"durationMs": 20000, "errorRate": 1.0})).await;
    let failing = h.call("GET", "/v1/messages", Some(&token)).await;
    assert_eq!(failing.status, 502, "{:?}", failing.json());
    clear(&h).await;

    // Dropped connections → 502.
    fault(&h, json!({"durationMs": 20000, "dropRate": 1.0})).await;
    let dropped = h.call("GET", "/v1/messages", Some(&token)).await;
    assert!(
        [502, 504].contains(&dropped.status),
        "dropped: {} {:?}",
        dropped.status,
        dropped.json()
    );
    clear(&h).await;

    // A body that stalls mid-stream: the client's stream ends in an error, not a hang.
    let page = h
        .call("GET", "/v1/messages?limit=100", Some(&token))
        .await
        .json();
    let with_attachment = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["attachmentCount"].as_i64().unwrap_or(0) > 0 && m["messageServiceType"] == "Normal"
        })
        .cloned()
        .expect("a message with attachments");
    let mid = with_attachment["messageId"].as_i64().unwrap();
    let detail = h
        .call("GET", &format!("/v1/messages/{mid}"), Some(&token))
        .await
        .json();
    let biggest = detail["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|a| a["size"].as_u64().unwrap_or(0))
        .cloned()
        .unwrap();
    let aid = biggest["attachmentId"].as_i64().unwrap();
    fault(&h, json!({"durationMs": 20000, "stallRate": 1.0})).await;
    let started = Instant::now();
    let resp = h
        .open_stream(&format!("/v1/messages/{mid}/attachments/{aid}"), &token)
        .await;
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        let mut body = resp.into_body();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => n += f.data_ref().map(|d| d.len() as u64).unwrap_or(0),
                Err(_) => return (n, true),
            }
        }
        (n, false)
    })
    .await
    .expect("a stalled body is cut off, never hangs");
    let size = biggest["size"].as_u64().unwrap();
    assert!(
        outcome.1 || outcome.0 < size,
        "stalled body was not cut short"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    clear(&h).await;

    // Healthy again once the faults stop.
    assert_eq!(
        h.call("GET", "/v1/messages", Some(&token)).await.status,
        200
    );
    let ready = h
        .get_plain(&format!("{}/readyz", h.gateway_admin_url()))
        .await
        .unwrap();
    assert_eq!(ready.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dvv_down_is_a_clear_error_and_not_ready() {
    let mut h = Harness::start(ENV).await;
    let token = h.token(&h.richest_citizen().await);
    assert_eq!(
        h.call("GET", "/v1/messages", Some(&token)).await.status,
        200
    );
    h.stop_sandbox().await;
    let started = Instant::now();
    let down = h.call("GET", "/v1/messages", Some(&token)).await;
    assert!([502, 503, 504].contains(&down.status), "{}", down.status);
    assert!(down.json()["reason"].is_string());
    assert!(started.elapsed() < Duration::from_secs(10));
    // Gateway itself still answers its admin endpoints.
    let health = h
        .get_plain(&format!("{}/healthz", h.gateway_admin_url()))
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    h.kill_gateway().await;
}
