//! OPEN-11..13, the fair-openings rules: DVV accepts the time of the read as reported, an opening
//! made under an active consent reaches DVV however the consent and DVV's availability change
//! before it is delivered, and the gateway's ledger reconciles clean with DVV's statement after
//! a crash and a revocation.
//!
//! Evidence is DVV's side (the backend's `/admin/openings` and call log). Only OPEN-13 also runs
//! the subject's `ledger reconcile` command, with the configuration the suite launched it with.

use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike as _, Utc};
use serde_json::{json, Value};

use crate::ctx::{Citizen, Ctx, Msg};
use crate::outcome::{Outcome, Verdict};

/// How long a delivery may take to show at DVV once DVV accepts again.
const DELIVERY_WAIT: Duration = Duration::from_secs(20);
/// How long to wait for the gateway's next report attempt while DVV refuses.
const ATTEMPT_WAIT: Duration = Duration::from_secs(15);
/// Longest a fault plan of these cases lasts if the suite could not lift it.
const FAULT_MS: u64 = 30_000;
/// Longest run of the subject's reconciliation command.
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long in-flight openings may keep the reconciliation from being clean.
const RECONCILE_SETTLE: Duration = Duration::from_secs(10);

/// The gateway's provider id at the backend.
fn provider(ctx: &Ctx) -> String {
    ctx.target.backend.info["providers"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// DVV's path for reports of `m`'s opening under `who`'s consent.
fn openings_path(who: &Citizen, m: &Msg) -> String {
    format!(
        "/v1/consents/{}/messages/{}/openings",
        who.consent_id.clone().unwrap_or_default(),
        m.id
    )
}

fn time_of(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Sets a fault plan on `path` (reports only) answering `status`/`reason` instead of accepting.
async fn refuse_reports(ctx: &Ctx, path: &str, answer: Option<(u16, &str)>) -> anyhow::Result<()> {
    let mut plan = json!({"durationMs": FAULT_MS, "errorRate": 1.0,
                          "paths": [path], "methods": ["POST"]});
    if let Some((status, reason)) = answer {
        plan["errorStatus"] = json!(status);
        plan["errorReason"] = json!(reason);
    }
    let a = ctx.backend("POST", "/admin/faults", Some(plan)).await?;
    anyhow::ensure!(a.status == 200, "setting the fault plan: {}", a.summary());
    Ok(())
}

async fn lift_faults(ctx: &Ctx) {
    let _ = ctx.backend("DELETE", "/admin/faults", None).await;
}

/// The report attempts DVV saw on `path` after `seq`: (status, injected fault) in order.
async fn attempts(
    ctx: &Ctx,
    seq: u64,
    path: &str,
) -> anyhow::Result<Vec<(Option<u64>, Option<String>)>> {
    Ok(ctx
        .dvv_calls(seq)
        .await?
        .into_iter()
        .filter(|c| c["path"] == path && c["method"] == "POST")
        .map(|c| (c["status"].as_u64(), c["fault"].as_str().map(str::to_owned)))
        .collect())
}

/// Waits until DVV answered a report on `path` with the injected `status`; false after `limit`.
async fn refused_with(
    ctx: &Ctx,
    seq: u64,
    path: &str,
    status: u64,
    limit: Duration,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + limit;
    loop {
        let seen = attempts(ctx, seq, path)
            .await?
            .iter()
            .any(|(s, f)| *s == Some(status) && f.is_some());
        if seen || Instant::now() > deadline {
            return Ok(seen);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// DVV's record of the opening of `message_id` once one arrives; `None` after `limit`.
async fn accepted(ctx: &Ctx, message_id: i64, limit: Duration) -> anyhow::Result<Option<Value>> {
    let deadline = Instant::now() + limit;
    loop {
        let row = ctx
            .openings()
            .await?
            .into_iter()
            .find(|o| o["messageId"].as_i64() == Some(message_id));
        if row.is_some() || Instant::now() > deadline {
            return Ok(row);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
/// Reads `m` as `who` while DVV answers every report of its opening 503, and waits until one
/// report was refused: the gateway then holds the opening and DVV does not have it yet. Answers
/// the read's interval, or the outcome to return (faults lifted) when that could not be arranged.
async fn read_while_reports_fail(
    ctx: &Ctx,
    out: Outcome,
    who: &Citizen,
    m: &Msg,
    path: &str,
    seq: u64,
) -> anyhow::Result<Result<(Outcome, (DateTime<Utc>, DateTime<Utc>)), Outcome>> {
    refuse_reports(ctx, path, None).await?;
    let interval = match read(ctx, who, m).await? {
        Ok(i) => i,
        Err(why) => {
            lift_faults(ctx).await;
            return Ok(Err(out.error(why)));
        }
    };
    if !refused_with(ctx, seq, path, 503, ATTEMPT_WAIT).await? {
        lift_faults(ctx).await;
        return Ok(Err(out.fail(format!(
            "no report of the opening reached DVV within {ATTEMPT_WAIT:?} of the read"
        ))));
    }
    Ok(Ok((out, interval)))
}

/// Reads `m` as `who`; the read's interval, or why it failed.
async fn read(
    ctx: &Ctx,
    who: &Citizen,
    m: &Msg,
) -> anyhow::Result<Result<(DateTime<Utc>, DateTime<Utc>), String>> {
    let token = ctx.token(&who.code)?;
    let before = Utc::now();
    let ans = ctx
        .call("GET", &format!("/v1/messages/{}", m.id), Some(&token))
        .await?;
    let after = Utc::now();
    if ans.status != 200 || !ans.contains(&m.body_canary()) {
        return Ok(Err(format!(
            "the message could not be read: {}",
            ans.summary()
        )));
    }
    Ok(Ok((before, after)))
}

/// Revokes `who`'s consent at DVV, as the citizen does in DVV's consent service.
async fn revoke(ctx: &Ctx, who: &Citizen) -> anyhow::Result<()> {
    let r = ctx
        .backend(
            "POST",
            "/admin/consents/revoke",
            Some(json!({"endUserId": who.code})),
        )
        .await?;
    anyhow::ensure!(r.status == 200, "revoking: {}", r.summary());
    Ok(())
}

/// What DVV's record says against the read: problems, empty when it is the read as it happened.
fn judge_row(row: &Value, read: (DateTime<Utc>, DateTime<Utc>)) -> Vec<String> {
    let skew = chrono::Duration::seconds(1);
    let mut problems = Vec::new();
    let at = time_of(&row["openedAt"]);
    match at {
        Some(at) if at >= read.0 - skew && at <= read.1 + skew => {}
        Some(at) => problems.push(format!(
            "openedAt {at} is not the time of the read ({} … {})",
            read.0, read.1
        )),
        None => problems.push("DVV's record has no readable openedAt".to_owned()),
    }
    let corroborated = time_of(&row["corroboratedOpenedAt"]);
    if corroborated.is_none() || corroborated != at {
        problems.push(format!(
            "DVV held the reported openedAt to {} (outside its release of the content and the report's arrival)",
            row["corroboratedOpenedAt"]
        ));
    }
    if time_of(&row["readAt"]).is_none() || time_of(&row["readAt"]) != corroborated {
        problems.push(format!(
            "the message's readAt ({}) is not this opening's time",
            row["readAt"]
        ));
    }
    if row["firstOpen"] != true {
        problems.push("the only opening of the message is not its first open".to_owned());
    }
    problems
}

/// OPEN-11: DVV answers the report "Opened in the future" for a while (its clock behind the
/// gateway's; temporary by the contract), then accepts it: the opening DVV records is the read
/// as reported — `openedAt` within the read, corroborated unchanged, the message read at that time
/// — and DVV never refused it on its own (as backdated or before the content's release).
pub async fn corroborated(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let (who, m) = (&ctx.fx.a, &ctx.fx.a_corroborated);
    let path = openings_path(who, m);
    let seq = ctx.last_seq().await?;
    refuse_reports(ctx, &path, Some((422, "Opened in the future"))).await?;
    let interval = match read(ctx, who, m).await? {
        Ok(i) => i,
        Err(why) => {
            lift_faults(ctx).await;
            return Ok(out.error(why));
        }
    };
    let refused = refused_with(ctx, seq, &path, 422, ATTEMPT_WAIT).await?;
    lift_faults(ctx).await;
    out.log(format!(
        "read between {} and {}; DVV answered the report 422 \"Opened in the future\": {refused}",
        interval.0, interval.1
    ));
    if !refused {
        return Ok(out.fail(format!(
            "no report of the opening reached DVV within {ATTEMPT_WAIT:?} of the read"
        )));
    }
    let Some(row) = accepted(ctx, m.id, DELIVERY_WAIT).await? else {
        return Ok(out.fail(format!(
            "the opening never reached DVV within {DELIVERY_WAIT:?} after DVV accepted reports again: a temporary refusal was taken as final"
        )));
    };
    let seen = attempts(ctx, seq, &path).await?;
    let own_refusals: Vec<String> = seen
        .iter()
        .filter(|(s, f)| f.is_none() && !matches!(s, Some(201) | Some(409)))
        .map(|(s, _)| s.map_or("no answer".to_owned(), |s| s.to_string()))
        .collect();
    out.log(format!(
        "DVV's record: openedAt {}, corroborated {}, received {}, readAt {}, firstOpen {}; {} report attempt(s)",
        row["openedAt"],
        row["corroboratedOpenedAt"],
        row["receivedAt"],
        row["readAt"],
        row["firstOpen"],
        seen.len()
    ));
    let mut problems = judge_row(&row, interval);
    if !own_refusals.is_empty() {
        problems.push(format!(
            "DVV itself refused the report ({}): not corroborated as reported",
            own_refusals.join(", ")
        ));
    }
    Ok(out.decide(
        problems.is_empty(),
        "after a temporary refusal DVV accepted the opening with the time of the read, corroborated unchanged, the message read at that time",
        problems.join("; "),
    ))
}

/// OPEN-12: open → DVV unavailable → the citizen revokes the consent → DVV answers the report
/// 403 "Consent revoked" (as a DVV without consent periods does; not a permanent refusal by the
/// contract) → DVV back: the opening, made while the consent was active, reaches DVV and is
/// accepted without any operator action — so it was neither parked nor dropped.
pub async fn revoked_before_delivery(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let out = Outcome::new();
    let (who, m) = (&ctx.fx.switching, &ctx.fx.switching_read);
    let path = openings_path(who, m);
    let seq = ctx.last_seq().await?;
    let (mut out, interval) = match read_while_reports_fail(ctx, out, who, m, &path, seq).await? {
        Ok(read) => read,
        Err(concluded) => return Ok(concluded),
    };
    revoke(ctx, who).await?;
    out.log("read; DVV unavailable (503) for the report; the citizen revoked the consent at DVV");
    refuse_reports(ctx, &path, Some((403, "Consent revoked"))).await?;
    let forbidden = refused_with(ctx, seq, &path, 403, ATTEMPT_WAIT).await?;
    lift_faults(ctx).await;
    let before_back = attempts(ctx, seq, &path).await?.len();
    out.log(format!(
        "DVV answered a later attempt 403 \"Consent revoked\": {forbidden}; DVV back after {before_back} attempt(s)"
    ));
    if !forbidden {
        return Ok(out.fail(format!(
            "the report was not attempted again within {ATTEMPT_WAIT:?} of the revocation: dropped or parked while DVV was unavailable"
        )));
    }
    let Some(row) = accepted(ctx, m.id, DELIVERY_WAIT).await? else {
        return Ok(out.fail(format!(
            "the opening made under an active consent never reached DVV within {DELIVERY_WAIT:?} after DVV accepted again: parked or dropped after \"Consent revoked\""
        )));
    };
    out.log(format!(
        "DVV accepted it: openedAt {}, corroborated {}, readAt {}, firstOpen {}",
        row["openedAt"], row["corroboratedOpenedAt"], row["readAt"], row["firstOpen"]
    ));
    let problems = judge_row(&row, interval);
    Ok(out.decide(
        problems.is_empty(),
        "the opening made before the revocation reached DVV after the outage and the 403, was accepted and set the message's readAt: nothing parked",
        problems.join("; "),
    ))
}

/// One run of the subject's `ledger reconcile --month … --format json`.
struct Reconciled {
    exit: Option<i32>,
    report: Value,
    stderr: String,
}

impl Reconciled {
    /// Opening ids listed under `key`.
    fn ids(&self, key: &str) -> Vec<String> {
        self.report[key]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|i| i["openingId"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The exit status as text.
    fn status(&self) -> String {
        self.exit
            .map_or_else(|| "killed by a signal".to_owned(), |c| c.to_string())
    }

    /// The listed discrepancies as text.
    fn listed(&self) -> String {
        let l = self.discrepancies();
        if l.is_empty() {
            "nothing".to_owned()
        } else {
            l.join(", ")
        }
    }

    /// Every listed discrepancy, in flight or not: `(list, opening id)`.
    fn discrepancies(&self) -> Vec<String> {
        ["dvvOnly", "gatewayOnly", "firstOpenDisagreements"]
            .iter()
            .flat_map(|k| self.ids(k).into_iter().map(move |id| format!("{k} {id}")))
            .collect()
    }

    /// Whether every listed discrepancy may still resolve by itself (an opening in flight).
    fn only_in_flight(&self) -> bool {
        self.report["dvvOnly"].as_array().is_none_or(Vec::is_empty)
            && self.report["firstOpenDisagreements"]
                .as_array()
                .is_none_or(Vec::is_empty)
            && self.report["gatewayOnly"]
                .as_array()
                .is_none_or(|l| l.iter().all(|i| i["gatewayState"] == "pending"))
    }
}

/// Runs the launched gateway's binary: `ledger reconcile --month MONTH --format json`.
async fn reconcile(
    bin: &std::path::Path,
    config: &std::path::Path,
    env: &[(String, String)],
    month: &str,
) -> anyhow::Result<Reconciled> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(["ledger", "reconcile", "--month", month, "--format", "json"])
        .arg("--config")
        .arg(config)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = tokio::time::timeout(RECONCILE_TIMEOUT, cmd.output())
        .await
        .map_err(|_| anyhow::anyhow!("ledger reconcile ran longer than {RECONCILE_TIMEOUT:?}"))??;
    let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    Ok(Reconciled {
        exit: output.status.code(),
        report,
        stderr: String::from_utf8_lossy(&output.stderr)
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned(),
    })
}

/// OPEN-13 (mode 1): a first read whose report DVV keeps failing, a SIGKILL, the citizen's
/// revocation, a restart, DVV back; then the gateway's own `ledger reconcile` for the month must
/// exit 0 and list no discrepancy (nothing only at DVV, nothing only in the ledger, no first-open
/// disagreement), having read DVV's whole statement of the month. A control follows: the opening
/// is deleted at DVV's side and the same command must see it (a non-zero exit naming it), or its
/// clean verdict proves nothing.
pub async fn reconciles_after_crash(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let out = Outcome::new();
    let mut guard = ctx.target.process.lock().await;
    // The command runs as the deployment does: in mode 1 with the suite's launch settings, under
    // a supervisor with the deployment's binary and configuration file.
    let (bin, config, env) = match (guard.as_ref(), ctx.target.supervised.as_ref()) {
        (Some(p), _) => (p.bin.clone(), p.config.clone(), p.env.clone()),
        (None, Some(s)) => (s.bin.clone(), s.config.clone(), Vec::new()),
        (None, None) => {
            return Ok(out.conclude(
                Verdict::NotChecked,
                "needs to SIGKILL the gateway and run its ledger command with its configuration: mode 1, or mode 2 with --supervised and --gateway-config",
            ))
        }
    };
    let (who, m) = (&ctx.fx.settling, &ctx.fx.settling_read);
    let path = openings_path(who, m);
    let seq = ctx.last_seq().await?;
    let (mut out, interval) = match read_while_reports_fail(ctx, out, who, m, &path, seq).await? {
        Ok(read) => read,
        Err(concluded) => return Ok(concluded),
    };
    match guard.as_mut() {
        Some(process) => {
            process.kill().await;
            revoke(ctx, who).await?;
            lift_faults(ctx).await;
            process.start(&ctx.http).await?;
            drop(guard);
        }
        None => {
            drop(guard);
            let killed = ctx.target.kill_supervised().await;
            let revoked = revoke(ctx, who).await;
            lift_faults(ctx).await;
            killed?;
            revoked?;
            ctx.target.wait_ready(&ctx.http).await?;
        }
    }
    out.log("read; DVV unavailable for the report; SIGKILL; the citizen revoked the consent at DVV; restarted, DVV back");
    let Some(row) = accepted(ctx, m.id, DELIVERY_WAIT).await? else {
        return Ok(out.fail(format!(
            "the opening never reached DVV within {DELIVERY_WAIT:?} of the restart"
        )));
    };
    let opening_id = row["openingId"].as_str().unwrap_or_default().to_owned();
    let problems = judge_row(&row, interval);
    if !problems.is_empty() {
        return Ok(out.fail(problems.join("; ")));
    }
    let opened = time_of(&row["openedAt"]).unwrap_or(interval.0);
    let month = format!("{:04}-{:02}", opened.year(), opened.month());
    // DVV's own count of the provider's openings of the month, before and after the command (others
    // may land meanwhile), to see that the command read DVV's whole statement.
    let provider = provider(ctx);
    let count_at_dvv = || async {
        anyhow::Ok(
            ctx.openings()
                .await?
                .iter()
                .filter(|o| o["providerId"] == provider.as_str())
                .filter(|o| {
                    time_of(&o["openedAt"])
                        .is_some_and(|t| t.year() == opened.year() && t.month() == opened.month())
                })
                .count() as u64,
        )
    };
    let at_dvv_before = count_at_dvv().await?;
    let deadline = Instant::now() + RECONCILE_SETTLE;
    let clean = loop {
        let r = reconcile(&bin, &config, &env, &month).await?;
        if (r.exit == Some(0) && r.discrepancies().is_empty())
            || !r.only_in_flight()
            || Instant::now() > deadline
        {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let at_dvv = count_at_dvv().await?;
    out.log(format!(
        "ledger reconcile --month {month}: exit {}; ledger {}, DVV statement {} (DVV holds {at_dvv}); listed: {}",
        clean.status(),
        clean.report["gatewayOpenings"],
        clean.report["dvvOpenings"],
        clean.listed()
    ));
    if clean.report.is_null() {
        return Ok(out.fail(format!(
            "ledger reconcile printed no JSON report (exit {}: {})",
            clean.status(),
            clean.stderr
        )));
    }
    let mut problems = Vec::new();
    if clean.exit != Some(0) {
        problems.push(format!("exit status {} ({})", clean.status(), clean.stderr));
    }
    let listed = clean.discrepancies();
    if !listed.is_empty() {
        problems.push(format!("discrepancies listed: {}", listed.join(", ")));
    }
    if !clean.report["dvvOpenings"]
        .as_u64()
        .is_some_and(|n| (at_dvv_before..=at_dvv).contains(&n))
    {
        problems.push(format!(
            "the command counted {} openings in DVV's statement, DVV holds {at_dvv}",
            clean.report["dvvOpenings"]
        ));
    }
    if !clean.ids("provisional").contains(&opening_id) {
        problems.push("the crashed-and-revoked opening is not in the comparison".to_owned());
    }
    if !problems.is_empty() {
        return Ok(out.fail(format!(
            "the ledger does not reconcile clean with DVV's statement after a SIGKILL and a revocation: {}",
            problems.join("; ")
        )));
    }
    // Control: a discrepancy planted at DVV's side must be seen.
    let deleted = ctx
        .backend(
            "DELETE",
            &format!("/admin/openings?providerId={provider}&openingId={opening_id}"),
            None,
        )
        .await?;
    anyhow::ensure!(
        deleted.status == 200,
        "deleting the opening at DVV: {}",
        deleted.summary()
    );
    let planted = reconcile(&bin, &config, &env, &month).await?;
    let seen =
        planted.exit.is_some_and(|c| c != 0) && planted.ids("gatewayOnly").contains(&opening_id);
    out.log(format!(
        "the opening deleted at DVV; ledger reconcile: exit {}, listed: {}",
        planted.status(),
        planted.listed()
    ));
    Ok(out.decide(
        seen,
        format!(
            "ledger reconcile --month {month} exited 0 with nothing listed ({at_dvv} openings on each side), and exited {} naming the opening deleted at DVV",
            planted.status()
        ),
        "ledger reconcile did not report an opening deleted at DVV's side: its clean verdict proves nothing",
    ))
}
