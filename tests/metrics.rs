//! `/metrics` on the admin listener: every family the operators' dashboards use, Prometheus
//! conventions checked by `promtool check metrics`, and no label that could hold a citizen.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::Harness;
use tokio::io::AsyncWriteExt;

/// Runs `promtool check metrics` on `text`; `None` when promtool is not installed.
async fn promtool(text: &str) -> Option<(bool, String)> {
    let mut child = match tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("promtool cannot run: {e}"),
    };
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(text.as_bytes())
        .await
        .expect("feed promtool");
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("promtool finishes")
        .expect("promtool output");
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_conventional_and_citizen_free() {
    let h = Harness::start(&[]).await;
    let citizen = h.richest_citizen().await;
    let token = h.token(&citizen);
    let page = h.call("GET", "/v1/messages", Some(&token)).await;
    assert_eq!(page.status, 200);
    let first = page.json()["messages"][0]["messageId"]
        .as_i64()
        .expect("a message");
    assert_eq!(
        h.call("GET", &format!("/v1/messages/{first}"), Some(&token))
            .await
            .status,
        200
    );
    assert_eq!(h.call("GET", "/v1/messages", None).await.status, 401);

    // sandbox.json names the gateway's admin listener.
    let admin = h.info["gatewayAdminUrl"].as_str().expect("gatewayAdminUrl");
    assert_eq!(admin, h.gateway_admin_url());
    let text = h.scrape_metrics().await;

    for family in [
        "ikkuna_http_requests_total{method=\"GET\",route=\"/v1/messages\",status=\"200\"}",
        "ikkuna_http_requests_total{method=\"GET\",route=\"/v1/messages\",status=\"401\"}",
        "ikkuna_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/messages/{message_id}\"",
        "ikkuna_dvv_request_duration_seconds_count{operation=\"list_messages\",outcome=\"ok\"}",
        "ikkuna_dvv_request_duration_seconds_count{operation=\"lookup_consent\",outcome=\"ok\"}",
        "ikkuna_dvv_token_renewals_total{outcome=\"ok\"}",
        "ikkuna_consent_cache_hits_total",
        "ikkuna_consent_cache_misses_total",
        "ikkuna_openings_outbox_pending",
        "ikkuna_openings_outbox_oldest_pending_age_seconds",
        "ikkuna_audit_records_total",
        "ikkuna_webhook_queue_pending",
        "ikkuna_events_feed_lag_seconds",
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    assert!(value("ikkuna_consent_cache_misses_total") >= 1.0);
    assert!(value("ikkuna_consent_cache_hits_total") >= 1.0);
    assert!(value("ikkuna_audit_records_total") >= 3.0);

    // No label value can name a citizen, carry a token or content.
    for c in h.info["citizens"].as_array().expect("citizens") {
        assert!(!text.contains(c["id"].as_str().expect("id")));
    }
    assert!(!text.contains("eyJ") && !text.contains(&token[..20]));
}

/// Prometheus' own linter accepts the exposition, after the same kinds of traffic as above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs promtool (apt-get install prometheus); run: cargo test --test metrics -- --ignored"]
async fn promtool_accepts_the_exposition() {
    let h = Harness::start(&[]).await;
    let citizen = h.richest_citizen().await;
    let token = h.token(&citizen);
    let page = h.call("GET", "/v1/messages", Some(&token)).await;
    assert_eq!(page.status, 200);
    let first = page.json()["messages"][0]["messageId"]
        .as_i64()
        .expect("a message");
    assert_eq!(
        h.call("GET", &format!("/v1/messages/{first}"), Some(&token))
            .await
            .status,
        200
    );
    assert_eq!(h.call("GET", "/v1/messages", None).await.status, 401);
    let text = h.scrape_metrics().await;
    let (ok, output) = promtool(&text)
        .await
        .expect("promtool is not installed: apt-get install prometheus");
    assert!(ok, "promtool check metrics failed:\n{output}");
}

/// Every metric the example Grafana dashboard queries is one the gateway defines.
#[test]
fn the_grafana_dashboard_queries_only_defined_metrics() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dashboard = std::fs::read_to_string(format!("{root}/examples/grafana-dashboard.json"))
        .expect("dashboard");
    let defined =
        std::fs::read_to_string(format!("{root}/src/telemetry/metrics.rs")).expect("metrics.rs");
    let _: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    let mut names = 0;
    for (at, _) in dashboard.match_indices("ikkuna_") {
        let name: String = dashboard[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(
            defined.contains(&format!("\"{base}\"")),
            "{base} is not defined"
        );
        names += 1;
    }
    assert!(names >= 15, "the dashboard queries the gateway's metrics");
}
