//! The client against a scripted mutual-TLS server on loopback: real sockets, real TLS.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use ikkuna_hetu::IdentityCode;
use serde_json::json;

use super::*;
use crate::dvv::contract::{ConsentState, EventType};
use crate::dvv::testing::{
    reply_json, reply_token, Pki, Recorded, Reply, ReplyBody, Script, TestServer,
};

fn script<F, Fut>(f: F) -> Script
where
    F: Fn(Recorded) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    Arc::new(move |request| Box::pin(f(request)))
}

/// A token endpoint issuing `token-1`, `token-2`, ... and `answer` for everything else.
fn with_tokens<F>(answer: F) -> Script
where
    F: Fn(Recorded) -> Reply + Send + Sync + 'static,
{
    let issued = Arc::new(AtomicUsize::new(0));
    script(move |request| {
        let reply = if request.path() == "/v1/token" {
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            reply_token(&format!("token-{n}"), 300)
        } else {
            answer(request)
        };
        async move { reply }
    })
}

fn page() -> serde_json::Value {
    json!({"messages": [{"messageId": 42, "senderName": "Verohallinto", "title": "Päätös",
        "createdAt": "2026-11-21T10:00:00.000Z", "readAt": null, "messageServiceType": "Normal",
        "receiptConfirmedAt": null, "attachmentCount": 1}], "continuationToken": null})
}

fn citizen() -> IdentityCode {
    IdentityCode::parse("131052-308T").unwrap()
}

fn client(server: &TestServer, overrides: &[(&str, &str)]) -> DvvClient {
    DvvClient::new(&server.dvv_config(overrides)).unwrap()
}

#[tokio::test]
async fn lookup_sends_the_identity_code_only_in_the_body() {
    let server = TestServer::start(with_tokens(|request| {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        if request.path() == "/v1/consents/lookup" && body["endUserId"] == "131052-308T" {
            reply_json(
                200,
                json!({"consentId": "c-1", "state": "Active",
                "grantedAt": "2026-01-01T00:00:00.000Z", "revokedAt": null}),
            )
        } else {
            reply_json(404, json!({"reason": "No consent for this provider"}))
        }
    }))
    .await;
    let client = client(&server, &[]);

    let found = client.lookup_consent(&citizen()).await.unwrap();
    assert_eq!(found.trace_id.as_deref(), Some("trace-0001"));
    let record = found.value.unwrap();
    assert_eq!(record.consent_id, "c-1");
    assert_eq!(record.state, ConsentState::Active);

    let stranger = IdentityCode::compose(1, 1, 1990, '-', 2).unwrap();
    assert_eq!(client.lookup_consent(&stranger).await.unwrap().value, None);

    for request in server.recorded() {
        assert!(!request.target.contains("131052"), "identity code in a URL");
        for value in request.headers.values() {
            assert!(
                !value.to_str().unwrap_or("").contains("131052"),
                "identity code in a header"
            );
        }
    }
    let lookup = server
        .recorded()
        .into_iter()
        .find(|r| r.path() == "/v1/consents/lookup")
        .unwrap();
    assert_eq!(lookup.method, http::Method::POST);
    assert_eq!(lookup.headers["content-type"], "application/json");
    assert_eq!(lookup.bearer(), Some("token-1"));
}

#[tokio::test]
async fn the_token_request_carries_a_valid_client_assertion() {
    let server = TestServer::start(with_tokens(|_| reply_json(200, page()))).await;
    let client = client(&server, &[]);
    client.ensure_token().await.unwrap();

    let token = server
        .recorded()
        .into_iter()
        .find(|r| r.path() == "/v1/token")
        .unwrap();
    assert_eq!(token.method, http::Method::POST);
    assert_eq!(
        token.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&token.body)
        .into_owned()
        .collect();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    let aud = format!("{}/v1/token", server.base_url());
    let key =
        jsonwebtoken::DecodingKey::from_ec_pem(server.pki.assertion_public_pem.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[&aud]);
    let claims =
        jsonwebtoken::decode::<serde_json::Value>(&form["client_assertion"], &key, &validation)
            .unwrap()
            .claims;
    assert_eq!(claims["iss"], "provider-a");
    assert_eq!(claims["sub"], "provider-a");
}

#[tokio::test]
async fn concurrent_calls_share_one_token_request() {
    let tokens = Arc::new(AtomicUsize::new(0));
    let counter = tokens.clone();
    let server = TestServer::start(script(move |request| {
        let counter = counter.clone();
        async move {
            if request.path() == "/v1/token" {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                reply_token("token-1", 300)
            } else {
                reply_json(200, page())
            }
        }
    }))
    .await;
    let client = client(&server, &[]);
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.list_messages("c-1", None, None).await })
        })
        .collect();
    for call in calls {
        let page = call.await.unwrap().unwrap();
        assert_eq!(page.value.messages[0].message_id, 42);
    }
    assert_eq!(tokens.load(Ordering::SeqCst), 1);
    assert_eq!(server.count("/v1/consents/c-1/messages"), 50);
}

#[tokio::test]
async fn a_401_renews_the_token_once_and_retries_once() {
    let server = TestServer::start(with_tokens(|request| match request.bearer() {
        Some("token-1") => reply_json(401, json!({"reason": "Token expired"})),
        _ => reply_json(200, page()),
    }))
    .await;
    let client = client(&server, &[]);
    client.list_messages("c-1", None, None).await.unwrap();
    assert_eq!(server.count("/v1/token"), 2);
    assert_eq!(server.count("/v1/consents/c-1/messages"), 2);

    let server = TestServer::start(with_tokens(|_| reply_json(401, json!({"reason": "no"})))).await;
    let client = self::client(&server, &[]);
    let error = client.get_message("c-1", 42).await.unwrap_err();
    assert_eq!(
        error,
        DvvError::Unauthorized {
            trace_id: Some("trace-0001".into())
        }
    );
    assert_eq!(server.count("/v1/token"), 2, "one renewal");
    assert_eq!(server.count("/v1/consents/c-1/messages/42"), 2, "one retry");
}

#[tokio::test]
async fn server_errors_are_retried_at_most_max_retries_times() {
    let failures = Arc::new(AtomicUsize::new(0));
    let seen = failures.clone();
    let server = TestServer::start(with_tokens(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < 2 {
            reply_json(503, json!({"reason": "busy"}))
        } else {
            reply_json(200, page())
        }
    }))
    .await;
    client(&server, &[])
        .list_messages("c-1", None, None)
        .await
        .unwrap();
    assert_eq!(server.count("/v1/consents/c-1/messages"), 3);

    let server =
        TestServer::start(with_tokens(|_| reply_json(500, json!({"reason": "boom"})))).await;
    let error = client(&server, &[])
        .get_message("c-1", 1)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DvvError::Upstream5xx { status, .. } if status == 500),
        "{error:?}"
    );
    assert_eq!(
        server.count("/v1/consents/c-1/messages/1"),
        4,
        "1 + max_retries (3)"
    );

    let server = TestServer::start(with_tokens(|_| reply_json(502, json!({})))).await;
    let none = client(&server, &[("IKKUNA_DVV_MAX_RETRIES", "0")]);
    assert!(none.get_message("c-1", 1).await.is_err());
    assert_eq!(server.count("/v1/consents/c-1/messages/1"), 1);

    // Client errors are final: never retried.
    let server = TestServer::start(with_tokens(|_| {
        reply_json(404, json!({"reason": "Message not found"}))
    }))
    .await;
    let error = client(&server, &[])
        .get_message("c-1", 1)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        DvvError::NotFound {
            reason: "Message not found".into(),
            trace_id: Some("trace-0001".into())
        }
    );
    assert_eq!(server.count("/v1/consents/c-1/messages/1"), 1);
}

#[tokio::test]
async fn retries_stop_before_the_deadline() {
    let server = TestServer::start(with_tokens(|_| reply_json(503, json!({})))).await;
    let client = client(
        &server,
        &[
            ("IKKUNA_DVV_MAX_RETRIES", "10"),
            ("IKKUNA_DVV_CALL_TIMEOUT_MS", "1000"),
            ("IKKUNA_DVV_CONNECT_TIMEOUT_MS", "200"),
        ],
    );
    client.ensure_token().await.unwrap();
    let started = Instant::now();
    let error = client.list_messages("c-1", None, None).await.unwrap_err();
    assert!(matches!(error, DvvError::Upstream5xx { .. }), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    let attempts = server.count("/v1/consents/c-1/messages");
    assert!((2..=10).contains(&attempts), "{attempts} attempts");
}

#[tokio::test]
async fn the_deadline_bounds_a_slow_dvv() {
    let server = TestServer::start(script(|request| async move {
        if request.path() == "/v1/token" {
            reply_token("token-1", 300)
        } else {
            tokio::time::sleep(Duration::from_secs(5)).await;
            reply_json(200, page())
        }
    }))
    .await;
    let client = client(
        &server,
        &[
            ("IKKUNA_DVV_CALL_TIMEOUT_MS", "300"),
            ("IKKUNA_DVV_CONNECT_TIMEOUT_MS", "200"),
        ],
    );
    let started = Instant::now();
    let error = client.list_messages("c-1", None, None).await.unwrap_err();
    assert_eq!(error, DvvError::Timeout { trace_id: None });
    assert!(error.is_retryable());
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn an_unreachable_dvv_is_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let pki = Pki::generate();
    let cfg = crate::config::Config::from_toml_str(
        &pki.config_toml(&format!("https://127.0.0.1:{port}")),
        &crate::config::no_env,
    )
    .unwrap()
    .dvv;
    let client = DvvClient::new(&cfg).unwrap();
    let error = client.get_message("c-1", 1).await.unwrap_err();
    assert!(matches!(error, DvvError::Unavailable { .. }), "{error:?}");
    assert_eq!(error.kind(), "unavailable");
    assert!(error.is_retryable());
    assert!(client.ensure_token().await.is_err());
}

#[tokio::test]
async fn only_the_configured_ca_is_trusted() {
    let server = TestServer::start(with_tokens(|_| reply_json(200, page()))).await;
    let stranger = Pki::generate();
    let cfg = crate::config::Config::from_toml_str(
        &stranger.config_toml(&server.base_url()),
        &crate::config::no_env,
    )
    .unwrap()
    .dvv;
    let error = DvvClient::new(&cfg)
        .unwrap()
        .ensure_token()
        .await
        .unwrap_err();
    assert!(matches!(error, DvvError::Unavailable { .. }), "{error:?}");
    assert_eq!(server.recorded().len(), 0, "no request reached the server");
}

#[tokio::test]
async fn a_refused_client_assertion_is_a_token_error() {
    let server = TestServer::start(script(|_| async {
        reply_json(
            401,
            json!({"reason": "Client assertion rejected", "error": "invalid_client"}),
        )
    }))
    .await;
    let client = client(&server, &[]);
    let error = client.ensure_token().await.unwrap_err();
    assert!(
        matches!(&error, DvvError::Token { status: Some(s), reason, .. } if *s == 401 && reason == "Client assertion rejected"),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    let error = client.list_messages("c-1", None, None).await.unwrap_err();
    assert_eq!(error.kind(), "token");
    assert_eq!(
        server.count("/v1/consents/c-1/messages"),
        0,
        "no call without a token"
    );
}

#[tokio::test]
async fn paths_and_queries_are_encoded() {
    let server = TestServer::start(with_tokens(|request| match request.path() {
        "/v1/events" => reply_json(200, json!({"events": [{"eventId": "e1", "eventType": "Consent revoked",
            "eventTime": "2026-11-21T10:00:00.000Z", "metadata": {"consentId": "c-1"}}], "continuationToken": "n"})),
        _ => reply_json(200, page()),
    }))
    .await;
    let client = client(&server, &[]);
    client
        .list_messages("a/b?c", Some("to ken&x"), Some(5))
        .await
        .unwrap();
    client.list_messages("c-1", None, None).await.unwrap();
    let events = client.events(None).await.unwrap();
    assert_eq!(events.value.events[0].event_type, EventType::ConsentRevoked);
    assert_eq!(events.value.continuation_token, "n");
    client.events(Some("n")).await.unwrap();
    let targets: Vec<String> = server
        .recorded()
        .into_iter()
        .filter(|r| r.path() != "/v1/token")
        .map(|r| r.target)
        .collect();
    assert_eq!(
        targets,
        [
            "/v1/consents/a%2Fb%3Fc/messages?continuationToken=to+ken%26x&limit=5",
            "/v1/consents/c-1/messages",
            "/v1/events",
            "/v1/events?continuationToken=n",
        ]
    );
}

#[tokio::test]
async fn malformed_json_is_an_invalid_response_without_content() {
    let server = TestServer::start(with_tokens(|_| {
        reply_json(
            200,
            json!({"messages": "SECRET TITLE", "continuationToken": null}),
        )
    }))
    .await;
    let error = client(&server, &[])
        .list_messages("c-1", None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DvvError::InvalidResponse { .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("SECRET"), "{error}");
    assert!(!format!("{error:?}").contains("SECRET"));
}

#[tokio::test]
async fn openings_and_receipts_accept_201_and_409() {
    let server = TestServer::start(with_tokens(|request| {
        let path = request.path().to_owned();
        if path.ends_with("/openings") {
            let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
            let answer = json!({"openingId": body["openingId"], "messageId": 42, "firstOpen": true,
                "firstOpenStatus": "Provisional", "settlesAt": "2026-11-28T10:00:00.000Z",
                "readAt": "2026-11-21T10:00:00.000Z"});
            let status = if body["openingId"] == "open-1" {
                201
            } else {
                409
            };
            reply_json(status, answer)
        } else if path.ends_with("/42/receipt-confirmations") {
            reply_json(
                409,
                json!({"messageId": 42, "receiptConfirmedAt": "2026-11-21T09:00:00.000Z"}),
            )
        } else {
            reply_json(400, json!({"reason": "Message is not Verifiable"}))
        }
    }))
    .await;
    let client = client(&server, &[]);
    let opened_at = "2026-11-21T10:00:00Z".parse().unwrap();
    let first = OpeningReport {
        opening_id: "open-1".into(),
        opened_at,
    };
    let answer = client
        .report_opening("c-1", 42, &first)
        .await
        .unwrap()
        .value;
    assert!(answer.first_open && !answer.repeated);
    let again = OpeningReport {
        opening_id: "open-2".into(),
        opened_at,
    };
    let answer = client
        .report_opening("c-1", 42, &again)
        .await
        .unwrap()
        .value;
    assert!(answer.first_open && answer.repeated);
    let sent = server
        .recorded()
        .into_iter()
        .find(|r| r.path().ends_with("/openings"))
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&sent.body).unwrap(),
        r#"{"openingId":"open-1","openedAt":"2026-11-21T10:00:00.000Z"}"#
    );
    let bad = OpeningReport {
        opening_id: "no spaces".into(),
        opened_at,
    };
    assert!(matches!(
        client.report_opening("c-1", 42, &bad).await,
        Err(DvvError::BadRequest { .. })
    ));

    let receipt = client.confirm_receipt("c-1", 42).await.unwrap().value;
    assert!(receipt.repeated);
    assert_eq!(receipt.message_id, 42);
    let error = client.confirm_receipt("c-1", 7).await.unwrap_err();
    assert!(
        matches!(&error, DvvError::BadRequest { reason, .. } if reason == "Message is not Verifiable"),
        "{error:?}"
    );
    let confirm = server
        .recorded()
        .into_iter()
        .find(|r| r.path().ends_with("/receipt-confirmations"))
        .unwrap();
    assert_eq!(&confirm.body[..], b"{}");
}

fn streaming_reply(status: u16, headers: &[(&str, &str)], body: ReplyBody) -> Reply {
    let mut builder = http::Response::builder()
        .status(status)
        .header("traceId", "trace-att");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body).unwrap()
}

#[tokio::test]
async fn attachments_stream_with_range_and_only_the_allowed_headers() {
    let server = TestServer::start(with_tokens(|request| {
        let range = request
            .headers
            .get("range")
            .map(|v| v.to_str().unwrap().to_owned());
        match range.as_deref() {
            Some("bytes=2-5") => streaming_reply(
                206,
                &[
                    ("content-type", "application/pdf"),
                    ("content-length", "4"),
                    ("content-range", "bytes 2-5/10"),
                    ("accept-ranges", "bytes"),
                    ("content-disposition", "attachment; filename=\"a.pdf\""),
                    ("cache-control", "no-store"),
                    ("set-cookie", "x=1"),
                    ("x-internal", "secret"),
                ],
                http_body_util::Full::new(Bytes::from_static(b"2345"))
                    .map_err(|never| match never {})
                    .boxed(),
            ),
            Some("bytes=20-") => {
                let mut reply = reply_json(416, json!({"reason": "Range not satisfiable"}));
                reply
                    .headers_mut()
                    .insert("content-range", "bytes */10".parse().unwrap());
                reply
            }
            _ => reply_json(403, json!({"reason": "Receipt confirmation required"})),
        }
    }))
    .await;
    let client = client(&server, &[]);
    let range = HeaderValue::from_static("bytes=2-5");
    let stream = client
        .get_attachment("c-1", 42, 7, Some(&range))
        .await
        .unwrap();
    assert_eq!(stream.trace_id.as_deref(), Some("trace-att"));
    let stream = stream.value;
    assert_eq!(stream.status, StatusCode::PARTIAL_CONTENT);
    let mut names: Vec<&str> = stream.headers.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "accept-ranges",
            "content-disposition",
            "content-length",
            "content-range",
            "content-type"
        ]
    );
    let bytes = stream.body.collect().await.unwrap().to_bytes();
    assert_eq!(&bytes[..], b"2345");
    let request = server
        .recorded()
        .into_iter()
        .find(|r| r.path().contains("/attachments/"))
        .unwrap();
    assert_eq!(request.target, "/v1/consents/c-1/messages/42/attachments/7");

    let beyond = HeaderValue::from_static("bytes=20-");
    let error = client
        .get_attachment("c-1", 42, 7, Some(&beyond))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DvvError::RangeNotSatisfiable { content_range: Some(v), .. } if v == "bytes */10"),
        "{error:?}"
    );
    let error = client.get_attachment("c-1", 42, 7, None).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "refused by DVV: Receipt confirmation required"
    );
}

#[tokio::test]
async fn a_stalled_attachment_body_fails_with_body_stalled() {
    let server = TestServer::start(with_tokens(|_| {
        let (mut tx, body) = http_body_util::channel::Channel::<
            Bytes,
            Box<dyn std::error::Error + Send + Sync>,
        >::new(2);
        tokio::spawn(async move {
            tx.send_data(Bytes::from_static(b"first chunk")).await.ok();
            // DVV goes silent while keeping the connection open.
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(tx);
        });
        streaming_reply(
            200,
            &[
                ("content-type", "application/octet-stream"),
                ("content-length", "100"),
            ],
            body.boxed(),
        )
    }))
    .await;
    let client = client(&server, &[("IKKUNA_DVV_BODY_IDLE_TIMEOUT_MS", "300")]);
    let mut body = client
        .get_attachment("c-1", 42, 7, None)
        .await
        .unwrap()
        .value
        .body;
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first chunk");
    let started = Instant::now();
    let error = body.frame().await.unwrap().unwrap_err();
    assert_eq!(
        error,
        DvvError::BodyStalled {
            trace_id: Some("trace-att".into())
        }
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}
