//! WIN-1..5: window, not store — content is never cacheable (no answer lacks `no-store`), and no
//! canary, plain or encoded, is anywhere the gateway wrote: data directory, logs, audit trail,
//! temporary directory, metrics, or any file it holds open while a slow client reads.

use std::time::Duration;

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
    let tmp = ctx.target.work_dir.join("gateway-tmp");
    for path in ctx
        .target
        .log_file
        .iter()
        .chain(ctx.target.audit_file.iter())
        .chain(Some(&tmp).filter(|t| t.exists()))
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

/// WIN-3: every answer of the operator API the run saw — errors included — carries `no-store`.
/// Evidence is required: at least one success and errors of three kinds must have been seen.
pub async fn no_store_every_answer(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let seen = ctx.http.seen();
    let mut statuses: Vec<u16> = seen.iter().map(|s| s.status).collect();
    statuses.sort_unstable();
    statuses.dedup();
    out.log(format!(
        "{} answers seen, statuses {statuses:?}",
        seen.len()
    ));
    let errors = statuses.iter().filter(|s| **s >= 400).count();
    if !statuses.iter().any(|s| (200..300).contains(s)) || errors < 3 {
        return Ok(out.fail(format!(
            "too little evidence: statuses {statuses:?} (a success and three kinds of error are needed)"
        )));
    }
    let mut bad: Vec<String> = seen
        .iter()
        .filter(|s| {
            !s.cache_control.as_deref().is_some_and(|cc| {
                cc.split(',')
                    .any(|d| d.trim().eq_ignore_ascii_case("no-store"))
            })
        })
        .map(|s| format!("{} {} → {}", s.method, s.path, s.status))
        .collect();
    let total = bad.len();
    bad.truncate(5);
    Ok(out.decide(
        total == 0,
        format!(
            "all {} answers ({} kinds of error among them) carry no-store",
            seen.len(),
            errors
        ),
        format!(
            "{total} answer(s) without no-store, e.g. {}",
            bad.join("; ")
        ),
    ))
}

/// The needles of the content scans: the canaries, plainly and (when `encoded`) in hex and
/// base64 at every alignment.
fn content_needles(ctx: &Ctx, encoded: bool) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for (i, c) in ctx.canaries().into_iter().enumerate() {
        let who = if i == 0 {
            "the suite's"
        } else {
            "the backend's"
        };
        if encoded {
            for (form, text) in scan::encoded_forms(&c) {
                v.push((format!("{who} canary, {form}-encoded"), text));
            }
        } else {
            v.push((format!("{who} canary"), c));
        }
    }
    v
}

/// Where the gateway may have written: data directory, log, audit trail, its temporary directory.
fn written_places(ctx: &Ctx) -> Vec<std::path::PathBuf> {
    let mut v = vec![ctx.target.data_dir.clone()];
    v.extend(ctx.target.log_file.clone());
    v.extend(ctx.target.audit_file.clone());
    let tmp = ctx.target.work_dir.join("gateway-tmp");
    if tmp.exists() {
        v.push(tmp);
    }
    v
}

/// WIN-5: no content in an encoded form (hex, base64) anywhere the gateway wrote.
pub async fn no_encoded_canary(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let needles = content_needles(ctx, true);
    let mut findings = Vec::new();
    let mut files = 0;
    for place in written_places(ctx) {
        let (n, f) = scan::scan(&place, &needles);
        files += n;
        findings.extend(
            f.into_iter()
                .map(|f| format!("{} in {}", f.label, f.path.display())),
        );
    }
    if let Some(m) = super::trace::fetch_metrics(ctx).await? {
        findings.extend(
            scan::scan_bytes(m.as_bytes(), &needles)
                .into_iter()
                .map(|l| format!("{l} in /metrics")),
        );
    }
    out.log(format!(
        "{files} files searched for {} encoded forms",
        needles.len()
    ));
    if files == 0 {
        return Ok(out.fail("no file of the gateway could be searched: no evidence"));
    }
    findings.dedup();
    Ok(out.decide(
        findings.is_empty(),
        format!("no hex- or base64-encoded canary in {files} files or the metrics"),
        findings.join("; "),
    ))
}

/// WIN-4: while a slow client is reading a large attachment, every regular file the gateway
/// process holds open — unlinked ones included — is read through `/proc/PID/fd` and searched
/// for content, plain and encoded.
pub async fn open_files(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let Some(pid) = ctx.target.pid().await else {
        return Ok(out.conclude(
            crate::outcome::Verdict::NotChecked,
            "the gateway's process is not visible to the suite (give it the same machine and user)",
        ));
    };
    let Some(_) = crate::procfs::open_files(pid) else {
        return Ok(out.conclude(
            crate::outcome::Verdict::NotChecked,
            format!("/proc/{pid}/fd cannot be read"),
        ));
    };
    let mut needles = content_needles(ctx, false);
    needles.extend(content_needles(ctx, true));
    let m = &ctx.fx.slow_big;
    let att = m.attachment.unwrap_or_default();
    let mut reader = super::iso::RawDownload::start(
        ctx,
        &ctx.fx.slow.code,
        &format!("/v1/messages/{}/attachments/{att}", m.id),
    )
    .await?;
    let got = reader
        .read_at_least(2 << 20, Duration::from_secs(20))
        .await?;
    out.log(format!("a slow client read {got} bytes, then paused"));
    let mut findings = Vec::new();
    let mut looked = 0;
    let mut unlinked = 0;
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let files = crate::procfs::open_files(pid).unwrap_or_default();
        for f in &files {
            looked += 1;
            if f.target.ends_with("(deleted)") {
                unlinked += 1;
            }
            for label in scan::scan_file(&f.handle, &needles) {
                findings.push(format!("{label} in open file {}", f.target));
            }
        }
        out.log(format!(
            "round {}: {} open regular files",
            round + 1,
            files.len()
        ));
        // A little more, so a spill written as the stream goes is open now.
        let _ = reader.read_at_least(1 << 20, Duration::from_secs(10)).await;
    }
    drop(reader);
    findings.sort();
    findings.dedup();
    out.log(format!(
        "{looked} open-file observations ({unlinked} of unlinked files)"
    ));
    Ok(out.decide(
        findings.is_empty(),
        format!("no content in any of the files the gateway held open during a slow download ({looked} looked at)"),
        findings.join("; "),
    ))
}
