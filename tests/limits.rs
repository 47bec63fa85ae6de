//! Rate limits: a burst over a citizen's or a client's limit gets 429 with `Retry-After` and a
//! reason, other citizens are unaffected, and the refusals are counted.

mod common;

use common::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_over_the_citizen_and_client_limits_get_429_with_retry_after() {
    let h = Harness::start(&[
        ("IKKUNA_LIMITS_CITIZEN_PER_MINUTE", "1"),
        ("IKKUNA_LIMITS_CITIZEN_BURST", "3"),
        ("IKKUNA_LIMITS_CLIENT_PER_SECOND", "1"),
        ("IKKUNA_LIMITS_CLIENT_BURST", "12"),
    ])
    .await;
    let citizens: Vec<String> = h.citizens("Active");
    assert!(citizens.len() >= 2);
    let busy = h.token(&citizens[0]);
    for _ in 0..3 {
        assert_eq!(h.call("GET", "/v1/consent", Some(&busy)).await.status, 200);
    }
    let over = h.call("GET", "/v1/consent", Some(&busy)).await;
    assert_eq!(over.status, 429);
    let retry: u64 = over
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry >= 1);
    let reason = over.json()["reason"].as_str().unwrap_or("").to_owned();
    assert!(reason.contains("citizen"), "{reason}");
    assert_eq!(over.header("cache-control"), Some("no-store"));

    // Another citizen still gets through: the limit is per citizen.
    let other = h.token(&citizens[1]);
    assert_eq!(h.call("GET", "/v1/consent", Some(&other)).await.status, 200);

    // A flood from this client runs into the client limit, even with fresh citizens.
    let mut client_refusals = 0;
    for i in 0..40 {
        let token = h.token(&citizens[i % citizens.len()]);
        let a = h.call("GET", "/v1/consent", Some(&token)).await;
        if a.status == 429
            && a.json()["reason"]
                .as_str()
                .is_some_and(|r| r.contains("operator client"))
        {
            assert!(a.header("retry-after").is_some());
            client_refusals += 1;
        }
    }
    assert!(
        client_refusals > 0,
        "the client limit refused part of a flood"
    );

    let metrics = h.scrape_metrics().await;
    for scope in ["citizen", "client"] {
        assert!(
            metrics.contains(&format!(
                "ikkuna_rate_limited_requests_total{{scope=\"{scope}\"}}"
            )),
            "{scope} refusals counted"
        );
    }
    // The refusal of the citizen is in the audit trail.
    let audited = h
        .audit_records()
        .into_iter()
        .any(|r| r["reason"] == "rate_limited_citizen" && r["status"] == 429);
    assert!(audited, "rate-limit refusals are audited");
}
