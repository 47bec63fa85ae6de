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
    /// Active, revoked during the run (revocation through the feed).
    pub revoked: Citizen,
    /// Active, revoked during the run while DVV withholds the revocation from the feed.
    pub revoked_quietly: Citizen,
    /// Active, revoked while one of their downloads is in flight.
    pub revoked_downloading: Citizen,
    /// Active; stops reading a large download.
    pub slow: Citizen,
    /// A: normal message with an attachment, opened.
    pub a_normal: Msg,
    /// A: verifiable message with an attachment.
    pub a_verifiable: Msg,
    /// A: only ever listed.
    pub a_listed: Msg,
    /// A: opened just before a SIGKILL.
    pub a_crash: Msg,
    /// A: the target of refused requests on every route (never opened by a good request).
    pub a_probe: Msg,
    /// A: asked for with `HEAD` only.
    pub a_head: Msg,
    /// A: read while DVV fails the message call.
    pub a_failed: Msg,
    /// A: read while DVV refuses the opening report for a while (late delivery).
    pub a_late: Msg,
    /// A: read while DVV records the opening and loses its answer.
    pub a_lost: Msg,
    /// A: first read while the store cannot write (OPEN-9; never released).
    pub a_store_full: Msg,
    /// A: first read under strace (OPEN-10: the opening synced before the first byte).
    pub a_durable: Msg,
    /// A: first read under strace (TRACE-5: the audit line synced before the first byte).
    pub a_audited: Msg,
    /// B: A's neighbour's message.
    pub b_normal: Msg,
    /// The slow reader's large attachment.
    pub slow_big: Msg,
    /// The large attachment downloaded across a revocation.
    pub revoked_big: Msg,
    /// A: read while DVV answers the report "Opened in the future" for a while (OPEN-11).
    pub a_corroborated: Msg,
    /// Active, revokes the consent while their opening waits for DVV (OPEN-12).
    pub switching: Citizen,
    /// The switching citizen's message, read before the revocation.
    pub switching_read: Msg,
    /// Active, revokes the consent while the gateway is killed with their opening pending (OPEN-13).
    pub settling: Citizen,
    /// The settling citizen's message, read before the SIGKILL.
    pub settling_read: Msg,
    /// When the fixture was made (RFC 3339), to scope the backend's recording.
    pub started_at: String,
}

/// Size of the large attachments: far more than the socket buffers and flow-control windows
/// between the suite and the gateway, so a reader that stops really holds the stream.
pub const BIG_ATTACHMENT: u64 = 96 * 1024 * 1024;

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
        let mut codes = fresh_codes(9)?;
        // The fair-openings citizens (consent granted below, with the others').
        let settling_code = codes.pop().context("a fresh code")?;
        let switching_code = codes.pop().context("a fresh code")?;
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
        let [a, b, none, revoked, revoked_quietly, revoked_downloading, slow]: [Citizen; 7] =
            citizens
                .try_into()
                .map_err(|_| anyhow::anyhow!("seven citizens"))?;
        let mut fair = Vec::new();
        for code in [switching_code, settling_code] {
            let g = http
                .admin(
                    &format!("{admin}/admin/consents/grant"),
                    "POST",
                    Some(json!({"endUserId": code})),
                )
                .await?;
            anyhow::ensure!(g.status == 200, "granting a consent: {}", g.summary());
            let consent_id = g.json()["consentId"].as_str().map(str::to_owned);
            anyhow::ensure!(consent_id.is_some(), "granting a consent: no consentId");
            fair.push(Citizen { code, consent_id });
        }
        let [switching, settling]: [Citizen; 2] = fair
            .try_into()
            .map_err(|_| anyhow::anyhow!("two citizens"))?;
        let deliver =
            |to: String, kind: &'static str, attachment: Option<u64>, tag: &'static str| {
                let http = &http;
                let admin = admin.clone();
                let canary = format!("{suite_prefix}-{tag}");
                async move {
                    let mut body = json!({
                        "endUserId": to,
                        "title": format!("Certification {tag} {canary}-title"),
                        "body": format!("Body of {tag}: {canary}-body"),
                        "messageServiceType": kind,
                        // Not "Certification …": a sender that allows it is named in notification
                        // hints, and "Certification " marks a title for TRACE-3.
                        "senderName": "Conformance sender",
                    });
                    if let Some(size) = attachment {
                        body["attachments"] = json!([{
                            "name": format!("{tag}.pdf"),
                            "mediaType": "application/pdf",
                            "size": size
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
        const SMALL: Option<u64> = Some(150_000);
        let a_code = a.code.clone();
        let a_normal = deliver(a_code.clone(), "Normal", SMALL, "normal").await?;
        let a_verifiable = deliver(a_code.clone(), "Verifiable", SMALL, "verifiable").await?;
        let a_listed = deliver(a_code.clone(), "Normal", None, "listed").await?;
        let a_crash = deliver(a_code.clone(), "Normal", None, "crash").await?;
        let a_probe = deliver(a_code.clone(), "Normal", SMALL, "probe").await?;
        let a_head = deliver(a_code.clone(), "Normal", None, "head").await?;
        let a_failed = deliver(a_code.clone(), "Normal", None, "failed").await?;
        let a_late = deliver(a_code.clone(), "Normal", None, "late").await?;
        let a_lost = deliver(a_code.clone(), "Normal", None, "lost").await?;
        let a_store_full = deliver(a_code.clone(), "Normal", None, "store-full").await?;
        let a_durable = deliver(a_code.clone(), "Normal", None, "durable").await?;
        let a_audited = deliver(a_code.clone(), "Normal", None, "audited").await?;
        let b_normal = deliver(b.code.clone(), "Normal", SMALL, "neighbour").await?;
        // The citizens to be revoked need mail for a session to exist.
        deliver(revoked.code.clone(), "Normal", None, "revoked").await?;
        deliver(revoked_quietly.code.clone(), "Normal", None, "quiet").await?;
        let slow_big = deliver(slow.code.clone(), "Normal", Some(BIG_ATTACHMENT), "slow").await?;
        let revoked_big = deliver(
            revoked_downloading.code.clone(),
            "Normal",
            Some(BIG_ATTACHMENT),
            "downloading",
        )
        .await?;
        let a_corroborated = deliver(a_code.clone(), "Normal", None, "corroborated").await?;
        let switching_read = deliver(switching.code.clone(), "Normal", None, "switching").await?;
        let settling_read = deliver(settling.code.clone(), "Normal", None, "settling").await?;
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
                revoked_quietly,
                revoked_downloading,
                slow,
                a_normal,
                a_verifiable,
                a_listed,
                a_crash,
                a_probe,
                a_head,
                a_store_full,
                a_durable,
                a_audited,
                a_failed,
                a_late,
                a_lost,
                b_normal,
                slow_big,
                revoked_big,
                a_corroborated,
                switching,
                switching_read,
                settling,
                settling_read,
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

    /// Waits until the gateway has read DVV's events feed twice since now, so every event up to
    /// now (consents granted by the fixture, for instance) has reached it; `false` when it did
    /// not within `limit`.
    pub async fn feed_caught_up(&self, limit: std::time::Duration) -> anyhow::Result<bool> {
        let seq = self.last_seq().await?;
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            let polls = self
                .dvv_calls(seq)
                .await?
                .iter()
                .filter(|c| c["path"] == "/v1/events" && c["status"] == 200)
                .count();
            if polls >= 2 {
                return Ok(true);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok(false)
    }

    /// Every identity code the run used.
    pub fn codes(&self) -> Vec<String> {
        let fx = &self.fx;
        let mut codes: Vec<String> = [
            &fx.a,
            &fx.b,
            &fx.none,
            &fx.revoked,
            &fx.revoked_quietly,
            &fx.revoked_downloading,
            &fx.slow,
            &fx.switching,
            &fx.settling,
        ]
        .iter()
        .map(|c| c.code.clone())
        .collect();
        codes.extend(twins(&fx.a.code));
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

/// The century-sign twins of a 1900s code: the same characters under every other 1900s sign.
/// Since 2023 each is a different person (the check character does not depend on the sign).
pub fn twins(code: &str) -> Vec<String> {
    const SIGNS_1900S: [char; 6] = ['-', 'Y', 'X', 'W', 'V', 'U'];
    let chars: Vec<char> = code.chars().collect();
    if chars.len() != 11 || !SIGNS_1900S.contains(&chars[6]) {
        return Vec::new();
    }
    SIGNS_1900S
        .iter()
        .filter(|s| **s != chars[6])
        .map(|s| {
            let mut c = chars.clone();
            c[6] = *s;
            c.into_iter().collect()
        })
        .collect()
}

/// Calls on a consent's resources that are not the delivery of an opening report: what a
/// refused request must never cause at DVV. `consent_id` narrows them to one consent.
pub fn consent_calls(calls: &[Value], consent_id: Option<&str>) -> Vec<String> {
    calls
        .iter()
        .filter(|c| {
            let path = c["path"].as_str().unwrap_or("");
            path.starts_with("/v1/consents")
                && !(c["method"] == "POST" && path.ends_with("/openings"))
                && consent_id.is_none_or(|id| path.contains(&format!("/consents/{id}/")))
        })
        .map(|c| {
            format!(
                "{} {}",
                c["method"].as_str().unwrap_or(""),
                redact_consent(c["path"].as_str().unwrap_or(""))
            )
        })
        .collect()
}

/// A DVV path with its consent id replaced, for evidence.
pub fn redact_consent(path: &str) -> String {
    path.split('/')
        .enumerate()
        .map(|(i, p)| {
            if i == 3 && p != "lookup" {
                "{consentId}"
            } else {
                p
            }
        })
        .collect::<Vec<_>>()
        .join("/")
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
