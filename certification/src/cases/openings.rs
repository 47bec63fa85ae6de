//! OPEN-1..3: every opened message reaches DVV with exactly one opening id — also across a
//! SIGKILL between the read and the delivery — and a message only listed reaches it with none.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::ctx::Ctx;
use crate::outcome::Outcome;

/// How long a delivery may take to show at DVV.
const DELIVERY_WAIT: Duration = Duration::from_secs(20);
/// How long to keep watching for a duplicate after the first opening arrived.
const SETTLE: Duration = Duration::from_millis(1500);

/// Distinct opening ids DVV received for `message_id`.
async fn opening_ids(ctx: &Ctx, message_id: i64) -> anyhow::Result<HashSet<String>> {
    Ok(ctx
        .openings()
        .await?
        .iter()
        .filter(|o| o["messageId"].as_i64() == Some(message_id))
        .filter_map(|o| o["openingId"].as_str().map(str::to_owned))
        .collect())
}

/// Waits for the first opening of `message_id`, then lets duplicates show; the distinct ids.
async fn settled_ids(ctx: &Ctx, message_id: i64) -> anyhow::Result<HashSet<String>> {
    let deadline = Instant::now() + DELIVERY_WAIT;
    loop {
        let ids = opening_ids(ctx, message_id).await?;
        if !ids.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(SETTLE).await;
    opening_ids(ctx, message_id).await
}

fn verdict(out: Outcome, ids: &HashSet<String>, what: &str) -> Outcome {
    match ids.len() {
        1 => out.pass(format!("exactly one opening id reached DVV {what}")),
        0 => out.fail(format!(
            "no opening reached DVV within {DELIVERY_WAIT:?} {what}: lost"
        )),
        n => out.fail(format!(
            "{n} different opening ids reached DVV {what}: duplicated"
        )),
    }
}

/// OPEN-1: opened twice (message and attachment, then the message again), reported once.
pub async fn exactly_once(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let token = ctx.token(&ctx.fx.a.code)?;
    let m = &ctx.fx.a_normal;
    for _ in 0..2 {
        let ans = ctx
            .call("GET", &format!("/v1/messages/{}", m.id), Some(&token))
            .await?;
        out.log(format!("read → {}", ans.status));
        if ans.status != 200 {
            return Ok(out.error(format!("the message could not be read: {}", ans.summary())));
        }
    }
    let ids = settled_ids(ctx, m.id).await?;
    out.log(format!("distinct opening ids at DVV: {}", ids.len()));
    Ok(verdict(out, &ids, "for a message read more than once"))
}

/// OPEN-2: SIGKILL while the delivery is held up at DVV, then a restart.
pub async fn crash(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let mut guard = ctx.target.process.lock().await;
    if guard.is_none() && ctx.target.supervised.is_none() {
        return Ok(out.conclude(
            crate::outcome::Verdict::NotChecked,
            "the suite does not control the gateway process in this mode (give --supervised)",
        ));
    }
    let m = &ctx.fx.a_crash;
    let consent = ctx.fx.a.consent_id.clone().unwrap_or_default();
    let path = format!("/v1/consents/{consent}/messages/{}/openings", m.id);
    let plan = ctx
        .backend(
            "POST",
            "/admin/faults",
            Some(json!({"durationMs": 30000, "latencyMs": 25000, "paths": [path]})),
        )
        .await?;
    anyhow::ensure!(
        plan.status == 200,
        "setting the fault plan: {}",
        plan.summary()
    );
    out.log("DVV holds up deliveries of this message's opening");
    let token = ctx.token(&ctx.fx.a.code)?;
    let read = ctx
        .call("GET", &format!("/v1/messages/{}", m.id), Some(&token))
        .await?;
    out.log(format!("read → {}", read.status));
    if read.status != 200 || !read.contains(&m.body_canary()) {
        let _ = ctx.backend("DELETE", "/admin/faults", None).await;
        return Ok(out.error(format!("the message could not be read: {}", read.summary())));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = opening_ids(ctx, m.id).await?;
    match guard.as_mut() {
        Some(process) => {
            process.kill().await;
            out.log(format!(
                "SIGKILL; openings at DVV before the kill: {}",
                before.len()
            ));
            let _ = ctx.backend("DELETE", "/admin/faults", None).await;
            process.start(&ctx.http).await?;
        }
        None => {
            drop(guard);
            let killed = ctx.target.kill_supervised().await;
            let _ = ctx.backend("DELETE", "/admin/faults", None).await;
            killed?;
            ctx.target.wait_ready(&ctx.http).await?;
            out.log(format!(
                "SIGKILL of the supervised process; openings at DVV before the kill: {}",
                before.len()
            ));
        }
    }
    out.log("restarted and ready");
    let ids = settled_ids(ctx, m.id).await?;
    out.log(format!("distinct opening ids at DVV: {}", ids.len()));
    Ok(verdict(
        out,
        &ids,
        "across a SIGKILL between the read and the delivery",
    ))
}

/// OPEN-3: listed, never opened, never reported.
pub async fn none_for_listed(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let token = ctx.token(&ctx.fx.a.code)?;
    let m = &ctx.fx.a_listed;
    let list = ctx
        .call("GET", "/v1/messages?limit=100", Some(&token))
        .await?;
    let listed = list.json()["messages"]
        .as_array()
        .map(|l| l.iter().any(|x| x["messageId"].as_i64() == Some(m.id)))
        .unwrap_or(false);
    out.log(format!(
        "inbox → {}, the message listed: {listed}",
        list.status
    ));
    if !listed {
        return Ok(out.error("the message did not appear in the inbox"));
    }
    tokio::time::sleep(SETTLE).await;
    let ids = opening_ids(ctx, m.id).await?;
    Ok(out.decide(
        ids.is_empty(),
        "no opening reported for a message that was only listed",
        format!(
            "{} opening(s) reported for a message never opened",
            ids.len()
        ),
    ))
}

/// The openings DVV received for `message_id`, as recorded.
async fn openings_of(ctx: &Ctx, message_id: i64) -> anyhow::Result<Vec<serde_json::Value>> {
    Ok(ctx
        .openings()
        .await?
        .into_iter()
        .filter(|o| o["messageId"].as_i64() == Some(message_id))
        .collect())
}

fn time_of(v: &serde_json::Value) -> Option<chrono::DateTime<chrono::Utc>> {
    v.as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Sets a fault plan at the backend.
async fn fault(ctx: &Ctx, plan: serde_json::Value) -> anyhow::Result<()> {
    let a = ctx.backend("POST", "/admin/faults", Some(plan)).await?;
    anyhow::ensure!(a.status == 200, "setting the fault plan: {}", a.summary());
    Ok(())
}

fn consent_path(ctx: &Ctx, message_id: i64) -> String {
    format!(
        "/v1/consents/{}/messages/{message_id}",
        ctx.fx.a.consent_id.clone().unwrap_or_default()
    )
}

/// OPEN-4: `HEAD` releases nothing, so it records no opening, whatever it answers.
pub async fn none_for_head(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let token = ctx.token(&ctx.fx.a.code)?;
    let m = &ctx.fx.a_head;
    for _ in 0..2 {
        let ans = ctx
            .call("HEAD", &format!("/v1/messages/{}", m.id), Some(&token))
            .await?;
        out.log(format!("HEAD → {}", ans.status));
    }
    tokio::time::sleep(SETTLE + Duration::from_secs(2)).await;
    let n = openings_of(ctx, m.id).await?.len();
    Ok(out.decide(
        n == 0,
        "no opening reported for a message asked for with HEAD",
        format!("{n} opening(s) reported for HEAD, which releases no body"),
    ))
}

/// OPEN-5: DVV fails the message call (503, then a dropped connection): nothing was released,
/// so no opening may be reported — not even later, when DVV answers again.
pub async fn none_on_failed_upstream(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let token = ctx.token(&ctx.fx.a.code)?;
    let m = &ctx.fx.a_failed;
    let mut released = Vec::new();
    for (what, rates) in [("503", (1.0, 0.0)), ("dropped", (0.0, 1.0))] {
        fault(
            ctx,
            json!({"durationMs": 60000, "errorRate": rates.0, "dropRate": rates.1,
                   "paths": [consent_path(ctx, m.id)], "methods": ["GET"]}),
        )
        .await?;
        let ans = ctx
            .call("GET", &format!("/v1/messages/{}", m.id), Some(&token))
            .await?;
        let _ = ctx.backend("DELETE", "/admin/faults", None).await;
        out.log(format!(
            "read while DVV's answer is {what} → {}",
            ans.summary()
        ));
        if (200..300).contains(&ans.status) || ans.contains(&m.body_canary()) {
            released.push(what);
        }
    }
    if !released.is_empty() {
        return Ok(out.error(format!(
            "the message was served although DVV failed ({}): inconclusive",
            released.join(", ")
        )));
    }
    tokio::time::sleep(SETTLE + Duration::from_secs(3)).await;
    let n = openings_of(ctx, m.id).await?.len();
    Ok(out.decide(
        n == 0,
        "no opening reported for reads DVV failed (503, dropped connection)",
        format!("{n} opening(s) reported although DVV's answer failed and nothing was released"),
    ))
}

/// OPEN-6: `openedAt` is when the citizen read, not when the report was delivered: DVV refuses
/// the report for a while, the late delivery must still carry the time of the read.
pub async fn opened_at(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let token = ctx.token(&ctx.fx.a.code)?;
    let m = &ctx.fx.a_late;
    let hold = Duration::from_secs(6);
    fault(
        ctx,
        json!({"durationMs": hold.as_millis() as u64, "errorRate": 1.0,
               "paths": [format!("{}/openings", consent_path(ctx, m.id))], "methods": ["POST"]}),
    )
    .await?;
    let before = chrono::Utc::now();
    let ans = ctx
        .call("GET", &format!("/v1/messages/{}", m.id), Some(&token))
        .await?;
    let after = chrono::Utc::now();
    out.log(format!(
        "read between {before} and {after} → {}; DVV refuses the report for {} s",
        ans.status,
        hold.as_secs()
    ));
    if ans.status != 200 {
        let _ = ctx.backend("DELETE", "/admin/faults", None).await;
        return Ok(out.error(format!("the message could not be read: {}", ans.summary())));
    }
    tokio::time::sleep(hold).await;
    let _ = ctx.backend("DELETE", "/admin/faults", None).await;
    let ids = settled_ids(ctx, m.id).await?;
    let rows = openings_of(ctx, m.id).await?;
    let Some(row) = rows.first() else {
        return Ok(out.fail(format!(
            "no opening reached DVV within {DELIVERY_WAIT:?} after DVV accepted reports again"
        )));
    };
    let (Some(at), Some(received)) = (time_of(&row["openedAt"]), time_of(&row["receivedAt"]))
    else {
        return Ok(out.fail("DVV's record of the opening has no readable openedAt"));
    };
    out.log(format!(
        "openedAt {at}, received by DVV at {received}; {} distinct id(s)",
        ids.len()
    ));
    let skew = chrono::Duration::seconds(1);
    Ok(out.decide(
        at >= before - skew && at <= after + skew,
        format!(
            "openedAt lies within the read ({} ms after it began), although delivered {} ms later",
            (at - before).num_milliseconds(),
            (received - after).num_milliseconds()
        ),
        format!(
            "openedAt {at} is not the time of the read ({before} … {after}); DVV received it at {received}"
        ),
    ))
}

/// OPEN-7: DVV records the opening and the answer is lost on the way back: the gateway cannot
/// know it arrived, retries, and must reuse the same opening id (DVV then answers 409 with the
/// original); a new id on the retry would be a second, invented opening.
pub async fn retry_same_key(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let token = ctx.token(&ctx.fx.a.code)?;
    let m = &ctx.fx.a_lost;
    let path = format!("{}/openings", consent_path(ctx, m.id));
    let seq = ctx.last_seq().await?;
    fault(
        ctx,
        json!({"durationMs": 3000, "loseAnswerRate": 1.0, "paths": [path.clone()], "methods": ["POST"]}),
    )
    .await?;
    let ans = ctx
        .call("GET", &format!("/v1/messages/{}", m.id), Some(&token))
        .await?;
    out.log(format!("read → {}", ans.status));
    if ans.status != 200 {
        let _ = ctx.backend("DELETE", "/admin/faults", None).await;
        return Ok(out.error(format!("the message could not be read: {}", ans.summary())));
    }
    // Wait for a lost answer and a later attempt.
    let deadline = Instant::now() + DELIVERY_WAIT + Duration::from_secs(10);
    let (lost, retried) = loop {
        let calls: Vec<serde_json::Value> = ctx
            .dvv_calls(seq)
            .await?
            .into_iter()
            .filter(|c| c["path"] == path.as_str() && c["method"] == "POST")
            .collect();
        let lost = calls.iter().filter(|c| c["fault"] == "lose-answer").count();
        let retried = calls.iter().filter(|c| c["fault"].is_null()).count();
        if (lost > 0 && retried > 0) || Instant::now() > deadline {
            break (lost, retried);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let _ = ctx.backend("DELETE", "/admin/faults", None).await;
    tokio::time::sleep(SETTLE).await;
    let ids = opening_ids(ctx, m.id).await?;
    out.log(format!(
        "reports DVV carried out with the answer lost: {lost}; later attempts: {retried}; distinct opening ids: {}",
        ids.len()
    ));
    if lost == 0 {
        return Ok(out.fail("no opening report reached DVV while it lost answers"));
    }
    if retried == 0 {
        return Ok(out.fail(
            "after a lost answer the report was never retried: the gateway cannot know it arrived",
        ));
    }
    Ok(out.decide(
        ids.len() == 1,
        format!("{lost} lost answer(s), {retried} retry(ies), one opening id throughout"),
        format!(
            "{} different opening ids after a lost answer: the retry used a new key",
            ids.len()
        ),
    ))
}

/// OPEN-8: a Verifiable message is opened only when its body is released, after the receipt is
/// confirmed: no opening reaches DVV before the confirmation, exactly one after.
pub async fn verifiable_after_receipt(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let m = &ctx.fx.a_verifiable;
    let receipts = ctx.backend("GET", "/admin/receipts", None).await?.json();
    let confirmed = crate::ctx::list_of(receipts, "receipts")
        .into_iter()
        .find(|r| r["messageId"].as_i64() == Some(m.id))
        .and_then(|r| time_of(&r["receiptConfirmedAt"]));
    let Some(confirmed) = confirmed else {
        return Ok(out.error(
            "the Verifiable message's receipt was not confirmed at DVV (VER-1 runs first)",
        ));
    };
    let ids = settled_ids(ctx, m.id).await?;
    let rows = openings_of(ctx, m.id).await?;
    let early: Vec<String> = rows
        .iter()
        .filter(|r| {
            time_of(&r["receivedAt"]).is_some_and(|t| t < confirmed)
                || time_of(&r["openedAt"])
                    .is_some_and(|t| t < confirmed - chrono::Duration::seconds(1))
        })
        .map(|r| r["openingId"].as_str().unwrap_or("?").to_owned())
        .collect();
    out.log(format!(
        "receipt confirmed at {confirmed}; {} opening row(s), {} distinct id(s)",
        rows.len(),
        ids.len()
    ));
    if !early.is_empty() {
        return Ok(out.fail(format!(
            "{} opening(s) opened or reported before the receipt confirmation",
            early.len()
        )));
    }
    Ok(verdict(
        out,
        &ids,
        "for a Verifiable message, after its confirmation",
    ))
}
