//! The admin API (consents, messages, calls, faults, state, consent-service page) and
//! persistence across restarts.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::Method;
use http_body_util::BodyExt;
use serde_json::json;

#[tokio::test]
async fn admin_consents_and_messages() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let t = a.token().await;
    // Grant to a citizen nobody seeded: created on demand.
    let code = "311299-999E";
    let v = h
        .admin
        .post("/admin/consents/grant", json!({"endUserId": code}))
        .await
        .expect(200)
        .json();
    assert_eq!(v["state"], "Active");
    assert_eq!(v["providerId"], "provider-a");
    assert!(v["revokedAt"].is_null());
    let again = h
        .admin
        .post("/admin/consents/grant", json!({"endUserId": code}))
        .await
        .expect(200)
        .json();
    assert_eq!(again, v, "granting an active consent changes nothing");
    assert_eq!(a.consent_id(&t, code).await, v["consentId"]);
    let (id, atts) = h
        .admin
        .new_message(json!({
            "endUserId": code, "title": "Tervetuloa", "body": "**Hei**", "bodyFormat": "Markdown",
            "senderName": "Kela",
            "attachments": [
                {"name": "tyhjä.txt", "mediaType": "text/plain", "size": 0},
                {"name": "x.bin", "mediaType": "application/octet-stream", "size": 3}
            ]
        }))
        .await;
    assert_eq!(atts.len(), 2);
    let consent = v["consentId"].as_str().unwrap();
    let d = a
        .get(&format!("/v1/consents/{consent}/messages/{id}"), &t)
        .await
        .expect(200)
        .json();
    assert_eq!(d["senderName"], "Kela");
    assert_eq!(d["bodyFormat"], "Markdown");
    assert_eq!(d["messageServiceType"], "Normal");
    assert_eq!(d["attachments"][0]["size"], 0);
    // Zero-byte attachment: empty 200, every range unsatisfiable; non-ASCII name encoded.
    let path = format!(
        "/v1/consents/{consent}/messages/{id}/attachments/{}",
        atts[0]
    );
    let r = a.get(&path, &t).await.expect(200);
    assert!(r.body.is_empty());
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"tyhj_.txt\"; filename*=UTF-8''tyhj%C3%A4%2Etxt")
    );
    a.get_with(&path, &t, &[("range", "bytes=0-")])
        .await
        .expect(416);

    // Revoke, revoke again, revoke where none exists.
    h.admin
        .post(
            "/admin/consents/revoke",
            json!({"endUserId": code, "providerId": "provider-a"}),
        )
        .await
        .expect(200);
    let r = h
        .admin
        .post("/admin/consents/revoke", json!({"endUserId": code}))
        .await
        .expect(200)
        .json();
    assert_eq!(r["state"], "Revoked");
    h.admin
        .post("/admin/consents/revoke", json!({"endUserId": LIISA}))
        .await
        .expect(404);

    // Bad admin input.
    for (path, body) in [
        ("/admin/consents/grant", json!({"endUserId": "150385-9047"})),
        (
            "/admin/consents/grant",
            json!({"endUserId": AINO, "providerId": "provider-z"}),
        ),
        ("/admin/consents/grant", json!({})),
        (
            "/admin/consents/grant",
            json!({"endUserId": AINO, "extra": 1}),
        ),
        (
            "/admin/messages",
            json!({"endUserId": AINO, "title": "", "body": "x"}),
        ),
        (
            "/admin/messages",
            json!({"endUserId": AINO, "title": "t", "body": "x", "bodyFormat": "Html"}),
        ),
        (
            "/admin/messages",
            json!({"endUserId": AINO, "title": "t", "body": "x",
            "attachments": [{"name": "../x", "mediaType": "a/b", "size": 1}]}),
        ),
        (
            "/admin/messages",
            json!({"endUserId": AINO, "title": "t", "body": "x",
            "attachments": [{"name": "x", "mediaType": "nonsense", "size": 1}]}),
        ),
        ("/admin/faults", json!({"durationMs": 0})),
        (
            "/admin/faults",
            json!({"durationMs": 1000, "errorRate": 1.5}),
        ),
        (
            "/admin/faults",
            json!({"durationMs": 1000, "errorRate": 0.6, "dropRate": 0.6}),
        ),
    ] {
        h.admin.post(path, body).await.expect(400);
    }
    h.admin
        .send(Method::POST, "/admin/messages", None)
        .await
        .expect(400);
    h.admin
        .send(Method::GET, "/admin/nope", None)
        .await
        .expect(404);
    let r = h
        .admin
        .send(Method::GET, "/admin/messages", None)
        .await
        .expect(405);
    assert_eq!(r.header("allow"), Some("POST"));

    let state = h.admin.get("/admin/state").await;
    assert!(state["counts"]["messages"].as_u64().unwrap() > 60);
    let page = h
        .admin
        .send(Method::GET, "/consent-service", None)
        .await
        .expect(200);
    assert!(String::from_utf8_lossy(&page.body).contains("provider-a"));
}

#[tokio::test]
async fn consent_service_is_also_served_over_https_on_the_admin_port() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = start_sandbox().await;
    assert!(h.info().consent_service_url.starts_with("https://"));
    let config = Arc::new(client_tls(h.info(), None));
    let tcp = tokio::net::TcpStream::connect(h.sandbox.admin_addr())
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /consent-service HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut page = Vec::new();
    tokio::time::timeout(DEADLINE, tls.read_to_end(&mut page))
        .await
        .unwrap()
        .unwrap();
    let page = String::from_utf8_lossy(&page);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<!doctype html>"));
    assert!(page.to_ascii_lowercase().contains("traceid:"));
}

#[tokio::test]
async fn admin_calls_record_what_providers_did() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let b = h.provider(1);
    let ta = a.token().await;
    let tb = b.token().await;
    let aino = a.consent_id(&ta, AINO).await;
    a.get(&format!("/v1/consents/{aino}/messages?limit=5"), &ta)
        .await
        .expect(200);
    b.get("/v1/events", &tb).await.expect(200);
    a.get("/v1/nothing", &ta).await.expect(404);

    let calls = h.admin.get("/admin/calls?providerId=provider-a").await;
    let calls = calls.as_array().unwrap();
    let paths: Vec<&str> = calls.iter().map(|c| c["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/v1/token",
            "/v1/consents/lookup",
            format!("/v1/consents/{aino}/messages").as_str(),
            "/v1/nothing"
        ]
    );
    assert_eq!(calls[2]["method"], "GET");
    assert_eq!(calls[2]["status"], 200);
    assert_eq!(calls[3]["status"], 404);
    assert!(calls.iter().all(|c| c["providerId"] == "provider-a"));
    let all = h.admin.get("/admin/calls").await;
    let text = all.to_string();
    assert!(!text.contains(AINO), "identity codes are never recorded");
    assert!(
        !text.contains("limit=5"),
        "query strings are never recorded"
    );
    assert!(text.contains("provider-b"));
    let last = calls.last().unwrap()["seq"].as_u64().unwrap();
    let after = h.admin.get(&format!("/admin/calls?afterSeq={last}")).await;
    assert_eq!(after.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn faults_latency_errors_drops_and_stalls() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let t = a.token().await;

    // 503 for every affected call, but the token endpoint is spared by default.
    let plan = h
        .admin
        .post(
            "/admin/faults",
            json!({"durationMs": 60000, "errorRate": 1.0}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(plan["errorRate"], 1.0);
    let r = a.get("/v1/events", &t).await.expect(503);
    assert_eq!(r.header("retry-after"), Some("1"));
    a.token().await;
    let calls = h.admin.get("/admin/calls?providerId=provider-a").await;
    let last = calls
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|c| c["path"] == "/v1/events")
        .unwrap()
        .clone();
    assert_eq!(last["fault"], "error");
    assert_eq!(last["status"], 503);

    // A share of 503s.
    h.admin
        .post(
            "/admin/faults",
            json!({"durationMs": 60000, "errorRate": 0.5, "paths": ["/v1/events"]}),
        )
        .await
        .expect(200);
    let mut errors = 0;
    for _ in 0..60 {
        let r = a.get("/v1/events", &t).await;
        match r.status.as_u16() {
            503 => errors += 1,
            200 => {}
            s => panic!("unexpected {s}"),
        }
    }
    assert!((10..=50).contains(&errors), "{errors} of 60 were 503");

    // Latency.
    h.admin
        .post(
            "/admin/faults",
            json!({"durationMs": 60000, "latencyMs": 300}),
        )
        .await
        .expect(200);
    let started = Instant::now();
    a.get("/v1/events", &t).await.expect(200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Dropped connections: no answer at all.
    h.admin
        .post(
            "/admin/faults",
            json!({"durationMs": 60000, "dropRate": 1.0}),
        )
        .await
        .expect(200);
    let dropped = a.stream("/v1/events", &t, &[]).await;
    assert!(dropped.is_err(), "connection closed without an answer");

    // Stalls: headers and half a body, then nothing.
    h.admin
        .post(
            "/admin/faults",
            json!({"durationMs": 60000, "stallRate": 1.0}),
        )
        .await
        .expect(200);
    let res = tokio::time::timeout(DEADLINE, a.stream("/v1/events", &t, &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), 200);
    let stalled = tokio::time::timeout(Duration::from_millis(800), res.into_body().collect()).await;
    assert!(stalled.is_err(), "the body must stall");

    // Cleared: normal service.
    h.admin
        .send(Method::DELETE, "/admin/faults", None)
        .await
        .expect(200);
    assert!(h.admin.get("/admin/faults").await.is_null());
    a.get("/v1/events", &t).await.expect(200);

    // A plan expires on its own.
    h.admin
        .post(
            "/admin/faults",
            json!({"durationMs": 200, "errorRate": 1.0}),
        )
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.get("/v1/events", &t).await.expect(200);
}

#[tokio::test]
async fn restart_keeps_pki_ports_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ikkuna_sandbox::SandboxOptions::new(dir.path());
    let first = ikkuna_sandbox::start(opts.clone()).await.unwrap();
    let info1 = first.info().clone();
    let ca1 = std::fs::read(&info1.ca_cert).unwrap();
    let key1 = std::fs::read(&info1.providers[0].assertion_key).unwrap();
    let toml1 = std::fs::read_to_string(&info1.gateway_config).unwrap();
    assert!(toml1.contains(&format!("base_url = \"{}\"", info1.dvv_url)));
    assert!(toml1.contains("provider_id = \"provider-a\""));
    assert!(toml1.contains("[store]"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in [
            &info1.providers[0].client_key,
            &info1.providers[0].assertion_key,
            &info1.operator_signing_key,
            &info1.gateway_key,
        ] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
    }
    let admin = Admin::new(first.admin_url());
    let a = Provider::for_info(&info1, 0);
    let t = a.token().await;
    let aino = a.consent_id(&t, AINO).await;
    let (id, _) = admin
        .new_message(json!({"endUserId": AINO, "title": "Before restart", "body": "x"}))
        .await;
    a.get(&format!("/v1/consents/{aino}/messages/{id}"), &t)
        .await
        .expect(200);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let opening = a
        .post_json(
            &format!("/v1/consents/{aino}/messages/{id}/openings"),
            &t,
            &json!({"openingId": "persist-1", "openedAt": now}),
        )
        .await
        .expect(201)
        .json();
    admin
        .post("/admin/consents/revoke", json!({"endUserId": VILLE_DASH}))
        .await
        .expect(200);
    let (events1, _) = drain_events(&a, &t, None).await;
    first.shutdown().await;

    let second = ikkuna_sandbox::start(opts).await.unwrap();
    let info2 = second.info().clone();
    assert_eq!(info2.dvv_url, info1.dvv_url, "same DVV port");
    assert_eq!(info2.admin_url, info1.admin_url, "same admin port");
    assert_eq!(info2.gateway_url, info1.gateway_url, "same gateway port");
    assert_eq!(std::fs::read(&info2.ca_cert).unwrap(), ca1, "same CA");
    assert_eq!(
        std::fs::read(&info2.providers[0].assertion_key).unwrap(),
        key1
    );
    assert_eq!(
        std::fs::read_to_string(&info2.gateway_config).unwrap(),
        toml1
    );
    let ville = info2.citizens.iter().find(|c| c.id == VILLE_DASH).unwrap();
    assert_eq!(ville.consent, ikkuna_sandbox::CitizenConsent::Revoked);
    let on_disk = ikkuna_sandbox::SandboxInfo::read(&dir.path().join("sandbox.json")).unwrap();
    assert_eq!(&on_disk, second.info());

    // Tokens do not survive (re-authenticate), state does.
    let a = Provider::for_info(&info2, 0);
    a.get("/v1/events", &t).await.expect(401);
    let t = a.token().await;
    assert_eq!(a.consent_id(&t, AINO).await, aino, "consent ids are stable");
    let again = a
        .post_json(
            &format!("/v1/consents/{aino}/messages/{id}/openings"),
            &t,
            &json!({"openingId": "persist-1", "openedAt": now}),
        )
        .await
        .expect(409)
        .json();
    assert_eq!(again, opening);
    let (events2, _) = drain_events(&a, &t, None).await;
    assert_eq!(events2, events1, "the feed is the same after a restart");
    let d = a
        .get(&format!("/v1/consents/{aino}/messages/{id}"), &t)
        .await
        .expect(200)
        .json();
    assert_eq!(d["readAt"], opening["readAt"]);
    let v = a
        .post_json("/v1/consents/lookup", &t, &json!({"endUserId": VILLE_DASH}))
        .await
        .expect(200)
        .json();
    assert_eq!(v["state"], "Revoked");
    // The next message id continues after the journaled one.
    let admin = Admin::new(second.admin_url());
    let (next, _) = admin
        .new_message(json!({"endUserId": AINO, "title": "After restart", "body": "x"}))
        .await;
    assert!(next > id);
    second.shutdown().await;
}

#[tokio::test]
async fn citizen_assertions_verify_against_the_jwks() {
    let h = start_sandbox().await;
    let jwt = ikkuna_sandbox::mint_citizen_assertion(
        h.sandbox.data_dir(),
        AINO,
        ikkuna_sandbox::DEFAULT_ACR,
        Duration::from_secs(120),
    )
    .unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_slice(&std::fs::read(&h.info().operator_jwks).unwrap()).unwrap();
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[&h.info().gateway_audience]);
    validation.set_issuer(&[&h.info().operator_issuer]);
    let data = jsonwebtoken::decode::<serde_json::Value>(&jwt, &key, &validation).unwrap();
    assert_eq!(data.claims["sub"], AINO);
    assert_eq!(data.claims["acr"], "http://ftn.ficora.fi/2017/loa3");
    assert!(data.claims["jti"].is_string());
    assert!(data.claims["nbf"].is_u64() && data.claims["iat"].is_u64());
    let exp = data.claims["exp"].as_u64().unwrap();
    assert!(exp <= jsonwebtoken::get_current_timestamp() + 121);
}

#[tokio::test]
async fn faults_withhold_revocations_from_the_feed_and_lose_answers() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let t = a.token().await;
    let events = |v: &serde_json::Value| -> Vec<String> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["eventType"].as_str().unwrap().to_owned())
            .collect()
    };
    // Read the feed to its end, then withhold revocations and revoke.
    let page = a.get("/v1/events", &t).await.expect(200).json();
    let token = page["continuationToken"].as_str().unwrap().to_owned();
    h.admin
        .post(
            "/admin/faults",
            json!({"durationMs": 60000, "withholdRevocations": true, "paths": ["/v1/events"]}),
        )
        .await
        .expect(200);
    h.admin
        .post("/admin/consents/revoke", json!({"endUserId": AINO}))
        .await
        .expect(200);
    let page = a
        .get(&format!("/v1/events?continuationToken={token}"), &t)
        .await
        .expect(200)
        .json();
    assert!(
        !events(&page).iter().any(|e| e == "Consent revoked"),
        "withheld: {:?}",
        events(&page)
    );
    // The position moved past it: the revocation is lost for good, even after the plan ends.
    h.admin
        .send(Method::DELETE, "/admin/faults", None)
        .await
        .expect(200);
    let later = page["continuationToken"].as_str().unwrap().to_owned();
    let page = a
        .get(&format!("/v1/events?continuationToken={later}"), &t)
        .await
        .expect(200)
        .json();
    assert!(!events(&page).iter().any(|e| e == "Consent revoked"));
    // Without the plan a revocation shows.
    h.admin
        .post("/admin/consents/grant", json!({"endUserId": AINO}))
        .await
        .expect(200);
    h.admin
        .post("/admin/consents/revoke", json!({"endUserId": AINO}))
        .await
        .expect(200);
    let page = a
        .get(&format!("/v1/events?continuationToken={later}"), &t)
        .await
        .expect(200)
        .json();
    assert!(events(&page).iter().any(|e| e == "Consent revoked"));
}
