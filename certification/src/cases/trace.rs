//! TRACE-1/2, TLS-4, MET-1, LIM-1, OPS-1: what the gateway's logs, audit trail, metrics and admin
//! listener show, and how it answers a burst.

use std::time::Duration;

use futures_util::future::join_all;

use crate::ctx::Ctx;
use crate::outcome::{Outcome, Verdict};
use crate::scan;

/// Requests in the burst.
const BURST: usize = 150;

/// The metrics exposition, or `None` when the gateway serves none.
pub async fn fetch_metrics(ctx: &Ctx) -> anyhow::Result<Option<String>> {
    let Some(admin) = &ctx.target.admin_url else {
        return Ok(None);
    };
    let ans = ctx
        .http
        .admin(&format!("{admin}/metrics"), "GET", None)
        .await?;
    if ans.status != 200 {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&ans.body).into_owned()))
}

/// TLS-4: no assertion the suite handed over appears in the log.
pub async fn secrets_not_logged(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let out = Outcome::new();
    let Some(log) = &ctx.target.log_file else {
        return Ok(out.conclude(Verdict::NotChecked, "no log file given"));
    };
    let secrets = ctx.secrets.lock().map(|s| s.clone()).unwrap_or_default();
    let needles: Vec<(String, String)> = secrets
        .iter()
        .filter_map(|t| t.rsplit('.').next().filter(|s| s.len() >= 16))
        .map(|sig| ("a citizen assertion".to_owned(), sig.to_owned()))
        .chain(secrets.iter().filter_map(|t| {
            t.split('.')
                .nth(1)
                .map(|p| ("a citizen assertion's payload".to_owned(), p.to_owned()))
        }))
        .collect();
    let (_, found) = scan::scan(log, &needles);
    Ok(out.decide(
        found.is_empty(),
        format!("none of {} assertions appears in the log", secrets.len()),
        format!(
            "{} in the log",
            found.first().map(|f| f.label.as_str()).unwrap_or("")
        ),
    ))
}

/// TRACE-1: no identity code in the log, audit trail or metrics.
pub async fn no_identity_code(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let needles: Vec<(String, String)> = ctx
        .codes()
        .into_iter()
        .map(|c| ("an identity code".to_owned(), c))
        .collect();
    let mut found = Vec::new();
    let mut searched = 0;
    for path in ctx
        .target
        .log_file
        .iter()
        .chain(ctx.target.audit_file.iter())
    {
        let (_, f) = scan::scan(path, &needles);
        searched += 1;
        found.extend(
            f.into_iter()
                .map(|f| format!("{} in {}", f.label, f.path.display())),
        );
    }
    if let Some(m) = fetch_metrics(ctx).await? {
        searched += 1;
        found.extend(
            scan::scan_bytes(m.as_bytes(), &needles)
                .into_iter()
                .map(|l| format!("{l} in /metrics")),
        );
    }
    out.log(format!(
        "{} identity codes searched in {searched} sources",
        needles.len()
    ));
    if searched == 0 {
        return Ok(out.conclude(
            Verdict::NotChecked,
            "no log, audit file or metrics to search",
        ));
    }
    found.dedup();
    Ok(out.decide(
        found.is_empty(),
        format!("no identity code in {searched} sources (log, audit, metrics)"),
        found.join("; "),
    ))
}

/// TRACE-2: the audit trail of this run: JSON lines, a hash chain, no identity code or canary, at
/// least one line per operator call, and one citizen's accesses found by their pseudonym.
pub async fn audit(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let Some(path) = &ctx.target.audit_file else {
        return Ok(out.conclude(
            Verdict::NotChecked,
            "no audit file configured or named (--audit-file, [audit] file, or auditLog in \
             sandbox.json): the audit-trail requirement is unproven",
        ));
    };
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(out.fail(format!("the audit file {} does not exist", path.display())));
    };
    let all: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let new = bytes.get(ctx.audit_offset as usize..).unwrap_or_default();
    let lines: Vec<&[u8]> = new
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let not_json = lines
        .iter()
        .filter(|l| serde_json::from_slice::<serde_json::Value>(l).is_err())
        .count();
    let calls = ctx.http.gateway_calls();
    out.log(format!(
        "{} lines in the file, {} from this run ({not_json} not JSON); {calls} operator calls made",
        all.len(),
        lines.len()
    ));
    let mut problems = Vec::new();
    let mut unproven = Vec::new();
    if not_json > 0 {
        problems.push(format!("{not_json} lines are not JSON"));
    }
    let mut needles: Vec<(String, String)> = ctx
        .codes()
        .into_iter()
        .map(|c| ("an identity code".into(), c))
        .collect();
    needles.extend(ctx.canaries().into_iter().map(|c| ("a canary".into(), c)));
    for label in scan::scan_bytes(new, &needles) {
        problems.push(format!("{label} appears in the audit trail"));
    }
    if lines.len() < calls {
        problems.push(format!(
            "{} audit lines for {calls} operator calls: accesses are missing",
            lines.len()
        ));
    }
    match crate::audit::verify_chain(&all) {
        crate::audit::Chain::Verified(n) => {
            out.evidence(format!("hash chain verified over {n} lines"))
        }
        crate::audit::Chain::BrokenAt(i) => {
            problems.push(format!("the hash chain breaks at line {}", i + 1))
        }
        crate::audit::Chain::Unrecognised => problems.push(
            "no line names the hash of the line before it: the trail is not a hash chain (tamper-evidence unproven is a failure)"
                .to_owned(),
        ),
    }
    match ctx
        .target
        .audit_key
        .as_ref()
        .and_then(|k| std::fs::read(k).ok())
    {
        None => unproven.push(
            "no pseudonym key given (--audit-key): one citizen's accesses were not reconstructed",
        ),
        Some(key) => {
            let names = crate::audit::pseudonyms(&key, &ctx.fx.a.code);
            let found = lines
                .iter()
                .filter(|l| {
                    names
                        .iter()
                        .any(|n| String::from_utf8_lossy(l).contains(n.as_str()))
                })
                .count();
            out.log(format!("lines naming one citizen by pseudonym: {found}"));
            if found == 0 {
                problems
                    .push("no line names the citizen under the pseudonym the key gives".to_owned());
            } else {
                out.evidence(format!(
                    "{found} accesses of one citizen reconstructed with the pseudonym key"
                ));
            }
        }
    }
    Ok(if !problems.is_empty() {
        out.fail(problems.join("; "))
    } else if !unproven.is_empty() {
        out.conclude(Verdict::NotChecked, unproven.join("; "))
    } else {
        out.pass("the audit trail is complete, chained and pseudonymous")
    })
}

/// MET-1: the exposition parses; no identity code or canary.
pub async fn metrics(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    if ctx.target.admin_url.is_none() {
        return Ok(out.conclude(Verdict::NotChecked, "no admin listener given (--admin-url)"));
    }
    let Some(text) = fetch_metrics(ctx).await? else {
        return Ok(out.fail("the admin listener serves no /metrics: no evidence"));
    };
    let (samples, errors) = parse_exposition(&text);
    out.log(format!(
        "{samples} samples, {} unparsable lines",
        errors.len()
    ));
    let mut needles: Vec<(String, String)> = ctx
        .codes()
        .into_iter()
        .map(|c| ("an identity code".into(), c))
        .collect();
    needles.extend(ctx.canaries().into_iter().map(|c| ("a canary".into(), c)));
    let found = scan::scan_bytes(text.as_bytes(), &needles);
    let mut problems = Vec::new();
    if !errors.is_empty() {
        problems.push(format!("unparsable lines: {}", errors.join(" | ")));
    }
    if samples == 0 {
        problems.push("no samples".to_owned());
    }
    if !found.is_empty() {
        problems.push(format!("{} in the metrics", found.join(", ")));
    }
    Ok(out.decide(
        problems.is_empty(),
        format!("{samples} samples parse; no identity code or canary"),
        problems.join("; "),
    ))
}

/// Counts samples of a Prometheus text exposition and lists lines that do not parse (at most 5).
pub fn parse_exposition(text: &str) -> (usize, Vec<String>) {
    let mut samples = 0;
    let mut errors = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if sample_ok(line) {
            samples += 1;
        } else if errors.len() < 5 {
            errors.push(line.chars().take(80).collect());
        }
    }
    (samples, errors)
}

fn sample_ok(line: &str) -> bool {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return false;
    }
    let mut rest = &line[name_end..];
    if rest.starts_with('{') {
        // Labels: name="value" pairs with escapes, up to the closing brace.
        let mut in_quotes = false;
        let mut escaped = false;
        let mut end = None;
        for (i, c) in rest.char_indices().skip(1) {
            match (in_quotes, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (_, false, '"') => in_quotes = !in_quotes,
                (false, _, '}') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else { return false };
        rest = &rest[end + 1..];
    }
    let mut parts = rest.split_whitespace();
    let value_ok = parts
        .next()
        .map(|v| v.parse::<f64>().is_ok() || matches!(v, "+Inf" | "-Inf" | "NaN"))
        .unwrap_or(false);
    let ts_ok = parts
        .next()
        .map(|t| t.parse::<i64>().is_ok())
        .unwrap_or(true);
    value_ok && ts_ok && parts.next().is_none()
}

/// LIM-1: a burst from one citizen.
pub async fn limits(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let token = ctx.token(&ctx.fx.b.code)?;
    let calls = (0..BURST).map(|_| ctx.call("GET", "/v1/messages?limit=1", Some(&token)));
    let answers = join_all(calls).await;
    let mut limited = 0;
    let mut with_retry_after = 0;
    let mut other = 0;
    for a in answers.iter().flatten() {
        if a.status == 429 {
            limited += 1;
            if a.header("retry-after").is_some() {
                with_retry_after += 1;
            }
        } else if a.status != 200 {
            other += 1;
        }
    }
    out.log(format!("{BURST} requests at once: {limited} × 429 ({with_retry_after} with Retry-After), {other} other refusals"));
    // Let the limiter recover before later cases.
    tokio::time::sleep(Duration::from_millis(500)).await;
    if limited == 0 {
        return Ok(out.conclude(
            Verdict::NotApplicable,
            format!("no 429 under a burst of {BURST}: no rate limit, or one above the burst"),
        ));
    }
    Ok(out.decide(
        with_retry_after == limited,
        format!("{limited} requests limited, each with Retry-After"),
        format!(
            "{} of {limited} 429 answers lack Retry-After",
            limited - with_retry_after
        ),
    ))
}

/// OPS-1: liveness and readiness.
pub async fn health(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let Some(admin) = &ctx.target.admin_url else {
        return Ok(out.conclude(Verdict::NotChecked, "no admin listener given"));
    };
    let mut bad = Vec::new();
    for p in ["/healthz", "/readyz"] {
        let a = ctx.http.admin(&format!("{admin}{p}"), "GET", None).await?;
        out.log(format!("{p} → {}", a.status));
        if a.status != 200 {
            bad.push(format!("{p} {}", a.status));
        }
    }
    Ok(out.decide(
        bad.is_empty(),
        "/healthz and /readyz answer 200",
        bad.join(", "),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_parser_accepts_prometheus_and_rejects_junk() {
        let text = "# HELP x y\n# TYPE x counter\nx_total{a=\"b\\\"}\",c=\"d\"} 3\nup 1 1700000000\nh_bucket{le=\"+Inf\"} +Inf\n";
        assert_eq!(parse_exposition(text), (3, vec![]));
        assert_eq!(parse_exposition("x{a=\"b\" 3\n").1.len(), 1);
        assert_eq!(parse_exposition("1x 3\n").1.len(), 1);
    }
}
