//! NOTIFY-1: a notification never discloses a hidden sender or any title. Two messages arrive
//! for a consenting citizen: one whose sender asked not to be named in notifications (its name a
//! canary of this run) and one whose sender allows it (the control). The `message.created`
//! webhooks must carry a notification hint for both; the control's must name its sender (so a
//! leak would be seen), the hidden one's must not, and no webhook may carry the hidden sender or
//! any title of the run.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::outcome::{Outcome, Verdict};

/// How long to wait for the two messages' webhooks.
const WAIT: Duration = Duration::from_secs(30);

/// NOTIFY-1.
pub async fn hidden_sender(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let Some(rx) = &ctx.target.webhooks else {
        let configured = crate::webhooks_configured(Some(std::path::Path::new(
            &ctx.target.subject.configuration_file,
        )));
        return Ok(match configured {
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
