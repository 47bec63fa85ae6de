//! Nothing that names a citizen, authenticates one, or is content reaches the gateway's logs,
//! metrics or audit trail, even at trace level and with identity codes and tokens placed where a
//! careless log line would pick them up.

mod common;

use common::Harness;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_metrics_and_audit_hold_no_identity_code_token_or_content() {
    let h = Harness::start(&[("RUST_LOG", "trace")]).await;
    let citizen = h.richest_citizen().await;
    let token = h.token(&citizen);

    // Normal use: list, read every message on the first page (titles and bodies are content).
    let page = h.call("GET", "/v1/messages?limit=20", Some(&token)).await;
    assert_eq!(page.status, 200);
    let mut content: Vec<String> = Vec::new();
    for m in page.json()["messages"].as_array().expect("messages") {
        content.push(m["title"].as_str().unwrap_or("").to_owned());
        let id = m["messageId"].as_i64().expect("id");
        let read = h
            .call("GET", &format!("/v1/messages/{id}"), Some(&token))
            .await;
        if read.status == 200 {
            content.push(read.json()["body"].as_str().unwrap_or("").to_owned());
        }
    }

    // Misuse: identity codes and tokens where they do not belong.
    let probes = [
        format!("/v1/messages?continuationToken={citizen}"),
        format!("/v1/{citizen}"),
        format!("/v1/messages/{citizen}"),
    ];
    for path in &probes {
        let a = h.call("GET", path, Some(&token)).await;
        assert!(a.status >= 400, "{path}: {}", a.status);
    }
    let a = h
        .call_with(
            "GET",
            "/v1/messages",
            Some(&citizen),
            &[("x-citizen", &citizen), ("x-forwarded-token", &token)],
        )
        .await;
    assert_eq!(a.status, 401, "an identity code is not a token");

    // The access log has a request id on every line and DVV's trace id beside it.
    let log = h.log_text();
    let access: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "operator api")
        .collect();
    assert!(access.len() >= 5, "access log lines: {}", access.len());
    for line in &access {
        let id = line["span"]["request_id"]
            .as_str()
            .or_else(|| line["spans"][0]["request_id"].as_str())
            .or_else(|| line["request_id"].as_str());
        assert!(id.is_some_and(|i| i.len() == 36), "request id on {line}");
    }
    assert!(
        access
            .iter()
            .any(|l| l["dvv_trace_id"].as_str().is_some_and(|t| !t.is_empty())),
        "DVV's traceId logged beside the request"
    );

    let metrics = h.scrape_metrics().await;
    let audit = std::fs::read_to_string(h.audit_log()).expect("audit file");
    for (name, text) in [("log", &log), ("metrics", &metrics), ("audit", &audit)] {
        for c in h.info["citizens"].as_array().expect("citizens") {
            let id = c["id"].as_str().expect("id");
            assert!(!text.contains(id), "{name}: holds an identity code");
        }
        assert!(
            !text.contains(&token[token.len() - 20..]),
            "{name}: holds a token"
        );
        assert!(!text.contains("eyJ"), "{name}: holds a JWT");
        for c in content.iter().filter(|c| c.len() >= 8) {
            assert!(!text.contains(c.as_str()), "{name}: holds message content");
        }
    }
}
