//! CON-1..3: consent first — refused without one, refused within the bound after a revocation,
//! and DVV's own recording shows no message call for a citizen without an active consent.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::outcome::Outcome;

/// Slack on top of the bound for polling and clocks.
const SLACK: Duration = Duration::from_millis(2000);

/// CON-1: a citizen who never consented.
pub async fn none(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let seq = ctx.last_seq().await?;
    let token = ctx.token(&ctx.fx.none.code)?;
    let mut answers = Vec::new();
    for path in [
        "/v1/messages",
        &format!("/v1/messages/{}", ctx.fx.a_normal.id),
    ] {
        let ans = ctx.call("GET", path, Some(&token)).await?;
        out.log(format!("GET {path} without consent → {}", ans.summary()));
        answers.push(ans.status);
    }
    let message_calls = message_calls(&ctx.dvv_calls(seq).await?);
    out.log(format!(
        "DVV calls since: {} on message paths",
        message_calls.len()
    ));
    if answers.iter().any(|s| (200..300).contains(s)) {
        return Ok(out.fail(format!(
            "answered {answers:?} for a citizen without consent"
        )));
    }
    Ok(out.decide(
        message_calls.is_empty(),
        format!("refused ({answers:?}); DVV saw no message call"),
        format!("DVV saw message calls: {message_calls:?}"),
    ))
}

/// CON-2: revoked during a session, refused within the bound. The consent state is polled
/// first (it may come from the gateway's cache, which is what the bound limits); only then is the
/// inbox asked for, which must be refused too.
pub async fn revoked_within_bound(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let bound = ctx.target.revocation_bound;
    let code = ctx.fx.revoked.code.clone();
    let token = ctx.token(&code)?;
    let first = ctx.call("GET", "/v1/messages", Some(&token)).await?;
    let state = ctx.call("GET", "/v1/consent", Some(&token)).await?;
    out.log(format!(
        "session before revocation: inbox {}, consent state {}",
        first.summary(),
        state.json()["state"]
    ));
    if first.status != 200 {
        return Ok(out.error("the citizen's inbox was not readable before the revocation"));
    }
    let r = ctx
        .backend(
            "POST",
            "/admin/consents/revoke",
            Some(json!({"endUserId": code})),
        )
        .await?;
    anyhow::ensure!(r.status == 200, "revoking: {}", r.summary());
    let revoked = Instant::now();
    out.log(format!("revoked at DVV; bound {} s", bound.as_secs_f64()));
    let seen_at = loop {
        let elapsed = revoked.elapsed();
        let ans = ctx
            .call("GET", "/v1/consent", Some(&ctx.token(&code)?))
            .await?;
        let active = ans.status == 200 && ans.json()["state"] == "Active";
        if !active {
            out.log(format!(
                "consent state no longer active after {} ms: {} {}",
                elapsed.as_millis(),
                ans.status,
                ans.json()["state"]
            ));
            break elapsed;
        }
        if elapsed > bound + SLACK + Duration::from_secs(2) {
            return Ok(out.fail(format!(
                "the revocation was not seen {} ms after it (bound {} s)",
                elapsed.as_millis(),
                bound.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let inbox = ctx
        .call("GET", "/v1/messages", Some(&ctx.token(&code)?))
        .await?;
    out.log(format!("inbox after the revocation: {}", inbox.summary()));
    if (200..300).contains(&inbox.status) {
        return Ok(out.fail("the inbox was still served after the revocation was seen"));
    }
    Ok(out.decide(
        seen_at <= bound + SLACK,
        format!(
            "revocation honoured {} ms after it (bound {} s); the inbox is refused",
            seen_at.as_millis(),
            bound.as_secs()
        ),
        format!(
            "revocation honoured only {} ms after it (bound {} s)",
            seen_at.as_millis(),
            bound.as_secs()
        ),
    ))
}

/// CON-3: the recording. Also gives every citizen the seed left without consent a try first.
pub async fn recording(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let bound = ctx.target.revocation_bound;
    // (consentId, active until) for consents that were not active during (part of) the run.
    let mut inactive: Vec<(String, Option<DateTime<Utc>>)> = Vec::new();
    let seeded_revoked: Vec<String> = ctx.target.backend.info["citizens"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|c| c["consent"] == "Revoked")
                .filter_map(|c| c["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for code in &seeded_revoked {
        let token = ctx.token(code)?;
        let ans = ctx.call("GET", "/v1/messages", Some(&token)).await?;
        out.log(format!(
            "a seeded citizen with a revoked consent: inbox → {}",
            ans.summary()
        ));
        let r = ctx
            .backend(
                "POST",
                "/admin/consents/revoke",
                Some(json!({"endUserId": code})),
            )
            .await?;
        if let Some(id) = r.json()["consentId"].as_str() {
            inactive.push((id.to_owned(), None));
        }
    }
    let code = &ctx.fx.revoked.code;
    let r = ctx
        .backend(
            "POST",
            "/admin/consents/revoke",
            Some(json!({"endUserId": code})),
        )
        .await?;
    let v = r.json();
    if let (Some(id), Some(at)) = (v["consentId"].as_str(), v["revokedAt"].as_str()) {
        let at = DateTime::parse_from_rfc3339(at)?.with_timezone(&Utc);
        let until = at + chrono::Duration::from_std(bound + SLACK)?;
        inactive.push((id.to_owned(), Some(until)));
    }
    let calls = ctx.dvv_calls(0).await?;
    out.log(format!(
        "{} DVV calls recorded for the provider",
        calls.len()
    ));
    let mut violations = Vec::new();
    for call in message_calls(&calls) {
        let path = call["path"].as_str().unwrap_or("");
        for (id, until) in &inactive {
            if !path.contains(&format!("/consents/{id}/")) {
                continue;
            }
            let time = call["time"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            let allowed = match (until, time) {
                (Some(until), Some(t)) => t <= *until,
                _ => false,
            };
            if !allowed {
                violations.push(format!(
                    "{} {} at {} (status {})",
                    call["method"].as_str().unwrap_or(""),
                    redact_consent(path),
                    call["time"].as_str().unwrap_or("?"),
                    call["status"]
                ));
            }
        }
    }
    out.evidence(format!(
        "{} consents without an active state checked against {} recorded calls",
        inactive.len(),
        calls.len()
    ));
    Ok(out.decide(
        violations.is_empty(),
        "no message call for a consent that was not active (beyond the revocation bound)",
        format!(
            "message calls without an active consent: {}",
            violations.join("; ")
        ),
    ))
}

/// Calls on `/v1/consents/{id}/messages…`.
pub fn message_calls(calls: &[Value]) -> Vec<Value> {
    calls
        .iter()
        .filter(|c| {
            c["path"]
                .as_str()
                .map(|p| p.starts_with("/v1/consents/") && p.contains("/messages"))
                .unwrap_or(false)
        })
        .cloned()
        .collect()
}

fn redact_consent(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| if i == 3 { "{consentId}" } else { p })
        .collect::<Vec<_>>()
        .join("/")
}
