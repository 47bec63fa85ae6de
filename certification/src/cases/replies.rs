//! REPLY-1 and REPLY-2: a citizen's reply is refused, before any of it reaches DVV, where the
//! sender accepts none; where it does, one idempotency key gives exactly one reply at DVV, and
//! the trail records it by sizes and digests only.
//!
//! Judged by what DVV saw (its recorded calls and the replies it holds), not by status codes: a
//! gateway that forwards the upload and relays DVV's own refusal answers the same 403 as one that
//! refused first, but DVV's call log shows the upload. The reply's text and file carry the run's
//! canary, so the scans at the end of the run (data directory, logs, audit trail, temporary files,
//! files the process held open) also search for reply content.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::outcome::{Outcome, Verdict};

/// Creates a message for citizen A at the backend with the given `replyAllowedBy`.
async fn message(ctx: &Ctx, allowed: &str, tag: &str) -> anyhow::Result<i64> {
    let admin = &ctx.target.backend.admin_url;
    let canary = format!("{}-{tag}", ctx.suite_prefix);
    let ans = ctx
        .http
        .admin(
            &format!("{admin}/admin/messages"),
            "POST",
            Some(json!({
                "endUserId": ctx.fx.a.code,
                "title": format!("Certification {tag} {canary}-title"),
                "body": format!("Body of {tag}: {canary}-body"),
                "senderName": "Conformance sender",
                "replyAllowedBy": allowed,
            })),
        )
        .await?;
    anyhow::ensure!(ans.status == 201, "delivering a message: {}", ans.summary());
    ans.json()["messageId"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no messageId"))
}

/// A multipart reply (a text and one small PDF), both carrying the run's canary.
fn reply_body(ctx: &Ctx, tag: &str) -> (String, Bytes) {
    let boundary = format!("certreply{}", hex::encode(rand::random::<[u8; 8]>()));
    let canary = format!("{}-{tag}", ctx.suite_prefix);
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"body\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nReply text {canary}-reply\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"liite.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4 {canary}-replyfile\r\n\
         --{boundary}--\r\n"
    );
    (
        format!("multipart/form-data; boundary={boundary}"),
        Bytes::from(body),
    )
}

async fn post_reply(
    ctx: &Ctx,
    message: i64,
    key: &str,
    tag: &str,
) -> anyhow::Result<crate::http::Answer> {
    let token = ctx.token(&ctx.fx.a.code)?;
    let (content_type, body) = reply_body(ctx, tag);
    let headers = vec![
        ("authorization".to_owned(), format!("Bearer {token}")),
        ("content-type".to_owned(), content_type),
        ("idempotency-key".to_owned(), key.to_owned()),
    ];
    ctx.http
        .gateway_post(
            &ctx.target.gateway_url,
            &format!("/v1/messages/{message}/replies"),
            &headers,
            body,
        )
        .await
}

/// DVV's reply uploads for `message` since `after_seq`.
async fn uploads(ctx: &Ctx, message: i64, after_seq: u64) -> anyhow::Result<usize> {
    let suffix = format!("/messages/{message}/replies");
    Ok(ctx
        .dvv_calls(after_seq)
        .await?
        .iter()
        .filter(|c| {
            c["method"] == "POST" && c["path"].as_str().is_some_and(|p| p.ends_with(&suffix))
        })
        .count())
}

/// The replies DVV holds for `message`.
async fn held(ctx: &Ctx, message: i64) -> anyhow::Result<Vec<Value>> {
    let admin = &ctx.target.backend.admin_url;
    let ans = ctx
        .http
        .admin(&format!("{admin}/admin/replies"), "GET", None)
        .await?;
    anyhow::ensure!(ans.status == 200, "listing replies: {}", ans.summary());
    Ok(ans.json()["replies"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["messageId"].as_i64() == Some(message))
        .collect())
}

/// REPLY-1: a reply to a message that accepts none is refused with a reason and never uploaded.
pub async fn refused_when_not_allowed(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let closed = message(ctx, "No one", "reply-closed").await?;
    let open = message(ctx, "Anyone", "reply-control").await?;
    let seq = ctx.last_seq().await?;
    let refused = post_reply(ctx, closed, "cert-reply-closed-1", "reply-closed").await?;
    out.log(format!(
        "reply to a message that accepts none → {}",
        refused.summary()
    ));
    let control = post_reply(ctx, open, "cert-reply-control-1", "reply-control").await?;
    out.log(format!(
        "control: reply to a message that accepts replies → {}",
        control.summary()
    ));
    if control.status != 201 {
        return Ok(out.error("the control reply was not accepted: replies cannot be judged"));
    }
    let uploaded = uploads(ctx, closed, seq).await?;
    let kept = held(ctx, closed).await?.len();
    let control_uploads = uploads(ctx, open, seq).await?;
    out.log(format!(
        "DVV saw {uploaded} upload(s) of the refused reply (holds {kept}); {control_uploads} of the control"
    ));
    if control_uploads == 0 {
        return Ok(out.error("DVV's call log shows no upload even for the control"));
    }
    let reason = refused.json()["reason"].as_str().unwrap_or("").to_owned();
    let mut problems = Vec::new();
    if refused.status != 403 || reason.is_empty() {
        problems.push(format!(
            "answered {} instead of 403 with a reason",
            refused.summary()
        ));
    }
    if uploaded > 0 {
        problems.push(format!(
            "the reply was uploaded to DVV {uploaded} time(s) before being refused"
        ));
    }
    if kept > 0 {
        problems.push(format!(
            "DVV holds {kept} reply(ies) to a message that accepts none"
        ));
    }
    Ok(out.decide(
        problems.is_empty(),
        format!("refused with 403 ({reason}) and no byte of it reached DVV"),
        problems.join("; "),
    ))
}

/// REPLY-2: one idempotency key, one reply at DVV (the repeat answered with the original), and
/// an audit line that holds sizes and digests, never the text.
pub async fn once_per_key(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let id = message(ctx, "Anyone", "reply-once").await?;
    let key = format!("cert-{}", hex::encode(rand::random::<[u8; 8]>()));
    let first = post_reply(ctx, id, &key, "reply-once").await?;
    let again = post_reply(ctx, id, &key, "reply-once").await?;
    out.log(format!(
        "reply → {}; the same key again → {}",
        first.summary(),
        again.summary()
    ));
    if first.status != 201 {
        return Ok(out.error(format!(
            "the first reply was not accepted: {}",
            first.summary()
        )));
    }
    let reply_id = first.json()["replyId"].as_i64();
    let kept = held(ctx, id).await?;
    out.log(format!(
        "DVV holds {} reply(ies) to the message",
        kept.len()
    ));
    let mut problems = Vec::new();
    if kept.len() != 1 {
        problems.push(format!("DVV holds {} replies for one key", kept.len()));
    }
    if again.status != 409 || again.json()["replyId"].as_i64() != reply_id {
        problems.push(format!(
            "the repeat answered {} without the original replyId",
            again.summary()
        ));
    }
    match &ctx.target.audit_file {
        None => out.log("no audit file: the reply's audit line is not checked here"),
        Some(path) => {
            let text = std::fs::read(path).unwrap_or_default();
            let tail = &text[(ctx.audit_offset as usize).min(text.len())..];
            let lines: Vec<Value> = String::from_utf8_lossy(tail)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .filter(|l: &Value| l["action"] == "reply" && l["messageId"].as_i64() == Some(id))
                .collect();
            let evidenced = lines.iter().any(|l| {
                l["reply"]["replyId"].as_i64() == reply_id
                    && l["reply"]["parts"].as_array().is_some_and(|p| {
                        p.len() == 2
                            && p.iter().all(|part| {
                                part["sha256"].as_str().is_some_and(|h| h.len() == 64)
                                    && part["size"].as_u64().is_some()
                            })
                    })
            });
            out.log(format!("{} audit line(s) for the reply", lines.len()));
            if !evidenced {
                problems.push(
                    "no audit line records the reply with its id and each part's size and SHA-256"
                        .to_owned(),
                );
            }
            if String::from_utf8_lossy(tail)
                .contains(&format!("{}-reply-once-reply", ctx.suite_prefix))
            {
                problems.push("the reply's text is in the audit trail".to_owned());
            }
        }
    }
    if problems.is_empty() && ctx.target.audit_file.is_none() {
        return Ok(out.conclude(
            Verdict::Pass,
            "one reply at DVV for one key, the repeat answered 409 with the original",
        ));
    }
    Ok(out.decide(
        problems.is_empty(),
        "one reply at DVV for one key, the repeat answered 409 with the original, audited by sizes and digests",
        problems.join("; "),
    ))
}
