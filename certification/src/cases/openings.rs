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
    let Some(process) = guard.as_mut() else {
        return Ok(out.conclude(
            crate::outcome::Verdict::NotChecked,
            "the suite does not control the gateway process in this mode",
        ));
    };
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
    process.kill().await;
    out.log(format!(
        "SIGKILL; openings at DVV before the kill: {}",
        before.len()
    ));
    let _ = ctx.backend("DELETE", "/admin/faults", None).await;
    process.start(&ctx.http).await?;
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
