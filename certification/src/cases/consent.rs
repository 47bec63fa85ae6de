//! CON-1..3: consent first — refused without one, refused within the bound after a revocation,
//! and DVV's own recording shows no message call for a citizen without an active consent.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::outcome::Outcome;

/// Slack on top of the bound for polling and clocks.
const SLACK: Duration = Duration::from_millis(2000);

/// The operator API's message routes for `code`'s token, aimed at `m` (another citizen's or no
/// one's: nothing may be served either way).
async fn message_routes_refused(
    ctx: &Ctx,
    out: &mut Outcome,
    token: &str,
    who: &str,
) -> anyhow::Result<Vec<String>> {
    let m = &ctx.fx.a_probe;
    let mut paths = vec![
        ("GET", "/v1/messages".to_owned()),
        ("GET", format!("/v1/messages/{}", m.id)),
        ("POST", format!("/v1/messages/{}/receipt", m.id)),
    ];
    if let Some(att) = m.attachment {
        paths.push(("GET", format!("/v1/messages/{}/attachments/{att}", m.id)));
    }
    let mut problems = Vec::new();
    for (method, path) in paths {
        let ans = ctx.call(method, &path, Some(token)).await?;
        out.log(format!("{who}: {method} {path} → {}", ans.summary()));
        if (200..300).contains(&ans.status) || ans.contains(&m.canary) {
            problems.push(format!("{who}: {method} {path} answered {}", ans.status));
        }
    }
    let state = ctx.call("GET", "/v1/consent", Some(token)).await?;
    out.log(format!(
        "{who}: GET /v1/consent → {} state {}",
        state.status,
        state.json()["state"]
    ));
    if state.json()["state"] == "Active" {
        problems.push(format!("{who}: the consent state reads Active"));
    }
    Ok(problems)
}

/// CON-1: a citizen who never consented, on every route; DVV sees no message call.
pub async fn none(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let seq = ctx.last_seq().await?;
    let token = ctx.token(&ctx.fx.none.code)?;
    let mut problems = message_routes_refused(ctx, &mut out, &token, "no consent").await?;
    let calls = ctx.dvv_calls(seq).await?;
    let message_calls = message_calls(&calls);
    out.log(format!(
        "DVV calls since: {} on message paths",
        message_calls.len()
    ));
    if !message_calls.is_empty() {
        problems.push(format!(
            "DVV saw {} message call(s) for a citizen without consent",
            message_calls.len()
        ));
    }
    Ok(out.decide(
        problems.is_empty(),
        "refused on every route; DVV saw no message call",
        problems.join("; "),
    ))
}

/// CON-5: the century sign is part of the identity. Right after A (who consented) used the
/// gateway, each of A's twins (same digits, another 1900s sign; no consent) is refused on every
/// route and DVV sees no message call on A's consent for them.
pub async fn century_twins(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let a = &ctx.fx.a;
    let consent = a.consent_id.clone().unwrap_or_default();
    let mut problems = Vec::new();
    let twins = crate::ctx::twins(&a.code);
    if twins.is_empty() {
        return Ok(out.error("the fixture's citizen has no century-sign twin"));
    }
    for (i, twin) in twins.iter().enumerate() {
        // A's consent is fresh in any cache when the twin arrives.
        let warm = ctx
            .call("GET", "/v1/messages?limit=1", Some(&ctx.token(&a.code)?))
            .await?;
        if warm.status != 200 {
            return Ok(out.error(format!("A's own inbox was not served: {}", warm.summary())));
        }
        let seq = ctx.last_seq().await?;
        let token = ctx.token(twin)?;
        let label = format!(
            "twin {} (sign {})",
            i + 1,
            twin.chars().nth(6).unwrap_or('?')
        );
        if i == 0 {
            problems.extend(message_routes_refused(ctx, &mut out, &token, &label).await?);
        } else {
            let ans = ctx.call("GET", "/v1/messages", Some(&token)).await?;
            out.log(format!("{label}: GET /v1/messages → {}", ans.summary()));
            if (200..300).contains(&ans.status) {
                problems.push(format!("{label}: the inbox was served"));
            }
        }
        let seen = crate::ctx::consent_calls(&ctx.dvv_calls(seq).await?, Some(&consent));
        if !seen.is_empty() {
            problems.push(format!(
                "{label}: DVV saw {} on A's consent",
                seen.join(", ")
            ));
        }
    }
    Ok(out.decide(
        problems.is_empty(),
        format!(
            "{} century-sign twins of a consenting citizen are refused; DVV saw no call on that citizen's consent for them",
            twins.len()
        ),
        problems.join("; "),
    ))
}

/// CON-4: DVV withholds the revocation from its events feed; the consent state must still stop
/// reading Active within the bound (the cache's own bound, not the feed, is what is tested).
pub async fn bound_without_feed(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let bound = ctx.target.revocation_bound;
    let code = ctx.fx.revoked_quietly.code.clone();
    // Everything before the revocation has reached the gateway through the feed (a late
    // "Consent granted" would make it look the consent up again and hide a cache that ignores
    // its bound).
    if !ctx.feed_caught_up(Duration::from_secs(30)).await? {
        return Ok(out.error("the gateway did not read DVV's events feed within 30 s"));
    }
    let first = ctx
        .call("GET", "/v1/messages", Some(&ctx.token(&code)?))
        .await?;
    let state = ctx
        .call("GET", "/v1/consent", Some(&ctx.token(&code)?))
        .await?;
    out.log(format!(
        "before: inbox {}, consent state {}",
        first.summary(),
        state.json()["state"]
    ));
    if first.status != 200 || state.json()["state"] != "Active" {
        return Ok(out.error("the citizen's consent was not active and in use before the test"));
    }
    let hold = bound + SLACK + Duration::from_secs(20);
    let plan = ctx
        .backend(
            "POST",
            "/admin/faults",
            Some(json!({
                "durationMs": hold.as_millis() as u64,
                "withholdRevocations": true,
                "paths": ["/v1/events"],
            })),
        )
        .await?;
    anyhow::ensure!(
        plan.status == 200,
        "setting the fault plan: {}",
        plan.summary()
    );
    let r = ctx
        .backend(
            "POST",
            "/admin/consents/revoke",
            Some(json!({"endUserId": code})),
        )
        .await?;
    anyhow::ensure!(r.status == 200, "revoking: {}", r.summary());
    let revoked = Instant::now();
    out.log(format!(
        "revoked at DVV; the feed withholds it; bound {} s",
        bound.as_secs_f64()
    ));
    let result = loop {
        let elapsed = revoked.elapsed();
        let ans = ctx
            .call("GET", "/v1/consent", Some(&ctx.token(&code)?))
            .await?;
        if ans.json()["state"] != "Active" || ans.status != 200 {
            out.log(format!(
                "consent state no longer Active after {} ms: {} {}",
                elapsed.as_millis(),
                ans.status,
                ans.json()["state"]
            ));
            break Some(elapsed);
        }
        if elapsed > bound + SLACK + Duration::from_secs(3) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let inbox = ctx
        .call("GET", "/v1/messages", Some(&ctx.token(&code)?))
        .await?;
    out.log(format!("inbox afterwards: {}", inbox.summary()));
    let _ = ctx.backend("DELETE", "/admin/faults", None).await;
    let Some(seen_at) = result else {
        return Ok(out.fail(format!(
            "with the revocation withheld from the feed, the consent still read Active {} ms after it (bound {} s)",
            revoked.elapsed().as_millis(),
            bound.as_secs()
        )));
    };
    if (200..300).contains(&inbox.status) {
        return Ok(out.fail("the inbox was served after the revocation"));
    }
    Ok(out.decide(
        seen_at <= bound + SLACK,
        format!(
            "without the feed, the revocation was honoured {} ms after it (bound {} s)",
            seen_at.as_millis(),
            bound.as_secs()
        ),
        format!(
            "without the feed, the revocation was honoured only {} ms after it (bound {} s)",
            seen_at.as_millis(),
            bound.as_secs()
        ),
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
    for citizen in [
        &ctx.fx.revoked,
        &ctx.fx.revoked_quietly,
        &ctx.fx.revoked_downloading,
    ] {
        // Revoking again answers the consent with its original revocation time.
        let r = ctx
            .backend(
                "POST",
                "/admin/consents/revoke",
                Some(json!({"endUserId": citizen.code})),
            )
            .await?;
        let v = r.json();
        if let (Some(id), Some(at)) = (v["consentId"].as_str(), v["revokedAt"].as_str()) {
            let at = DateTime::parse_from_rfc3339(at)?.with_timezone(&Utc);
            let until = at + chrono::Duration::from_std(bound + SLACK)?;
            inactive.push((id.to_owned(), Some(until)));
        }
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
                    crate::ctx::redact_consent(path),
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
