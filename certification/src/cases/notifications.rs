//! NOTIFY-1: a notification never discloses a hidden sender or any title. Two messages arrive
//! for a consenting citizen: one whose sender asked not to be named in notifications (its name a
//! canary of this run) and one whose sender allows it (the control). The `message.created`
//! webhooks must carry a notification hint for both; the control's must name its sender (so a
//! leak would be seen), the hidden one's must not, and no webhook may carry the hidden sender or
//! any title of the run.
//!
//! NOTIFY-2: a message read elsewhere is never reminded. Two messages whose sender allows
//! reminders arrive for a citizen who also uses another provider's window; the suite, acting as
//! that provider towards DVV with its own client certificate and client assertion, reads one of
//! them there well before its reminder falls due. The other stays unread: its `message.reminder`
//! must arrive (the control: a gateway that never reminds cannot pass), the one read elsewhere
//! must never get one.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::outcome::{Outcome, Verdict};

/// How long to wait for the two messages' webhooks.
const WAIT: Duration = Duration::from_secs(30);

/// The suite's webhook receiver, or the outcome of a run that has none: NOT APPLICABLE when the
/// configuration sends no webhooks, NOT CHECKED when the suite was not told where they go.
fn receiver(ctx: &Ctx) -> Result<&crate::webhooks::Receiver, Outcome> {
    let out = Outcome::new();
    let Some(rx) = &ctx.target.webhooks else {
        let configured = crate::webhooks_configured(Some(std::path::Path::new(
            &ctx.target.subject.configuration_file,
        )));
        return Err(match configured {
            Some(false) => out.conclude(
                Verdict::NotApplicable,
                "the configuration checked sends no webhooks ([webhooks] endpoints empty or absent)",
            ),
            _ => out.conclude(
                Verdict::NotChecked,
                "the deployment's webhooks were not received (mode 2: give --gateway-config and --webhook-listen)",
            ),
        });
    };
    Ok(rx)
}

/// NOTIFY-1.
pub async fn hidden_sender(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let rx = match receiver(ctx) {
        Ok(rx) => rx,
        Err(outcome) => return Ok(outcome),
    };
    let admin = &ctx.target.backend.admin_url;
    let hidden = format!("{}-hidden-sender", ctx.suite_prefix);
    // The control's sender is no canary: it may (and must) appear in its own hint.
    let named = format!("Named sender {}", hex::encode(rand::random::<[u8; 4]>()));
    let title = format!("Certification notify {}-title", ctx.suite_prefix);
    let mut ids = Vec::new();
    for (sender, details) in [(&hidden, "None"), (&named, "Organisation and service name")] {
        let body = json!({
            "endUserId": ctx.fx.a.code,
            "title": title,
            "body": format!("{}-notify-body", ctx.suite_prefix),
            "senderName": sender,
            "notifications": {
                "senderDetailsInNotifications": details,
                "unreadMessageNotification": {"reminder": "No reminders"}
            }
        });
        let a = ctx
            .http
            .admin(&format!("{admin}/admin/messages"), "POST", Some(body))
            .await?;
        anyhow::ensure!(a.status == 201, "delivering a message: {}", a.summary());
        ids.push(a.json()["messageId"].as_i64().unwrap_or(0));
    }
    let (hidden_id, named_id) = (ids[0], ids[1]);
    let hint_of = |d: &[crate::webhooks::Delivery], id: i64| -> Option<Value> {
        d.iter()
            .filter_map(|x| serde_json::from_slice::<Value>(&x.body).ok())
            .find(|v| v["type"] == "message.created" && v["messageId"] == id)
            .map(|v| v["notification"].clone())
    };
    let started = Instant::now();
    let deliveries = loop {
        let d = rx.deliveries();
        if (hint_of(&d, hidden_id).is_some() && hint_of(&d, named_id).is_some())
            || started.elapsed() > WAIT
        {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    out.log(format!(
        "{} webhook deliveries; messages {hidden_id} (sender hidden) and {named_id} (sender named)",
        deliveries.len()
    ));
    let (Some(hidden_hint), Some(named_hint)) = (
        hint_of(&deliveries, hidden_id),
        hint_of(&deliveries, named_id),
    ) else {
        return Ok(out.fail(format!(
            "no message.created webhook for both messages within {} s: no evidence",
            WAIT.as_secs()
        )));
    };
    if !named_hint.is_object() || !hidden_hint.is_object() {
        return Ok(out.fail("a message.created webhook carries no notification hint"));
    }
    if named_hint["sender"] != named.as_str() {
        return Ok(out.fail(format!(
            "the control's hint does not name the sender it was allowed to name: {named_hint}"
        )));
    }
    let mut found = Vec::new();
    for x in &deliveries {
        let mut all = String::from_utf8_lossy(&x.body).into_owned();
        for (k, v) in &x.headers {
            all.push_str(k.as_str());
            all.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
        if all.contains(&hidden) {
            found.push("the hidden sender");
        }
        if all.contains(&title) || all.contains("Certification ") {
            found.push("a message title");
        }
    }
    found.sort_unstable();
    found.dedup();
    Ok(out.decide(
        found.is_empty(),
        format!(
            "{} webhooks: the hidden sender and every title stay out; the allowed sender is named",
            deliveries.len()
        ),
        format!("webhooks carry {}", found.join(" and ")),
    ))
}

/// Longest wait from arrival to a first reminder the suite will sit through; a configuration
/// that reminds later (a week, in production) cannot be checked in one run.
const LONGEST_REMINDER_WAIT: Duration = Duration::from_secs(60);
/// How long after its due time the control's reminder may take to arrive.
const REMINDER_SLACK: Duration = Duration::from_secs(30);
/// How long the suite keeps listening after the control's reminder arrived: the message read
/// elsewhere fell due first (it arrived first), so a reminder for it would be sent by then.
const AFTER_CONTROL: Duration = Duration::from_secs(2);

/// Distinct `message.reminder` webhooks (by event id) for `message`.
fn reminders_of(d: &[crate::webhooks::Delivery], message: i64) -> usize {
    let mut ids: Vec<String> = d
        .iter()
        .filter_map(|x| serde_json::from_slice::<Value>(&x.body).ok())
        .filter(|v| v["type"] == "message.reminder" && v["messageId"] == message)
        .map(|v| v["id"].to_string())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

/// Another provider's window at DVV: the suite acting as that provider over its own mutual TLS
/// and `private_key_jwt` client assertion, exactly as another operator's backend would.
struct OtherWindow {
    http: crate::http::Http,
    dvv: String,
    token: String,
}

impl OtherWindow {
    /// Signs in at DVV's token endpoint as the backend's second provider (`sandbox.json`).
    async fn sign_in(ctx: &Ctx) -> anyhow::Result<(Self, String)> {
        let info = &ctx.target.backend.info;
        let own = info["providers"][0]["id"].as_str().unwrap_or_default();
        let other = info["providers"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["id"].as_str() != Some(own)))
            .context("the backend lists no second provider")?;
        let id = other["id"].as_str().context("provider id")?.to_owned();
        let path = |k: &str| -> anyhow::Result<std::path::PathBuf> {
            Ok(other[k].as_str().context("provider file")?.into())
        };
        let http = crate::http::Http::with_client_cert(
            &ctx.target.backend.path("caCert")?,
            Some(crate::http::ClientCert {
                cert: path("clientCert")?,
                key: path("clientKey")?,
            }),
        )?;
        let dvv = info["dvvUrl"].as_str().context("dvvUrl")?.to_owned();
        let token_url = format!("{dvv}/v1/token");
        let key = jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(path("assertionKey")?)?)
            .context("the provider's assertion key")?;
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": id, "sub": id, "aud": token_url, "iat": now, "exp": now + 60,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let assertion = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            &claims,
            &key,
        )?;
        let a = http
            .post_form(
                &token_url,
                &[
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                    ("client_id", &id),
                ],
            )
            .await?;
        anyhow::ensure!(a.status == 200, "{id}'s token request: {}", a.summary());
        let token = a.json()["access_token"]
            .as_str()
            .context("access_token")?
            .to_owned();
        Ok((Self { http, dvv, token }, id))
    }

    /// Reads `message` as the citizen of `consent` and reports the opening, as a window does.
    async fn read(&self, consent: &str, message: i64) -> anyhow::Result<()> {
        let auth = [("authorization".to_owned(), format!("Bearer {}", self.token))];
        let base = format!("{}/v1/consents/{consent}/messages/{message}", self.dvv);
        let a = self.http.request("GET", &base, &auth, None).await?;
        anyhow::ensure!(a.status == 200, "reading the message: {}", a.summary());
        let opened_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let body = json!({
            "openingId": format!("cert-elsewhere-{}", hex::encode(rand::random::<[u8; 6]>())),
            "openedAt": opened_at,
        });
        let a = self
            .http
            .request("POST", &format!("{base}/openings"), &auth, Some(&body))
            .await?;
        anyhow::ensure!(a.status == 201, "reporting the opening: {}", a.summary());
        Ok(())
    }
}

/// NOTIFY-2.
pub async fn read_elsewhere(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let rx = match receiver(ctx) {
        Ok(rx) => rx,
        Err(outcome) => return Ok(outcome),
    };
    let settings = &ctx.target.settings;
    if settings.reminder_max_count == 0 {
        return Ok(out.conclude(
            Verdict::NotApplicable,
            "the configuration checked sends no reminders (reminders.max_count = 0)",
        ));
    }
    let wait = settings.reminder_wait;
    if wait > LONGEST_REMINDER_WAIT {
        return Ok(out.conclude(
            Verdict::NotChecked,
            format!(
                "a first reminder falls due {} s after a message arrives and the suite cannot move \
                 the deployment's clock: check a deployment against the recording backend whose \
                 reminders.clock_offset_secs brings it within {} s",
                wait.as_secs(),
                LONGEST_REMINDER_WAIT.as_secs()
            ),
        ));
    }
    let (window, provider) = OtherWindow::sign_in(ctx).await?;
    let citizen = &ctx.fx.a.code;
    let a = ctx
        .backend(
            "POST",
            "/admin/consents/grant",
            Some(json!({"endUserId": citizen, "providerId": provider})),
        )
        .await?;
    anyhow::ensure!(a.status == 200, "consent at {provider}: {}", a.summary());
    let consent = a.json()["consentId"]
        .as_str()
        .context("consentId")?
        .to_owned();
    // The message to be read elsewhere arrives first, so it falls due no later than the control.
    let started = Instant::now();
    let mut ids = Vec::new();
    for tag in ["elsewhere", "unread"] {
        let a = ctx
            .backend(
                "POST",
                "/admin/messages",
                Some(json!({
                    "endUserId": citizen,
                    "title": format!("Reminded {tag} {}-{tag}-title", ctx.suite_prefix),
                    "body": format!("{}-{tag}-body", ctx.suite_prefix),
                    "senderName": "Conformance sender",
                    "notifications": {
                        "unreadMessageNotification": {"reminder": "Default reminder"}
                    }
                })),
            )
            .await?;
        anyhow::ensure!(a.status == 201, "delivering a message: {}", a.summary());
        ids.push(a.json()["messageId"].as_i64().context("messageId")?);
    }
    let (elsewhere, unread) = (ids[0], ids[1]);
    window.read(&consent, elsewhere).await?;
    let read_after = started.elapsed();
    let recorded = ctx
        .openings()
        .await?
        .iter()
        .any(|o| o["providerId"] == provider.as_str() && o["messageId"] == elsewhere);
    anyhow::ensure!(
        recorded,
        "DVV recorded no opening of message {elsewhere} by {provider}"
    );
    out.log(format!(
        "message {elsewhere} read in {provider}'s window (DVV recorded the opening) {:.1} ms \
         after it was sent; message {unread} left unread; first reminder due {} s after arrival",
        read_after.as_secs_f64() * 1_000.0,
        wait.as_secs()
    ));
    if read_after >= wait {
        return Ok(out.error(format!(
            "the read in {provider}'s window reached DVV only {:.1} ms after the message arrived, \
             not before its reminder fell due: no fair test",
            read_after.as_secs_f64() * 1_000.0
        )));
    }
    let deadline = wait + REMINDER_SLACK;
    let deliveries = loop {
        let d = rx.deliveries();
        if reminders_of(&d, unread) > 0 || started.elapsed() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if reminders_of(&deliveries, unread) == 0 {
        return Ok(out.fail(format!(
            "no message.reminder for the unread control within {} s of its arrival (due after {} s): \
             no evidence that the gateway reminds at all",
            deadline.as_secs(),
            wait.as_secs()
        )));
    }
    out.log(format!(
        "the control's reminder arrived {} ms after the control was sent",
        started.elapsed().as_millis()
    ));
    tokio::time::sleep(AFTER_CONTROL).await;
    let reminded = reminders_of(&rx.deliveries(), elsewhere);
    Ok(out.decide(
        reminded == 0,
        format!("the unread control was reminded; the message read in {provider}'s window was not"),
        format!(
            "{reminded} message.reminder webhook(s) for the message read in {provider}'s window \
             {:.1} ms after it arrived",
            read_after.as_secs_f64() * 1_000.0
        ),
    ))
}
