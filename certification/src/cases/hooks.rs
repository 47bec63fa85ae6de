//! TRACE-3, TRACE-4 and API-1: what leaves the gateway besides the operator API's content —
//! webhooks carry ids only and are signed — and every error the operator API gave the run was a
//! JSON object with a `reason`.

use std::time::{Duration, Instant};

use crate::ctx::Ctx;
use crate::outcome::{Outcome, Verdict};
use crate::scan;

/// How long to wait for the webhooks of the fixture's messages.
const WAIT: Duration = Duration::from_secs(30);

/// The deliveries, after waiting for one that names a fixture message; `Err` with a verdict when
/// the suite cannot receive them.
async fn deliveries(
    ctx: &Ctx,
    out: &mut Outcome,
) -> Result<Vec<crate::webhooks::Delivery>, Verdict> {
    let Some(rx) = &ctx.target.webhooks else {
        return Err(
            match crate::webhooks_configured(Some(std::path::Path::new(
                &ctx.target.subject.configuration_file,
            ))) {
                Some(false) => Verdict::NotApplicable,
                _ => Verdict::NotChecked,
            },
        );
    };
    let want = ctx.fx.a_normal.id;
    let started = Instant::now();
    loop {
        let d = rx.deliveries();
        let named = d.iter().any(|x| {
            serde_json::from_slice::<serde_json::Value>(&x.body)
                .map(|v| v.to_string().contains(&want.to_string()))
                .unwrap_or(false)
        });
        if named || started.elapsed() > WAIT {
            out.log(format!(
                "{} webhook deliveries received (one naming a fixture message: {named})",
                d.len()
            ));
            return Ok(d);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn unavailable(out: Outcome, v: Verdict) -> Outcome {
    match v {
        Verdict::NotApplicable => out.conclude(
            v,
            "the configuration checked sends no webhooks ([webhooks] endpoints empty or absent)",
        ),
        _ => out.conclude(
            v,
            "the deployment's webhooks were not received (mode 2: give --gateway-config and --webhook-listen)",
        ),
    }
}

/// TRACE-3: webhooks carry ids only: no content (plain or encoded) and no identity code, and
/// they did arrive for the fixture's messages (missing evidence is a failure).
pub async fn ids_only(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let d = match deliveries(ctx, &mut out).await {
        Ok(d) => d,
        Err(v) => return Ok(unavailable(out, v)),
    };
    let want = ctx.fx.a_normal.id.to_string();
    if !d
        .iter()
        .any(|x| String::from_utf8_lossy(&x.body).contains(&want))
    {
        return Ok(out.fail(format!(
            "no webhook named a message delivered during the run within {} s: no evidence",
            WAIT.as_secs()
        )));
    }
    let mut needles: Vec<(String, String)> = Vec::new();
    for c in ctx.canaries() {
        needles.push(("content (a canary)".into(), c.clone()));
        needles.extend(
            scan::encoded_forms(&c)
                .into_iter()
                .map(|(f, t)| (format!("content ({f}-encoded)"), t)),
        );
    }
    needles.extend(
        ctx.codes()
            .into_iter()
            .map(|c| ("an identity code".into(), c)),
    );
    needles.push(("a message title".into(), "Certification ".into()));
    let mut found = Vec::new();
    for x in &d {
        let mut all = x.body.to_vec();
        for (k, v) in &x.headers {
            all.extend_from_slice(k.as_str().as_bytes());
            all.extend_from_slice(v.as_bytes());
        }
        found.extend(scan::scan_bytes(&all, &needles));
    }
    found.sort();
    found.dedup();
    Ok(out.decide(
        found.is_empty(),
        format!(
            "{} webhooks carry ids and times only: no content, title or identity code",
            d.len()
        ),
        format!("webhooks carry {}", found.join(", ")),
    ))
}

/// TRACE-4: every webhook is signed over its body with the configured secret.
pub async fn signed(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let d = match deliveries(ctx, &mut out).await {
        Ok(d) => d,
        Err(v) => return Ok(unavailable(out, v)),
    };
    let Some(rx) = &ctx.target.webhooks else {
        return Ok(out.error("no receiver"));
    };
    if d.is_empty() {
        return Ok(out.fail("no webhook was delivered: no evidence"));
    }
    let bad = d
        .iter()
        .filter(|x| {
            let h = x
                .headers
                .get("ikkuna-signature")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            !crate::webhooks::signature_valid(&rx.secret, h, &x.body)
        })
        .count();
    Ok(out.decide(
        bad == 0,
        format!(
            "all {} webhooks carry a valid signature over their body",
            d.len()
        ),
        format!("{bad} of {} webhooks lack a valid signature", d.len()),
    ))
}

/// API-1: every error answer of the run was a JSON object with a non-empty `reason`.
pub async fn error_shape(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let seen = ctx.http.seen();
    let errors: Vec<_> = seen.iter().filter(|s| s.status >= 400).collect();
    let mut kinds: Vec<u16> = errors.iter().map(|s| s.status).collect();
    kinds.sort_unstable();
    kinds.dedup();
    out.log(format!(
        "{} error answers, statuses {kinds:?}",
        errors.len()
    ));
    if kinds.len() < 3 {
        return Ok(out.fail(format!(
            "too little evidence: error statuses {kinds:?} (three kinds are needed)"
        )));
    }
    let bad: Vec<String> = errors
        .iter()
        .filter(|s| s.method != "HEAD" && s.reason.as_deref().is_none_or(str::is_empty))
        .map(|s| format!("{} {} → {}", s.method, s.path, s.status))
        .collect();
    Ok(out.decide(
        bad.is_empty(),
        format!("all {} error answers are JSON with a reason", errors.len()),
        format!(
            "{} error answer(s) without a reason, e.g. {}",
            bad.len(),
            bad.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        ),
    ))
}
