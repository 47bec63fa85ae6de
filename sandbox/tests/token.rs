//! The token endpoint and bearer tokens, over real mutual-TLS sockets.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn valid_assertion_gets_a_bearer_token() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let r = a
        .post_token(&Provider::token_form(&a.sign(&a.claims())))
        .await
        .expect(200);
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 300);
    assert!(v["access_token"].as_str().unwrap().len() >= 32);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // The token works.
    let token = v["access_token"].as_str().unwrap();
    a.get("/v1/events", token).await.expect(200);
}

#[tokio::test]
async fn every_assertion_failure_is_401_invalid_client() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let b = h.provider(1);
    let now = jsonwebtoken::get_current_timestamp();
    let mut cases: Vec<(&str, String)> = Vec::new();

    // Signed with provider-b's key but claiming to be provider-a.
    let mut claims = a.claims();
    let forged = {
        let mut c = b.claims();
        c["iss"] = json!("provider-a");
        c["sub"] = json!("provider-a");
        c["aud"] = claims["aud"].clone();
        b.sign(&c)
    };
    cases.push(("bad signature", forged));
    // A tampered payload.
    let good = a.sign(&claims);
    let parts: Vec<&str> = good.split('.').collect();
    let tampered_claims = {
        let mut c = claims.clone();
        c["exp"] = json!(now + 120);
        base64_url(&serde_json::to_vec(&c).unwrap())
    };
    cases.push((
        "tampered payload",
        format!("{}.{}.{}", parts[0], tampered_claims, parts[2]),
    ));
    claims["iss"] = json!("provider-x");
    cases.push(("unknown iss", a.sign(&claims)));
    let mut c = a.claims();
    c["iss"] = json!("provider-b");
    cases.push(("iss of another provider", a.sign(&c)));
    let mut c = a.claims();
    c["sub"] = json!("provider-b");
    cases.push(("wrong sub", a.sign(&c)));
    let mut c = a.claims();
    c.as_object_mut().unwrap().remove("sub");
    cases.push(("missing sub", a.sign(&c)));
    let mut c = a.claims();
    c["aud"] = json!(format!("{}/v1/token/", h.info().dvv_url));
    cases.push(("wrong aud", a.sign(&c)));
    let mut c = a.claims();
    c["aud"] = json!("https://dvv.example/v1/token");
    cases.push(("foreign aud", a.sign(&c)));
    let mut c = a.claims();
    c["exp"] = json!(now + 400);
    cases.push(("exp too far", a.sign(&c)));
    let mut c = a.claims();
    c["exp"] = json!(now - 120);
    cases.push(("expired", a.sign(&c)));
    let mut c = a.claims();
    c.as_object_mut().unwrap().remove("exp");
    cases.push(("no exp", a.sign(&c)));
    let mut c = a.claims();
    c.as_object_mut().unwrap().remove("jti");
    cases.push(("no jti", a.sign(&c)));
    let mut c = a.claims();
    c["nbf"] = json!(now + 600);
    cases.push(("not yet valid", a.sign(&c)));
    cases.push(("not a JWT", "abc.def".to_owned()));
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &a.claims(),
        &jsonwebtoken::EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    cases.push(("HS256", hs));

    for (name, assertion) in cases {
        let r = a.post_token(&Provider::token_form(&assertion)).await;
        assert_eq!(
            r.status.as_u16(),
            401,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["error"], "invalid_client", "{name}");
        assert!(!r.reason().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn replayed_jti_is_refused() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let assertion = a.sign(&a.claims());
    a.post_token(&Provider::token_form(&assertion))
        .await
        .expect(200);
    let r = a
        .post_token(&Provider::token_form(&assertion))
        .await
        .expect(401);
    assert!(r.reason().contains("jti"), "{}", r.reason());
    // Same jti, freshly signed, is still a replay.
    let mut c = a.claims();
    let jti = c["jti"].clone();
    a.post_token(&Provider::token_form(&a.sign(&c)))
        .await
        .expect(200);
    c["exp"] = json!(jsonwebtoken::get_current_timestamp() + 90);
    c["jti"] = jti;
    a.post_token(&Provider::token_form(&a.sign(&c)))
        .await
        .expect(401);
}

#[tokio::test]
async fn client_certificate_must_match_the_assertion() {
    let h = start_sandbox().await;
    // provider-a's certificate, provider-b's (validly signed) assertion.
    let mixed = h.mixed_provider(0, 1);
    let r = mixed
        .post_token(&Provider::token_form(&mixed.sign(&mixed.claims())))
        .await
        .expect(401);
    assert_eq!(r.json()["error"], "invalid_client");
    assert!(r.reason().contains("certificate"), "{}", r.reason());
}

#[tokio::test]
async fn malformed_token_requests_are_400() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let assertion = a.sign(&a.claims());
    let r = a.post_token("grant_type=password").await.expect(400);
    assert_eq!(r.json()["error"], "unsupported_grant_type");
    let r = a
        .post_token(&format!(
            "grant_type=client_credentials&client_assertion_type=urn%3Aother&client_assertion={assertion}"
        ))
        .await
        .expect(400);
    assert_eq!(r.json()["error"], "invalid_request");
    let r = a
        .post_token("grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer")
        .await
        .expect(400);
    assert_eq!(r.json()["error"], "invalid_request");
    a.post_token("").await.expect(400);
    a.post_token("grant_type=client_credentials&grant_type=client_credentials")
        .await
        .expect(400);
    a.post_token("%%%").await.expect(400);
    // JSON instead of a form.
    let r = a
        .send(
            http::Method::POST,
            "/v1/token",
            None,
            Some(("application/json", b"{}".to_vec())),
            &[],
        )
        .await
        .expect(400);
    assert_eq!(r.json()["error"], "invalid_request");
    // GET is not allowed.
    let r = a.get("/v1/token", "x").await.expect(405);
    assert_eq!(r.header("allow"), Some("POST"));
}

#[tokio::test]
async fn bearer_tokens_are_checked_on_every_call() {
    let h = start_with(|o| o.token_ttl = Duration::from_secs(1)).await;
    let a = h.provider(0);
    let b = h.provider(1);
    for r in [
        a.send(http::Method::GET, "/v1/events", None, None, &[])
            .await,
        a.get("/v1/events", "not-a-token").await,
        a.send(
            http::Method::GET,
            "/v1/events",
            None,
            None,
            &[("authorization", "Basic abc")],
        )
        .await,
    ] {
        let r = r.expect(401);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
    }
    let token = a.token().await;
    a.get("/v1/events", &token).await.expect(200);
    // Bound to provider-a: presenting it on provider-b's connection fails.
    let r = b.get("/v1/events", &token).await.expect(401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    // Expired after the configured 1 s.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = a.get("/v1/events", &token).await.expect(401);
    assert!(r.reason().contains("expired"), "{}", r.reason());
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
}

#[tokio::test]
async fn handshake_without_client_certificate_is_refused() {
    let h = start_sandbox().await;
    let config = Arc::new(client_tls(h.info(), None));
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(h.sandbox.dvv_addr())
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let refused = match connector.connect(name, tcp).await {
        Err(_) => true,
        // With TLS 1.3 the client may finish first; the server's refusal then arrives as an
        // alert or a closed connection instead of an answer.
        Ok(mut tls) => {
            let _ = tls
                .write_all(b"GET /v1/events HTTP/1.1\r\nhost: x\r\n\r\n")
                .await;
            let mut buf = [0u8; 64];
            let read = tokio::time::timeout(DEADLINE, tls.read(&mut buf))
                .await
                .unwrap();
            matches!(read, Err(_) | Ok(0))
        }
    };
    assert!(refused, "a client without certificate must not be served");
}

#[tokio::test]
async fn only_tls_12_and_13_are_offered() {
    let h = start_sandbox().await;
    // rustls offers nothing older than TLS 1.2; both 1.2 and 1.3 must complete with a client
    // certificate.
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_file_iter(&h.info().ca_cert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let p = &h.info().providers[0];
        let chain = rustls::pki_types::CertificateDer::pem_file_iter(&p.client_cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&p.client_key).unwrap();
        let config = rustls::ClientConfig::builder_with_protocol_versions(&[version])
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
        let tcp = tokio::net::TcpStream::connect(h.sandbox.dvv_addr())
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let result = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await;
        assert!(result.is_ok(), "{version:?}");
    }
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
