//! Suomi.fi Messages is always there (policy line 4): every refusal that leaves the citizen
//! without their mail in this window carries the configured `fallbackUrl`, beside the consent
//! link; other refusals do not.

mod common;

use common::Harness;
use serde_json::json;

const FALLBACK: &str = "https://messages.example/read";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_that_leave_the_citizen_without_mail_link_to_suomi_fi_messages() {
    let h = Harness::start(&[("IKKUNA_DVV_FALLBACK_URL", FALLBACK)]).await;

    // No consent, and a revoked one: 403 with both links.
    for state in ["None", "Revoked"] {
        let token = h.token(&h.citizen(state));
        let a = h.call("GET", "/v1/messages", Some(&token)).await;
        assert_eq!(a.status, 403, "{state}");
        let body = a.json();
        assert_eq!(body["fallbackUrl"], FALLBACK, "{state}: {body}");
        assert!(body["consentServiceUrl"].is_string(), "{state}: {body}");
    }

    // Refusals that are not about the mail being out of reach carry no fallback.
    let active = h.citizen("Active");
    let token = h.token(&active);
    let a = h.call("GET", "/v1/messages/999999999", Some(&token)).await;
    assert_eq!(a.status, 404);
    assert!(a.json().get("fallbackUrl").is_none(), "{}", a.json());
    let a = h.call("GET", "/v1/messages", None).await;
    assert_eq!(a.status, 401);
    assert!(a.json().get("fallbackUrl").is_none(), "{}", a.json());

    // DVV unavailable: the gateway's 5xx carries it too.
    let f = h
        .sandbox_admin(
            "POST",
            "/admin/faults",
            Some(json!({"durationMs": 60000, "errorRate": 1.0})),
        )
        .await;
    assert!(f.status < 300);
    let a = h.call("GET", "/v1/messages", Some(&token)).await;
    assert!(a.status >= 500, "{}", a.status);
    assert_eq!(a.json()["fallbackUrl"], FALLBACK, "{}", a.json());
}
