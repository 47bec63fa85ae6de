//! The request pipeline (`src/api/pipeline.rs`), end to end over real TLS against the sandbox:
//! every route audited with the ids it decoded, the request's shape checked once, the concurrency
//! limit shedding the excess at once, the request deadline answering 504, every refusal carrying
//! `no-store` and `x-request-id`.

mod common;

use std::time::{Duration, Instant};

use common::{Answer, Harness, NO_LIMITS};
use ikkuna::api::routes::{PathIds, Route};
use serde_json::{json, Value};

/// Sets a DVV fault plan through the sandbox admin API.
async fn fault(h: &Harness, spec: Value) {
    let a = h.sandbox_admin("POST", "/admin/faults", Some(spec)).await;
    assert!(a.status < 300, "fault accepted: {:?}", a.json());
}

async fn clear_faults(h: &Harness) {
    assert!(
        h.sandbox_admin("DELETE", "/admin/faults", None)
            .await
            .status
            < 300
    );
}

/// The audit record of the request that got `answer`, found by its `x-request-id`.
fn audit_of(h: &Harness, answer: &Answer) -> Value {
    let id = answer.header("x-request-id").expect("x-request-id");
    h.audit_records()
        .into_iter()
        .find(|r| r["requestId"] == id)
        .unwrap_or_else(|| panic!("no audit record for request {id}"))
}

/// Every refusal is answered in the house style: a reason, never cached, named.
fn assert_house_style(a: &Answer, what: &str) {
    assert!(a.status >= 400, "{what}: {}", a.status);
    assert!(a.json()["reason"].is_string(), "{what}: {:?}", a.body);
    assert_eq!(a.header("cache-control"), Some("no-store"), "{what}");
    assert!(a.header("x-request-id").is_some(), "{what}");
}

/// A Normal message with a small attachment (under 1 MiB): (message id, attachment id).
async fn message_with_attachment(h: &Harness, token: &str) -> (i64, i64) {
    let page = h
        .call("GET", "/v1/messages?limit=100", Some(token))
        .await
        .json();
    let candidates: Vec<i64> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| {
            m["attachmentCount"].as_i64().unwrap_or(0) > 0 && m["messageServiceType"] == "Normal"
        })
        .filter_map(|m| m["messageId"].as_i64())
        .collect();
    for message in candidates {
        let detail = h
            .call("GET", &format!("/v1/messages/{message}"), Some(token))
            .await
            .json();
        let small = detail["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["size"].as_u64().is_some_and(|s| s < 1 << 20))
            .and_then(|a| a["attachmentId"].as_i64());
        if let Some(attachment) = small {
            return (message, attachment);
        }
    }
    panic!("a Normal message with a small attachment");
}

/// Percent-encodes the first digit of an id: `4100008` → `%34100008`.
fn percent_first(id: i64) -> String {
    let s = id.to_string();
    format!("%{:02X}{}", s.as_bytes()[0], &s[1..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_audited_with_the_ids_it_decoded() {
    let h = Harness::start(NO_LIMITS).await;
    let token = h.token(&h.richest_citizen().await);
    let (message, attachment) = message_with_attachment(&h, &token).await;

    // The same ids, spelled three ways each: percent-encoded, `+`-prefixed, zero-prefixed.
    let spellings = [
        (percent_first(message), percent_first(attachment)),
        (format!("+{message}"), format!("+{attachment}")),
        (format!("000{message}"), format!("0{attachment}")),
    ];
    let mut audited = 0;
    for route in Route::ALL {
        for (m, a) in &spellings {
            let path = route
                .path()
                .replace("{message_id}", m)
                .replace("{attachment_id}", a);
            let answer = h.call(route.method().as_str(), &path, Some(&token)).await;
            let record = audit_of(&h, &answer);
            let action = serde_json::to_value(route.action()).expect("action");
            assert_eq!(record["action"], action, "{path}");
            assert_eq!(record["status"], answer.status, "{path}");
            let (want_m, want_a) = match route.ids() {
                PathIds::None => (Value::Null, Value::Null),
                PathIds::Message => (json!(message), Value::Null),
                PathIds::MessageAndAttachment => (json!(message), json!(attachment)),
            };
            assert_eq!(record["messageId"], want_m, "{path}: {record}");
            assert_eq!(record["attachmentId"], want_a, "{path}: {record}");
            // The receipt of a Normal message is refused by DVV, and a reply without its
            // Idempotency-Key and body by the gateway; every other access is served.
            if route != Route::Receipt && route != Route::Reply {
                assert!(answer.status < 300, "{path}: {}", answer.status);
                assert!(record["consentId"].is_string(), "{path}: {record}");
                assert!(record["citizen"].is_string(), "{path}: {record}");
            }
            audited += 1;
        }
    }
    assert_eq!(audited, Route::ALL.len() * spellings.len());
    // A path outside the route table is not served at all (so nothing is served unaudited).
    let unknown = h.call("GET", "/v1/messages/1/other", Some(&token)).await;
    assert_eq!(unknown.status, 404);
    assert_house_style(&unknown, "unknown route");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_shape_is_checked_once_for_every_route() {
    let h = Harness::start(NO_LIMITS).await;
    let token = h.token(&h.citizen("Active"));
    let bearer = format!("Bearer {token}");
    for route in Route::ALL {
        let path = route
            .path()
            .replace("{message_id}", "4100008")
            .replace("{attachment_id}", "1");
        let method = route.method();

        // Unknown query parameters answer 400 on every route.
        let a = h
            .call(method.as_str(), &format!("{path}?foo=1"), Some(&token))
            .await;
        assert_eq!(a.status, 400, "{path}?foo=1");
        assert_house_style(&a, "unknown query parameter");
        assert_eq!(audit_of(&h, &a)["reason"], "unknown_query_parameter");

        // Two Authorization headers answer 400, whichever comes first.
        let a = h
            .call_with(
                method.as_str(),
                &path,
                None,
                &[
                    ("authorization", &bearer),
                    ("authorization", "Bearer x.y.z"),
                ],
            )
            .await;
        assert_eq!(a.status, 400, "{path} with two Authorization headers");
        assert_house_style(&a, "repeated Authorization");
        assert_eq!(audit_of(&h, &a)["reason"], "repeated_authorization");

        // HEAD and other methods: 405, and `Allow` names only the method served.
        for other in ["HEAD", "PUT", if method == "GET" { "POST" } else { "GET" }] {
            let a = h.call(other, &path, Some(&token)).await;
            assert_eq!(a.status, 405, "{other} {path}");
            assert_eq!(a.header("allow"), Some(method.as_str()), "{other} {path}");
            assert_eq!(a.header("cache-control"), Some("no-store"));
            assert!(a.header("x-request-id").is_some());
        }
    }
    // The inbox still takes its own parameters.
    let a = h
        .call(
            "GET",
            "/v1/messages?limit=5&continuationToken=abc",
            Some(&token),
        )
        .await;
    assert_ne!(a.status, 500);
    assert_eq!(
        h.call("GET", "/v1/messages?limit=5", Some(&token))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_requests_sheds_the_excess_at_once() {
    let mut env = NO_LIMITS.to_vec();
    env.extend([
        ("IKKUNA_SERVER_MAX_CONCURRENT_REQUESTS", "2"),
        ("IKKUNA_DVV_CALL_TIMEOUT_MS", "30000"),
    ]);
    let h = Harness::start(&env).await;
    let citizens = h.citizens("Active");
    let tokens: Vec<String> = citizens.iter().map(|c| h.token(c)).collect();
    // Warm the consent cache so the slow calls are the inbox pages themselves.
    for t in &tokens {
        assert_eq!(h.call("GET", "/v1/messages", Some(t)).await.status, 200);
    }

    fault(&h, json!({"durationMs": 60000, "latencyMs": 6000})).await;
    let started = Instant::now();
    let calls = (0..8).map(|i| {
        let token = tokens[i % tokens.len()].clone();
        let h = &h;
        async move { h.call("GET", "/v1/messages", Some(&token)).await }
    });
    let answers = futures_util::future::join_all(calls).await;
    let served = answers.iter().filter(|a| a.status == 200).count();
    let shed: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    assert_eq!(
        (served, shed.len()),
        (2, 6),
        "statuses: {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    for a in &shed {
        assert_house_style(a, "shed");
        let retry: u64 = a
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("seconds");
        assert!(retry >= 1);
        assert!(a.json()["reason"].as_str().unwrap_or("").contains("retry"));
    }
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "the two were slow"
    );

    // Counted, and (the documented exception) not written to the audit trail.
    let metrics = h.scrape_metrics().await;
    assert!(
        metrics.contains("ikkuna_load_shed_requests_total 6"),
        "shed requests counted"
    );
    let records = h.audit_records();
    assert!(records.iter().all(|r| r["reason"] != "overloaded"));
    for a in &shed {
        let id = a.header("x-request-id").expect("id");
        assert!(records.iter().all(|r| r["requestId"] != id));
    }

    // The slots came back: with DVV fast again, requests are served.
    clear_faults(&h).await;
    for t in &tokens {
        assert_eq!(h.call("GET", "/v1/messages", Some(t)).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_bounds_answers_and_the_start_of_streams() {
    let mut env = NO_LIMITS.to_vec();
    env.extend([
        ("IKKUNA_SERVER_REQUEST_TIMEOUT_MS", "1500"),
        // DVV's own deadline is far away: only the request bound can answer early.
        ("IKKUNA_DVV_CALL_TIMEOUT_MS", "30000"),
    ]);
    let h = Harness::start(&env).await;
    let token = h.token(&h.richest_citizen().await);
    let (message, attachment) = message_with_attachment(&h, &token).await;

    fault(&h, json!({"durationMs": 60000, "latencyMs": 5000})).await;
    for path in [
        "/v1/messages".to_owned(),
        format!("/v1/messages/{message}/attachments/{attachment}"),
    ] {
        let started = Instant::now();
        let a = h.call("GET", &path, Some(&token)).await;
        let took = started.elapsed();
        assert_eq!(a.status, 504, "{path}: {:?}", a.json());
        assert_house_style(&a, "request timeout");
        assert!(
            a.json()["reason"]
                .as_str()
                .unwrap_or("")
                .contains("time limit"),
            "{:?}",
            a.json()
        );
        assert!(
            took >= Duration::from_millis(1400) && took < Duration::from_millis(4500),
            "{path} answered after {took:?}: the 1.5 s bound, not DVV's 5 s"
        );
        let record = audit_of(&h, &a);
        assert_eq!(record["reason"], "request_timeout");
        assert_eq!(record["status"], 504);
    }
    assert!(h
        .scrape_metrics()
        .await
        .contains("ikkuna_request_timeouts_total 2"));
    clear_faults(&h).await;
    assert_eq!(
        h.call("GET", "/v1/messages", Some(&token)).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_bounds_the_stop_and_not_the_requests() {
    let mut env = NO_LIMITS.to_vec();
    env.extend([
        ("IKKUNA_SERVER_DRAIN_TIMEOUT_MS", "1000"),
        ("IKKUNA_SERVER_REQUEST_TIMEOUT_MS", "60000"),
        ("IKKUNA_DVV_CALL_TIMEOUT_MS", "60000"),
    ]);
    let mut h = Harness::start(&env).await;
    let token = h.token(&h.citizen("Active"));
    assert_eq!(
        h.call("GET", "/v1/messages", Some(&token)).await.status,
        200
    );

    // A request slower than the drain bound is in flight when the stop comes. (Only the message
    // calls are slowed: the events feed finishes its own poll before it stops.)
    fault(
        &h,
        json!({"durationMs": 60000, "latencyMs": 20000, "paths": ["/v1/consents/"]}),
    )
    .await;
    let url = format!("{}/v1/messages", h.gateway_url());
    let client = h.client.clone();
    let slow = tokio::spawn(async move {
        let req = http::Request::get(url)
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        client.request(req).await.map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stopping = Instant::now();
    let status = h.terminate_gateway(15).await;
    let took = stopping.elapsed();
    assert!(status.success(), "clean exit: {status:?}");
    assert!(
        took < Duration::from_secs(10),
        "the stop waited {took:?}: bounded by the 1 s drain, not the 20 s request"
    );
    let _ = slow.await;
}

/// A raw HTTP/1.1 exchange over TLS: writes `request`, reads until the gateway closes.
async fn raw_exchange(h: &Harness, request: &[u8]) -> String {
    use rustls::pki_types::pem::PemObject;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let url = url::Url::parse(&h.gateway_url()).expect("gateway url");
    let host = url.host_str().expect("host").to_owned();
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::path::Path::new(h.info["caCert"].as_str().expect("caCert"));
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .expect("ca")
        .flatten()
    {
        roots.add(cert).expect("ca cert");
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect((host.as_str(), url.port().expect("port")))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from(host).expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake");
    let _ = tls.write_all(request).await;
    let _ = tls.flush().await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_layers_own_refusals_carry_the_gateway_headers() {
    let h = Harness::start(&[]).await;
    // Exactly the head limit, unfinished: hyper reads every byte (so closing the connection
    // cannot reset it before the answer is read) and refuses the head as too large.
    let start = "GET /v1/consent HTTP/1.1\r\nHost: gateway\r\nX-Big: ";
    let big = format!(
        "{start}{}",
        "a".repeat(ikkuna::server::MAX_HEADER_BYTES - start.len())
    );
    let malformed = "GET /v1/consent HTTP/1.1\r\nHost: gateway\r\nBad Header\r\n\r\n".to_owned();
    for (what, request, status) in [
        ("oversized head", big, "431"),
        ("malformed head", malformed, "400"),
    ] {
        let answer = raw_exchange(&h, request.as_bytes()).await;
        let head = answer
            .split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        assert!(
            head.starts_with(&format!("http/1.1 {status} ")),
            "{what}: {head:.200}"
        );
        assert!(
            head.contains("\r\ncache-control: no-store"),
            "{what}: {head}"
        );
        assert!(head.contains("\r\nx-request-id: "), "{what}: {head}");
    }
    // The admin listener's refusals too.
    let admin = h
        .get_plain(&format!("{}/nope", h.gateway_admin_url()))
        .await
        .expect("admin answers");
    assert_eq!(admin.status, 404);
    assert_eq!(admin.header("cache-control"), Some("no-store"));
    assert!(admin.header("x-request-id").is_some());
}
