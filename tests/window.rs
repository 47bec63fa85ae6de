//! The gateway's main job, end to end over real sockets and real TLS against the sandbox.

mod common;

use common::Harness;
use serde_json::{json, Value};

/// A seeded message of that service type, unconfirmed, with or without attachments (any if None).
fn first_message_of_type(
    page: &Value,
    service_type: &str,
    with_attachments: Option<bool>,
) -> Value {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| {
            m["messageServiceType"] == service_type
                && with_attachments
                    .is_none_or(|w| (m["attachmentCount"].as_i64().unwrap_or(0) > 0) == w)
                && m["receiptConfirmedAt"].is_null()
        })
        .cloned()
        .expect("seeded message of that kind")
}

async fn inbox(h: &Harness, token: &str) -> Value {
    let a = h.call("GET", "/v1/messages?limit=100", Some(token)).await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    a.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_lists_reads_and_reports_one_opening() {
    let h = Harness::start(&[]).await;
    let citizen = h.citizen("Active");
    let token = h.token(&citizen);

    let consent = h.call("GET", "/v1/consent", Some(&token)).await;
    assert_eq!(consent.status, 200);
    assert_eq!(consent.json()["state"], "Active");
    assert!(consent.json()["consentServiceUrl"].is_string());

    let page = inbox(&h, &token).await;
    let msg = first_message_of_type(&page, "Normal", Some(false));
    let id = msg["messageId"].as_i64().unwrap();

    let read = h
        .call("GET", &format!("/v1/messages/{id}"), Some(&token))
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.header("cache-control"), Some("no-store"));
    assert!(read.json()["body"].is_string());
    assert!(read.header("x-request-id").is_some());

    // A second read adds no opening.
    let again = h
        .call("GET", &format!("/v1/messages/{id}"), Some(&token))
        .await;
    assert_eq!(again.status, 200);

    let openings = h
        .wait_openings(20, |o| o.iter().any(|x| x["messageId"] == id))
        .await;
    let ours: Vec<_> = openings.iter().filter(|x| x["messageId"] == id).collect();
    assert_eq!(ours.len(), 1, "exactly one opening per message: {ours:?}");
    assert_eq!(ours[0]["providerId"], "provider-a");
    assert_eq!(ours[0]["firstOpen"], true);

    // DVV now shows it read.
    let page = inbox(&h, &token).await;
    let seen = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["messageId"] == id)
        .unwrap()
        .clone();
    assert!(seen["readAt"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_assertion_is_refused_with_the_right_status() {
    let h = Harness::start(&[]).await;
    let citizen = h.citizen("Active");
    let now = chrono::Utc::now().timestamp();
    let good = h.token(&citizen);

    let mut cases: Vec<(&str, String, u16)> = vec![
        ("missing", String::new(), 401),
        (
            "expired",
            h.assertion(&citizen, |c| {
                c["iat"] = json!(now - 600);
                c["nbf"] = json!(now - 600);
                c["exp"] = json!(now - 300);
            }),
            401,
        ),
        (
            "not yet valid",
            h.assertion(&citizen, |c| {
                c["nbf"] = json!(now + 600);
                c["iat"] = json!(now + 600);
                c["exp"] = json!(now + 900);
            }),
            401,
        ),
        (
            "too long-lived",
            h.assertion(&citizen, |c| c["exp"] = json!(now + 86_400 * 7)),
            401,
        ),
        (
            "wrong aud",
            h.assertion(&citizen, |c| c["aud"] = json!("someone-else")),
            401,
        ),
        (
            "wrong iss",
            h.assertion(&citizen, |c| c["iss"] = json!("https://evil.invalid")),
            401,
        ),
        (
            "acr too low",
            h.assertion(&citizen, |c| {
                c["acr"] = json!("http://ftn.ficora.fi/2017/loa1")
            }),
            403,
        ),
        (
            "invalid identity code",
            h.assertion("131052-308U", |_| {}),
            401,
        ),
        (
            "on behalf of",
            h.assertion(&citizen, |c| c["act"] = json!({"sub": "010190-936V"})),
            403,
        ),
    ];
    // alg none: a header claiming no signature, with the good payload.
    let parts: Vec<&str> = good.split('.').collect();
    let none_header = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
    cases.push(("alg none", format!("{none_header}.{}.", parts[1]), 401));
    // HMAC signed with the public JWKS bytes as the secret.
    let jwks = std::fs::read(h.info["operatorJwks"].as_str().unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&base64_decode(parts[1])).unwrap();
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some(h.operator_kid());
    let hmac =
        jsonwebtoken::encode(&hs, &claims, &jsonwebtoken::EncodingKey::from_secret(&jwks)).unwrap();
    cases.push(("hmac with public key", hmac, 401));
    // Unknown kid.
    let unknown_kid = h.sign(&claims, Some("no-such-key"));
    cases.push(("unknown kid", unknown_kid, 401));
    // Tampered payload: another citizen's code with the original signature.
    let other = h.info["citizens"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .find(|id| *id != citizen)
        .unwrap()
        .to_owned();
    let mut tampered_claims = claims.clone();
    tampered_claims["sub"] = json!(other);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        base64_url(tampered_claims.to_string().as_bytes()),
        parts[2]
    );
    cases.push(("tampered payload", tampered, 401));

    for (name, token, want) in &cases {
        let token = (!token.is_empty()).then_some(token.as_str());
        let a = h.call("GET", "/v1/messages", token).await;
        assert_eq!(a.status, *want, "case {name}: {:?}", a.json());
        assert!(a.json()["reason"].is_string(), "case {name} has a reason");
    }
    // Nothing refused reached DVV's message calls.
    let calls = h.dvv_calls("provider-a").await;
    assert!(
        calls
            .iter()
            .all(|c| !c["path"].as_str().unwrap_or("").contains("/messages")),
        "refused assertions caused DVV message calls: {calls:?}"
    );
    // And the good one still works.
    assert_eq!(h.call("GET", "/v1/messages", Some(&good)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_consent_and_revoked_consent_make_no_message_calls() {
    let h = Harness::start(&[]).await;
    for state in ["None", "Revoked"] {
        let citizen = h.citizen(state);
        let token = h.token(&citizen);
        let list = h.call("GET", "/v1/messages", Some(&token)).await;
        assert_eq!(list.status, 403, "{state}");
        assert!(list.json()["consentServiceUrl"].is_string());
        let read = h.call("GET", "/v1/messages/4100001", Some(&token)).await;
        assert_eq!(read.status, 403);
        let consent = h.call("GET", "/v1/consent", Some(&token)).await;
        assert_eq!(consent.json()["state"], state);
    }
    let calls = h.dvv_calls("provider-a").await;
    assert!(!calls.is_empty(), "the consent lookups are recorded");
    let message_calls: Vec<_> = calls
        .iter()
        .filter(|c| c["path"].as_str().unwrap_or("").contains("/messages"))
        .collect();
    assert!(message_calls.is_empty(), "{message_calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_is_honoured_within_the_bound() {
    let h = Harness::start(&[
        ("IKKUNA_CONSENT_REVOCATION_BOUND_SECS", "2"),
        ("IKKUNA_CONSENT_NEGATIVE_TTL_SECS", "1"),
    ])
    .await;
    let citizen = h.citizen("Active");
    let token = h.token(&citizen);
    assert_eq!(
        h.call("GET", "/v1/messages", Some(&token)).await.status,
        200
    );
    h.revoke_consent(&citizen).await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let after = h.call("GET", "/v1/messages", Some(&token)).await;
    assert_eq!(after.status, 403, "{:?}", after.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifiable_message_needs_receipt_before_its_body() {
    let h = Harness::start(&[]).await;
    let citizen = h.richest_citizen().await;
    let token = h.token(&citizen);
    let page = inbox(&h, &token).await;
    let msg = first_message_of_type(&page, "Verifiable", None);
    let id = msg["messageId"].as_i64().unwrap();

    let before = h
        .call("GET", &format!("/v1/messages/{id}"), Some(&token))
        .await;
    assert_eq!(before.status, 409);
    let body = before.json();
    assert!(body["reason"].is_string());
    assert_eq!(body["message"]["messageId"], id);
    assert!(body["message"].get("body").is_none() || body["message"]["body"].is_null());

    let confirm = h
        .call("POST", &format!("/v1/messages/{id}/receipt"), Some(&token))
        .await;
    assert_eq!(confirm.status, 200, "{:?}", confirm.json());
    assert!(confirm.json()["receiptConfirmedAt"].is_string());

    let after = h
        .call("GET", &format!("/v1/messages/{id}"), Some(&token))
        .await;
    assert_eq!(after.status, 200);
    assert!(after.json()["body"].is_string());
    h.wait_openings(20, |o| o.iter().any(|x| x["messageId"] == id))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_citizens_message_is_not_found() {
    let h = Harness::start(&[]).await;
    let aino = h.citizen("Active");
    // Find a citizen with an active consent and different mail: list theirs, read as Aino.
    let others: Vec<String> = h.info["citizens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["consent"] == "Active" && c["id"] != aino.as_str())
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    let mut foreign = None;
    for other in &others {
        let page = inbox(&h, &h.token(other)).await;
        if let Some(m) = page["messages"].as_array().and_then(|m| m.first()) {
            foreign = m["messageId"].as_i64();
            break;
        }
    }
    let foreign = foreign.expect("another citizen has mail");
    let a = h
        .call(
            "GET",
            &format!("/v1/messages/{foreign}"),
            Some(&h.token(&aino)),
        )
        .await;
    assert_eq!(a.status, 404);
    assert!(a.json()["reason"].is_string());
    let bad = h
        .call("GET", "/v1/messages/abc", Some(&h.token(&aino)))
        .await;
    assert_eq!(bad.status, 400);
    let none = h.call("GET", "/v1/nothing", Some(&h.token(&aino))).await;
    assert_eq!(none.status, 404);
    assert!(none.json()["reason"].is_string());
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dvv_refusing_a_revoked_consent_closes_the_window_at_once() {
    // A long revocation bound: the cached "active" answer would otherwise live 60 s.
    let h = Harness::start(&[("IKKUNA_CONSENT_REVOCATION_BOUND_SECS", "60")]).await;
    let citizen = h.citizen("Active");
    let token = h.token(&citizen);
    assert_eq!(
        h.call("GET", "/v1/messages", Some(&token)).await.status,
        200
    );
    h.revoke_consent(&citizen).await;
    let first = h.call("GET", "/v1/messages", Some(&token)).await;
    assert_eq!(first.status, 403, "{:?}", first.json());
    assert!(first.json()["consentServiceUrl"].is_string());
    let message_calls = |calls: Vec<Value>| {
        calls
            .iter()
            .filter(|c| c["path"].as_str().unwrap_or("").contains("/messages"))
            .count()
    };
    let before = message_calls(h.dvv_calls("provider-a").await);
    let second = h.call("GET", "/v1/messages", Some(&token)).await;
    assert_eq!(second.status, 403);
    let after = message_calls(h.dvv_calls("provider-a").await);
    assert_eq!(
        before, after,
        "no further message call after DVV said revoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_and_undecodable_paths_release_nothing_and_record_nothing() {
    let h = Harness::start(&[]).await;
    let citizen = h.citizen("Active");
    let token = h.token(&citizen);
    let page = inbox(&h, &token).await;
    let id = page["messages"][0]["messageId"].as_i64().unwrap();
    let head = h
        .call("HEAD", &format!("/v1/messages/{id}"), Some(&token))
        .await;
    assert_eq!(head.status, 405);
    let bad = h.call("GET", "/v1/messages/%FF", Some(&token)).await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["reason"].is_string());
    let bad = h
        .call("GET", "/v1/messages/%FF/attachments/1", Some(&token))
        .await;
    assert_eq!(bad.status, 400);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        h.dvv_openings().await.iter().all(|o| o["messageId"] != id),
        "HEAD must not record an opening"
    );
}
