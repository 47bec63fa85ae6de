//! OWN-3 and VER-1: another citizen's ids answer exactly like ids that do not exist, and a
//! Verifiable message shows nothing before the receipt is confirmed.

use crate::ctx::Ctx;
use crate::outcome::Outcome;

/// An id no message will have during the run.
const ABSENT: i64 = 987_654_321;

/// OWN-3.
pub async fn own_mail_only(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let token = ctx.token(&ctx.fx.a.code)?;
    let theirs = &ctx.fx.b_normal;
    let att = theirs.attachment.unwrap_or(1);
    let pairs = [
        (
            format!("/v1/messages/{}", theirs.id),
            format!("/v1/messages/{ABSENT}"),
        ),
        (
            format!("/v1/messages/{}/attachments/{att}", theirs.id),
            format!("/v1/messages/{ABSENT}/attachments/{}", att + 1),
        ),
    ];
    let mut problems = Vec::new();
    for (other, absent) in &pairs {
        let a = ctx.call("GET", other, Some(&token)).await?;
        let b = ctx.call("GET", absent, Some(&token)).await?;
        out.log(format!(
            "another citizen's {other} → {}; absent {absent} → {}",
            a.summary(),
            b.summary()
        ));
        if (200..300).contains(&a.status) || a.contains(&theirs.canary) {
            problems.push(format!("{other} was served ({})", a.status));
        } else if a.status != b.status || a.json()["reason"] != b.json()["reason"] {
            problems.push(format!(
                "{other} answers {} but an absent id answers {}: existence is revealed",
                a.summary(),
                b.summary()
            ));
        }
    }
    let opened = ctx
        .openings()
        .await?
        .iter()
        .any(|o| o["messageId"].as_i64() == Some(theirs.id));
    if opened {
        problems.push("an opening was reported for another citizen's message".to_owned());
    }
    Ok(out.decide(
        problems.is_empty(),
        "another citizen's message and attachment are refused exactly like absent ids",
        problems.join("; "),
    ))
}

/// VER-1.
pub async fn verifiable(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let token = ctx.token(&ctx.fx.a.code)?;
    let m = &ctx.fx.a_verifiable;
    let backend_marker = ctx.target.backend.canary_prefix.clone();
    let mut problems = Vec::new();
    let msg = ctx
        .call("GET", &format!("/v1/messages/{}", m.id), Some(&token))
        .await?;
    out.log(format!("message before confirmation → {}", msg.summary()));
    if msg.contains(&m.body_canary()) {
        problems.push("the body was released before receipt confirmation".to_owned());
    }
    if let Some(att) = m.attachment {
        let path = format!("/v1/messages/{}/attachments/{att}", m.id);
        let a = ctx.call("GET", &path, Some(&token)).await?;
        out.log(format!(
            "attachment before confirmation → {} ({} bytes)",
            a.status,
            a.body.len()
        ));
        let leaked = (200..300).contains(&a.status)
            || backend_marker
                .as_deref()
                .map(|p| a.contains(p))
                .unwrap_or(false);
        if leaked {
            problems.push(format!(
                "the attachment was served before confirmation ({})",
                a.status
            ));
        }
    }
    if !problems.is_empty() {
        return Ok(out.fail(problems.join("; ")));
    }
    let confirm = ctx
        .call(
            "POST",
            &format!("/v1/messages/{}/receipt", m.id),
            Some(&token),
        )
        .await?;
    out.log(format!("receipt confirmation → {}", confirm.summary()));
    let after = ctx
        .call("GET", &format!("/v1/messages/{}", m.id), Some(&token))
        .await?;
    out.log(format!("message after confirmation → {}", after.status));
    if !(200..300).contains(&confirm.status) || !after.contains(&m.body_canary()) {
        return Ok(out.error(
            "the body was withheld, but it was not released after the confirmation either: \
             the check is inconclusive",
        ));
    }
    Ok(out.pass("nothing released before the confirmation; the body after it"))
}

/// VER-2: the citizen's confirmation reaches DVV once, as this provider's act; confirming again
/// does not confirm twice.
pub async fn receipt_relayed_once(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let token = ctx.token(&ctx.fx.a.code)?;
    let m = &ctx.fx.a_verifiable;
    let again = ctx
        .call(
            "POST",
            &format!("/v1/messages/{}/receipt", m.id),
            Some(&token),
        )
        .await?;
    out.log(format!("a second confirmation → {}", again.summary()));
    if again.contains(&m.body_canary()) || again.contains(&format!("{}-title", m.canary)) {
        return Ok(out.fail("the answer to a repeated confirmation carries the message's content"));
    }
    let provider = ctx.target.backend.info["providers"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let rows: Vec<serde_json::Value> = crate::ctx::list_of(
        ctx.backend("GET", "/admin/receipts", None).await?.json(),
        "receipts",
    )
    .into_iter()
    .filter(|r| r["messageId"].as_i64() == Some(m.id))
    .collect();
    out.log(format!("DVV's receipts for the message: {}", rows.len()));
    let ours = rows
        .iter()
        .filter(|r| r["providerId"] == provider.as_str())
        .count();
    Ok(out.decide(
        rows.len() == 1 && ours == 1,
        "DVV holds exactly one confirmation, relayed by this provider",
        format!(
            "DVV holds {} confirmation(s), {ours} relayed by this provider",
            rows.len()
        ),
    ))
}
