//! What every case shares: the target, the client, the signer, and the fixture the suite sets up
//! at DVV's side before any case runs (fresh citizens, consents and messages of its own).

use std::sync::Mutex;

use anyhow::Context;
use serde_json::{json, Value};

use crate::forge::Signer;
use crate::http::{Answer, Http};
use crate::target::Target;

/// A citizen the suite created at the backend.
#[derive(Clone, Debug)]
pub struct Citizen {
    /// Identity code (a fresh test code).
    pub code: String,
    /// Their consent towards the gateway's provider, when one was granted.
    pub consent_id: Option<String>,
}

/// A message the suite delivered.
#[derive(Clone, Debug)]
pub struct Msg {
    /// `messageId`.
    pub id: i64,
    /// Its attachment, if any.
    pub attachment: Option<i64>,
    /// The suite's canary: its title carries `CANARY-title`, its body `CANARY-body`.
    pub canary: String,
}

impl Msg {
    /// The canary only the body carries.
    pub fn body_canary(&self) -> String {
        format!("{}-body", self.canary)
    }
}

/// Citizens and messages for the run.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// Active consent; owns most messages.
    pub a: Citizen,
    /// Active consent; owns the message A must not see.
    pub b: Citizen,
    /// Never consented.
    pub none: Citizen,
    /// Active, revoked during the run.
    pub revoked: Citizen,
    /// A: normal message with an attachment, opened.
    pub a_normal: Msg,
    /// A: verifiable message with an attachment.
    pub a_verifiable: Msg,
    /// A: only ever listed.
    pub a_listed: Msg,
    /// A: opened just before a SIGKILL.
    pub a_crash: Msg,
    /// B: A's neighbour's message.
    pub b_normal: Msg,
    /// When the fixture was made (RFC 3339), to scope the backend's recording.
    pub started_at: String,
}

/// The shared context of a run.
pub struct Ctx {
    /// The deployment.
    pub target: Target,
    /// The client.
    pub http: Http,
    /// Signs citizen assertions.
    pub signer: Signer,
    /// Prefix of the suite's own canaries.
    pub suite_prefix: String,
    /// The fixture.
    pub fx: Fixture,
    /// Assertions handed to the gateway, searched for in logs afterwards.
    pub secrets: Mutex<Vec<String>>,
    /// The audit file's size before the run, so only this run's lines are judged.
    pub audit_offset: u64,
}

impl Ctx {
    /// Creates the fixture at the backend and the context around it.
    pub async fn setup(target: Target, http: Http) -> anyhow::Result<Self> {
        let signer = Signer::from_backend(&target.backend)?;
        let suite_prefix = format!("CERTCANARY{}", hex::encode(rand::random::<[u8; 6]>()));
        let audit_offset = target
            .audit_file
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .unwrap_or(0);
        let admin = target.backend.admin_url.clone();
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let codes = fresh_codes(4)?;
        let mut citizens = Vec::new();
        for (i, code) in codes.into_iter().enumerate() {
            let consent_id = if i == 2 {
                None
            } else {
                let a = http
                    .admin(
                        &format!("{admin}/admin/consents/grant"),
                        "POST",
                        Some(json!({"endUserId": code})),
                    )
                    .await?;
                anyhow::ensure!(a.status == 200, "granting a consent: {}", a.summary());
                Some(
                    a.json()["consentId"]
                        .as_str()
                        .context("consentId")?
                        .to_owned(),
                )
            };
            citizens.push(Citizen { code, consent_id });
        }
        let [a, b, none, revoked]: [Citizen; 4] = citizens
            .try_into()
            .map_err(|_| anyhow::anyhow!("four citizens"))?;
        let deliver = |to: String, kind: &'static str, attachment: bool, tag: &'static str| {
            let http = &http;
            let admin = admin.clone();
            let canary = format!("{suite_prefix}-{tag}");
            async move {
                let mut body = json!({
                    "endUserId": to,
                    "title": format!("Certification {tag} {canary}-title"),
                    "body": format!("Body of {tag}: {canary}-body"),
                    "messageServiceType": kind,
                    "senderName": "Certification sender",
                });
                if attachment {
                    body["attachments"] = json!([{
                        "name": format!("{tag}.pdf"),
                        "mediaType": "application/pdf",
                        "size": 150_000
                    }]);
                }
                let ans = http
                    .admin(&format!("{admin}/admin/messages"), "POST", Some(body))
                    .await?;
                anyhow::ensure!(ans.status == 201, "delivering a message: {}", ans.summary());
                let v = ans.json();
                Ok::<_, anyhow::Error>(Msg {
                    id: v["messageId"].as_i64().context("messageId")?,
                    attachment: v["attachmentIds"][0].as_i64(),
                    canary,
                })
            }
        };
        let a_normal = deliver(a.code.clone(), "Normal", true, "normal").await?;
        let a_verifiable = deliver(a.code.clone(), "Verifiable", true, "verifiable").await?;
        let a_listed = deliver(a.code.clone(), "Normal", false, "listed").await?;
        let a_crash = deliver(a.code.clone(), "Normal", false, "crash").await?;
        let b_normal = deliver(b.code.clone(), "Normal", true, "neighbour").await?;
        // The citizen to be revoked needs mail for a session to exist.
        deliver(revoked.code.clone(), "Normal", false, "revoked").await?;
        Ok(Self {
            target,
            http,
            signer,
            suite_prefix,
            fx: Fixture {
                a,
                b,
                none,
                revoked,
                a_normal,
                a_verifiable,
                a_listed,
                a_crash,
                b_normal,
                started_at,
            },
            secrets: Mutex::new(Vec::new()),
            audit_offset,
        })
    }

    /// A good assertion for `code`, remembered as a secret.
    pub fn token(&self, code: &str) -> anyhow::Result<String> {
        let t = self.signer.sign(&self.signer.claims(code), None)?;
        self.remember(&t);
        Ok(t)
    }

    /// Remembers a token so logs can be searched for it.
    pub fn remember(&self, token: &str) {
        if let Ok(mut s) = self.secrets.lock() {
            s.push(token.to_owned());
        }
    }

    /// An operator-API call.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> anyhow::Result<Answer> {
        self.http
            .gateway(&self.target.gateway_url, method, path, token)
            .await
    }

    /// A call to the backend's admin API.
    pub async fn backend(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Answer> {
        self.http
            .admin(
                &format!("{}{path}", self.target.backend.admin_url),
                method,
                body,
            )
            .await
    }

    /// Openings DVV received, in arrival order.
    pub async fn openings(&self) -> anyhow::Result<Vec<Value>> {
        Ok(list_of(
            self.backend("GET", "/admin/openings", None).await?.json(),
            "openings",
        ))
    }

    /// Calls the gateway's provider made at DVV after `after_seq`.
    pub async fn dvv_calls(&self, after_seq: u64) -> anyhow::Result<Vec<Value>> {
        let provider = self.target.backend.info["providers"][0]["id"]
            .as_str()
            .context("providers")?
            .to_owned();
        let a = self
            .backend(
                "GET",
                &format!("/admin/calls?providerId={provider}&afterSeq={after_seq}"),
                None,
            )
            .await?;
        Ok(list_of(a.json(), "calls"))
    }

    /// The sequence number of the newest recorded call (0 when none).
    pub async fn last_seq(&self) -> anyhow::Result<u64> {
        Ok(self
            .dvv_calls(0)
            .await?
            .iter()
            .filter_map(|c| c["seq"].as_u64())
            .max()
            .unwrap_or(0))
    }

    /// Every identity code the run used.
    pub fn codes(&self) -> Vec<String> {
        let fx = &self.fx;
        let mut codes: Vec<String> = [&fx.a, &fx.b, &fx.none, &fx.revoked]
            .iter()
            .map(|c| c.code.clone())
            .collect();
        if let Some(list) = self.target.backend.info["citizens"].as_array() {
            codes.extend(
                list.iter()
                    .filter_map(|c| c["id"].as_str().map(str::to_owned)),
            );
        }
        codes
    }

    /// The canary prefixes to search for: the suite's own and the backend's recording mode.
    pub fn canaries(&self) -> Vec<String> {
        let mut v = vec![self.suite_prefix.clone()];
        v.extend(self.target.backend.canary_prefix.clone());
        v
    }
}

/// Accepts a bare JSON array or an object holding one under `key`.
pub fn list_of(v: Value, key: &str) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        Value::Object(mut o) => match o.remove(key) {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Fresh, distinct, valid test identity codes (individual numbers 900–999).
fn fresh_codes(n: usize) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    while out.len() < n {
        let day = rand::random_range(1..=28u8);
        let month = rand::random_range(1..=12u8);
        let year = rand::random_range(1940..=1999u16);
        let individual = rand::random_range(900..=999u16);
        let code = ikkuna_hetu::IdentityCode::compose(day, month, year, '-', individual)
            .map_err(|e| anyhow::anyhow!("composing a test code: {e}"))?;
        let code = code.reveal().to_owned();
        if !out.contains(&code) {
            out.push(code);
        }
    }
    Ok(out)
}
