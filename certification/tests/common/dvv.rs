//! A stand-in's own DVV client (mutual TLS, `private_key_jwt`), for mutants that go behind the
//! gateway's back.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

type Inner = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Acts as the gateway's provider at DVV.
pub struct Dvv {
    url: String,
    provider: String,
    assertion_key: PathBuf,
    client: Inner,
}

impl Dvv {
    pub fn new(backend: &ikkuna_certify::target::Backend) -> Self {
        let p = &backend.info["providers"][0];
        let path = |k: &str| PathBuf::from(p[k].as_str().expect("provider path"));
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(backend.path("caCert").expect("ca")).expect("ca") {
            roots.add(c.expect("ca")).expect("ca");
        }
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path("clientCert"))
            .expect("cert")
            .map(|c| c.expect("cert"))
            .collect();
        let key = PrivateKeyDer::from_pem_file(path("clientKey")).expect("key");
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .expect("client auth");
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        Self {
            url: backend.info["dvvUrl"].as_str().expect("dvvUrl").to_owned(),
            provider: p["id"].as_str().expect("id").to_owned(),
            assertion_key: path("assertionKey"),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        ctype: &str,
        body: String,
        token: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("content-type", ctype);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(Full::new(Bytes::from(body)))?;
        let resp =
            tokio::time::timeout(Duration::from_secs(10), self.client.request(req)).await??;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    async fn token(&self) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": self.provider, "sub": self.provider, "aud": format!("{}/v1/token", self.url),
            "jti": uuid::Uuid::new_v4().to_string(), "iat": now, "exp": now + 60,
        });
        let key = jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(&self.assertion_key)?)?;
        let jwt = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            &claims,
            &key,
        )?;
        let form = format!(
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={jwt}"
        );
        let (status, v) = self
            .send(
                "POST",
                "/v1/token",
                "application/x-www-form-urlencoded",
                form,
                None,
            )
            .await?;
        anyhow::ensure!(status == 200, "token: {status} {v}");
        Ok(v["access_token"].as_str().unwrap_or_default().to_owned())
    }

    async fn consent_id(&self, token: &str, citizen: &str) -> anyhow::Result<String> {
        let (status, v) = self
            .send(
                "POST",
                "/v1/consents/lookup",
                "application/json",
                json!({"endUserId": citizen}).to_string(),
                Some(token),
            )
            .await?;
        anyhow::ensure!(status == 200, "lookup: {status}");
        Ok(v["consentId"].as_str().unwrap_or_default().to_owned())
    }

    /// Reports an opening with a fresh opening id: a duplicate of what the gateway reported.
    pub async fn report_opening(&self, citizen: &str, message_id: i64) -> anyhow::Result<()> {
        let token = self.token().await?;
        let consent = self.consent_id(&token, citizen).await?;
        let body = json!({
            "openingId": uuid::Uuid::new_v4().to_string(),
            "openedAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        self.send(
            "POST",
            &format!("/v1/consents/{consent}/messages/{message_id}/openings"),
            "application/json",
            body.to_string(),
            Some(&token),
        )
        .await?;
        Ok(())
    }

    /// Reads the inbox whatever the consent says.
    pub async fn inbox_ignoring_consent(&self, citizen: &str) -> anyhow::Result<Value> {
        let token = self.token().await?;
        let consent = self.consent_id(&token, citizen).await?;
        let (_, v) = self
            .send(
                "GET",
                &format!("/v1/consents/{consent}/messages"),
                "application/json",
                String::new(),
                Some(&token),
            )
            .await?;
        Ok(v)
    }
}
