//! WIN-1, WIN-2: window, not store — content is never cacheable, and after the whole run no
//! canary is anywhere in the gateway's data directory, logs, audit trail or metrics.

use crate::ctx::Ctx;
use crate::outcome::Outcome;
use crate::scan;

/// WIN-1: `Cache-Control: no-store` on the inbox, a message and an attachment.
pub async fn no_store(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let token = ctx.token(&ctx.fx.a.code)?;
    let m = &ctx.fx.a_normal;
    let mut paths = vec!["/v1/messages".to_owned(), format!("/v1/messages/{}", m.id)];
    if let Some(att) = m.attachment {
        paths.push(format!("/v1/messages/{}/attachments/{att}", m.id));
    }
    let mut bad = Vec::new();
    for path in &paths {
        let ans = ctx.call("GET", path, Some(&token)).await?;
        let cc = ans.header("cache-control").unwrap_or("").to_owned();
        let marked = ctx.canaries().iter().any(|c| ans.contains(c));
        out.log(format!(
            "GET {path} → {} cache-control: {cc:?}, {} bytes, carries a canary: {marked}",
            ans.status,
            ans.body.len()
        ));
        if ans.status != 200 {
            return Ok(out.error(format!("GET {path} answered {}", ans.summary())));
        }
        if !cc
            .split(',')
            .any(|d| d.trim().eq_ignore_ascii_case("no-store"))
        {
            bad.push(path.clone());
        }
    }
    Ok(out.decide(
        bad.is_empty(),
        format!("{} content responses carry no-store", paths.len()),
        format!("without no-store: {}", bad.join(", ")),
    ))
}

/// WIN-2: no canary persisted or leaked.
pub async fn no_canary(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let needles: Vec<(String, String)> = ctx
        .canaries()
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let label = if i == 0 {
                "the suite's canary"
            } else {
                "the backend's canary"
            };
            (label.to_owned(), c)
        })
        .collect();
    if ctx.target.backend.canary_prefix.is_none() {
        out.evidence(
            "the backend is not in recording mode: only the suite's own messages carry canaries",
        );
    }
    let mut findings = Vec::new();
    let (files, f) = scan::scan(&ctx.target.data_dir, &needles);
    out.log(format!("data directory: {files} files searched"));
    findings.extend(f);
    for path in ctx
        .target
        .log_file
        .iter()
        .chain(ctx.target.audit_file.iter())
    {
        let (files, f) = scan::scan(path, &needles);
        out.log(format!("{}: {files} file(s) searched", path.display()));
        findings.extend(f);
    }
    if let Some(metrics) = super::trace::fetch_metrics(ctx).await? {
        for label in scan::scan_bytes(metrics.as_bytes(), &needles) {
            findings.push(scan::Finding {
                path: "/metrics".into(),
                label,
            });
        }
        out.log("metrics exposition searched");
    }
    let list: Vec<String> = findings
        .iter()
        .map(|f| format!("{} in {}", f.label, f.path.display()))
        .collect();
    Ok(out.decide(
        list.is_empty(),
        "no canary in the data directory, logs, audit trail or metrics",
        format!("content found: {}", list.join("; ")),
    ))
}
