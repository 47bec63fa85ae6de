//! OPEN-10 and TRACE-5: what must be on stable storage before the first byte of an answer leaves —
//! the opening (it is money) and the access's audit line (it is evidence).
//!
//! A SIGKILL cannot show this: a write the gateway never synced survives a killed process in the
//! kernel's page cache, so `openings-crash` passes a gateway that never syncs. A power cut would
//! show it; the suite instead watches the order of the system calls from outside. It attaches
//! `strace` to the running gateway, opens its own TLS connection (so it knows the connection's
//! local port), lists the inbox over it until the trace shows that connection (strace then really
//! traces), and makes a first read of a message nobody has read. In the trace it then finds the
//! first write of any byte to that connection after the request was sent, and every `fsync`-family
//! call in between: the store's (a file in the gateway's data directory) and the audit file's sync
//! must have *completed* before that first write began.
//!
//! Needs `strace` and the right to trace the gateway (the same user, or root): otherwise NOT
//! CHECKED, which keeps a run from being CERTIFIED. On a PostgreSQL store the commit's durability
//! is the database server's and no local sync is expected: NOT CHECKED, said so.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cases::iso::{host_port, status_and_length, tls, Tls};
use crate::ctx::{Ctx, Msg};
use crate::outcome::{Outcome, Verdict};

/// The system calls that move bytes to a socket.
const WRITES: [&str; 4] = ["write", "writev", "sendto", "sendmsg"];
/// The system calls that put written data on stable storage.
const SYNCS: [&str; 5] = ["fsync", "fdatasync", "sync_file_range", "syncfs", "msync"];
/// Longest wait for strace to attach to every thread.
const ATTACH_LIMIT: Duration = Duration::from_secs(15);

/// Which durable write a case looks for before the first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Durable {
    /// The opening, in the store (a file under the data directory).
    Opening,
    /// The access's audit line, in the audit file.
    AuditLine,
}

/// OPEN-10: the opening is synced to the store before the first byte of the content leaves.
pub async fn opening_synced(ctx: &Ctx) -> anyhow::Result<Outcome> {
    synced_before_answer(ctx, &ctx.fx.a_durable, Durable::Opening).await
}

/// TRACE-5: the access's audit line is synced before the first byte of the answer leaves.
pub async fn audit_synced(ctx: &Ctx) -> anyhow::Result<Outcome> {
    if ctx.target.audit_file.is_none() {
        return Ok(Outcome::new().conclude(
            Verdict::NotApplicable,
            "the deployment has no audit file to sync",
        ));
    }
    synced_before_answer(ctx, &ctx.fx.a_audited, Durable::AuditLine).await
}

async fn synced_before_answer(ctx: &Ctx, msg: &Msg, what: Durable) -> anyhow::Result<Outcome> {
    let out = Outcome::new();
    if ctx.target.settings.store_backend != "sqlite" && what == Durable::Opening {
        return Ok(out.conclude(
            Verdict::NotChecked,
            format!(
                "the store is {}: a commit's durability is the database server's, which this case cannot observe",
                ctx.target.settings.store_backend
            ),
        ));
    }
    let Some(pid) = ctx.target.pid().await else {
        return Ok(out.conclude(
            Verdict::NotChecked,
            "the gateway's process is not visible to the suite (run the suite on its host)",
        ));
    };
    let trace_file = ctx.target.work_dir.join(format!("strace-{what:?}.txt"));
    let _ = std::fs::remove_file(&trace_file);
    let mut tracer = match Tracer::attach(pid, &trace_file).await {
        Ok(t) => t,
        Err(e) => return Ok(out.conclude(Verdict::NotChecked, format!("{e:#}"))),
    };
    let read = first_read(ctx, msg, &trace_file).await;
    tracer.detach().await;
    let (local_port, sent_at, status, released) = read?;
    let text = std::fs::read_to_string(&trace_file)
        .with_context(|| format!("reading {}", trace_file.display()))?;
    judge(
        out,
        ctx,
        &Trace::parse(&text),
        what,
        local_port,
        sent_at,
        status,
        released,
    )
}

#[allow(clippy::too_many_arguments)]
fn judge(
    mut out: Outcome,
    ctx: &Ctx,
    trace: &Trace,
    what: Durable,
    local_port: u16,
    sent_at: f64,
    status: u16,
    released: bool,
) -> anyhow::Result<Outcome> {
    out.log(format!(
        "first read over the suite's own connection (local port {local_port}) at {sent_at:.6} → {status}, content released: {released}; {} system calls traced, {} writes to that connection",
        trace.calls.len(),
        trace.calls.iter().filter(|c| c.fd.contains(&format!(":{local_port}]"))).count()
    ));
    if status != 200 || !released {
        return Ok(out.error("the control failed: the first read did not release the message"));
    }
    let socket = format!(":{local_port}]");
    let Some(first_byte) = trace
        .calls
        .iter()
        .filter(|c| c.entered >= sent_at && WRITES.contains(&c.name.as_str()))
        .find(|c| c.fd.contains("TCP") && c.fd.contains(&socket))
    else {
        // Evidence missing is a failure, never a pass.
        return Ok(out.fail(
            "no write to the suite's connection appears in the trace: the order cannot be shown",
        ));
    };
    let target: Box<dyn Fn(&str) -> bool> = match what {
        Durable::Opening => {
            // The data directory may also hold the audit file (and its rotations): those syncs
            // are the audit line's, not the opening's.
            let dir = canonical(&ctx.target.data_dir);
            let audit = ctx
                .target
                .audit_file
                .as_deref()
                .map(canonical)
                .and_then(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()));
            Box::new(move |p: &str| {
                let path = Path::new(p);
                let audit_file = match (&audit, path.file_name()) {
                    (Some(a), Some(n)) => n.to_string_lossy().starts_with(a.as_str()),
                    _ => false,
                };
                path.starts_with(&dir) && !audit_file
            })
        }
        Durable::AuditLine => {
            let file = ctx.target.audit_file.as_deref().map(canonical);
            Box::new(move |p: &str| file.as_deref().is_some_and(|f| Path::new(p) == f))
        }
    };
    let syncs: Vec<&Call> = trace
        .calls
        .iter()
        .filter(|c| c.entered >= sent_at && SYNCS.contains(&c.name.as_str()))
        .collect();
    let ms = |t: f64| (t - sent_at) * 1000.0;
    for s in &syncs {
        out.log(format!(
            "{} on {} at +{:.3} ms, done at +{:.3} ms",
            s.name,
            s.path(),
            ms(s.entered),
            s.completed.map(ms).unwrap_or(f64::NAN)
        ));
    }
    out.log(format!(
        "first byte to the connection: {} at +{:.3} ms",
        first_byte.name,
        ms(first_byte.entered)
    ));
    let before = syncs
        .iter()
        .filter(|s| target(s.path()))
        .find(|s| s.completed.is_some_and(|done| done <= first_byte.entered));
    let what_text = match what {
        Durable::Opening => "the store's sync (the opening)",
        Durable::AuditLine => "the audit file's sync (the access's line)",
    };
    Ok(match before {
        Some(s) => out.pass(format!(
            "{what_text} ({} on {}) completed at +{:.3} ms, before the first byte at +{:.3} ms",
            s.name,
            s.path(),
            s.completed.map(ms).unwrap_or(f64::NAN),
            ms(first_byte.entered)
        )),
        None => out.fail(format!(
            "no completed {what_text} before the first byte left at +{:.3} ms ({} sync call(s) traced after the request)",
            ms(first_byte.entered),
            syncs.len()
        )),
    })
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Over a fresh connection of the suite's own: first a list of the inbox (no opening), until the
/// trace shows strace sees that connection's writes; then `GET /v1/messages/{id}`. Answers the
/// connection's local port, when the read was sent (seconds since the epoch), its status and
/// whether the body carried the message's canary.
async fn first_read(
    ctx: &Ctx,
    msg: &Msg,
    trace_file: &Path,
) -> anyhow::Result<(u16, f64, u16, bool)> {
    let token = ctx.token(&ctx.fx.a.code)?;
    let mut stream = tls(ctx, b"http/1.1").await?;
    let local_port = stream.get_ref().0.local_addr()?.port();
    let host = host_port(&ctx.target.gateway_url);
    let request = |path: String, close: bool| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: {}\r\n\r\n",
            if close { "close" } else { "keep-alive" }
        )
    };
    // Tracing starts some time after strace has seized the threads: the read is sent only once
    // the warm-up's answer on this very connection shows in the trace.
    stream
        .write_all(request("/v1/messages?limit=1".to_owned(), false).as_bytes())
        .await?;
    let (warm_status, _) = read_answer(&mut stream).await?;
    anyhow::ensure!(
        warm_status == 200,
        "the warm-up list answered {warm_status}"
    );
    let socket = format!(":{local_port}]");
    let seen = Instant::now();
    while !std::fs::read_to_string(trace_file)
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains(&socket))
    {
        anyhow::ensure!(
            seen.elapsed() < ATTACH_LIMIT,
            "strace did not show the warm-up's writes within {ATTACH_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent_at = epoch_secs();
    stream
        .write_all(request(format!("/v1/messages/{}", msg.id), true).as_bytes())
        .await?;
    let (status, body) = read_answer(&mut stream).await?;
    let released = String::from_utf8_lossy(&body).contains(&msg.body_canary());
    Ok((local_port, sent_at, status, released))
}

/// Reads one HTTP/1.1 answer (`Content-Length` or chunked): its status and body bytes (chunk
/// framing left in; only searched for a canary).
async fn read_answer(stream: &mut Tls) -> anyhow::Result<(u16, Vec<u8>)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
        if let Some(end) = head_end {
            let (status, length) = status_and_length(&buf[..end]);
            let body = &buf[end..];
            let complete = match length {
                Some(n) => body.len() as u64 >= n,
                None => body.ends_with(b"0\r\n\r\n"),
            };
            if complete {
                return Ok((status, body.to_vec()));
            }
        }
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => anyhow::bail!("no complete answer within 20 s"),
            Ok(Ok(n)) => n,
            // A peer that closes without close_notify still delivered what it sent.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Ok(Err(e)) => return Err(e.into()),
        };
        anyhow::ensure!(
            n > 0,
            "the connection closed before the answer was complete"
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn epoch_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `strace` attached to every thread of the gateway.
struct Tracer {
    child: tokio::process::Child,
}

impl Tracer {
    async fn attach(pid: u32, out: &Path) -> anyhow::Result<Self> {
        let calls = format!("trace={},{}", WRITES.join(","), SYNCS.join(","));
        let child = tokio::process::Command::new("strace")
            .args(["-f", "-qq", "-ttt", "-T", "-yy", "-e", &calls, "-o"])
            .arg(out)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("strace is not available (install it to check durability order)")?;
        let mut tracer = Tracer { child };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = tracer.child.try_wait() {
                anyhow::bail!("strace could not attach to process {pid} ({status}): tracing needs the gateway's user or root");
            }
            if all_threads_traced(pid) {
                return Ok(tracer);
            }
            if start.elapsed() > ATTACH_LIMIT {
                tracer.detach().await;
                anyhow::bail!("strace did not attach to every thread of process {pid} within {ATTACH_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGINT: strace detaches and leaves the gateway running; a SIGKILL after 10 s otherwise.
    async fn detach(&mut self) {
        if let Some(id) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &id.to_string()])
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Whether every thread of `pid` has a tracer.
fn all_threads_traced(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        any = true;
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let traced = status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .and_then(|v| v.trim().parse::<u32>().ok())
            .is_some_and(|t| t != 0);
        if !traced {
            return false;
        }
    }
    any
}

/// One traced system call: when it was entered and (when known) completed, and its first
/// argument's file as strace shows it (`7</path>` or `9<TCP:[a:p->b:q]>`).
#[derive(Clone, Debug, PartialEq)]
struct Call {
    name: String,
    fd: String,
    entered: f64,
    completed: Option<f64>,
}

impl Call {
    /// The file path inside the fd annotation (`/path` of `7</path>`).
    fn path(&self) -> &str {
        self.fd
            .split_once('<')
            .map(|(_, p)| p.trim_end_matches('>'))
            .unwrap_or("")
    }
}

/// The calls of an `strace -f -ttt -T -yy` output, unfinished calls joined with their resumption.
#[derive(Debug, Default)]
struct Trace {
    calls: Vec<Call>,
}

impl Trace {
    fn parse(text: &str) -> Self {
        let mut calls: Vec<Call> = Vec::new();
        // Per thread: the index of its call that is still unfinished.
        let mut open: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for line in text.lines() {
            // `PID TIME CALL`, the PID padded to five columns (`7703  1796…`).
            let Some((tid, rest)) = line.trim_start().split_once(char::is_whitespace) else {
                continue;
            };
            let Some((ts, rest)) = rest.trim_start().split_once(char::is_whitespace) else {
                continue;
            };
            let Ok(at) = ts.parse::<f64>() else { continue };
            let rest = rest.trim_start();
            if let Some(resumed) = rest.strip_prefix("<... ") {
                if let Some(i) = open.remove(tid) {
                    let name = resumed.split_whitespace().next().unwrap_or("");
                    if calls[i].name == name {
                        calls[i].completed = Some(at);
                    }
                }
                continue;
            }
            let Some((name, args)) = rest.split_once('(') else {
                continue;
            };
            let fd = fd_annotation(args).unwrap_or_default();
            let unfinished = rest.ends_with("<unfinished ...>");
            let completed = if unfinished {
                None
            } else {
                Some(at + duration(rest))
            };
            calls.push(Call {
                name: name.to_owned(),
                fd,
                entered: at,
                completed,
            });
            if unfinished {
                open.insert(tid.to_owned(), calls.len() - 1);
            }
        }
        Self { calls }
    }
}

/// The first argument's annotation, `7</path>` or `9<TCP:[a:p->b:q]>`: up to the `>` that ends
/// the argument (the one in `->` does not).
fn fd_annotation(args: &str) -> Option<String> {
    let bytes = args.as_bytes();
    let open = args.find('<')?;
    let close = (open..bytes.len()).find(|&i| {
        bytes[i] == b'>' && matches!(bytes.get(i + 1), None | Some(b',' | b')' | b' '))
    })?;
    Some(args[..=close].to_owned())
}

/// The `<0.000123>` duration at the end of a completed call (0 when absent).
fn duration(rest: &str) -> f64 {
    rest.rsplit_once('<')
        .and_then(|(_, d)| d.trim_end_matches('>').parse::<f64>().ok())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
101 1700000000.100000 writev(9<TCP:[127.0.0.1:8443->127.0.0.1:50000]>, [{iov_base=\"x\", iov_len=1}], 1) = 1 <0.000010>
102 1700000000.200000 fdatasync(7</data/ikkuna.db-wal> <unfinished ...>
101 1700000000.200500 write(11</data/audit.jsonl>, \"{}\", 2) = 2 <0.000005>
102 1700000000.204000 <... fdatasync resumed>) = 0 <0.004000>
101 1700000000.205000 write(9<TCP:[127.0.0.1:8443->127.0.0.1:50000]>, \"\\27\\3\\3\", 3) = 3 <0.000020>
";

    #[test]
    fn parses_complete_unfinished_and_resumed_calls() {
        let t = Trace::parse(SAMPLE);
        assert_eq!(t.calls.len(), 4);
        assert_eq!(t.calls[1].name, "fdatasync");
        assert_eq!(t.calls[1].path(), "/data/ikkuna.db-wal");
        assert!((t.calls[1].completed.unwrap_or(0.0) - 1700000000.204).abs() < 1e-6);
        assert!(t.calls[3].fd.contains(":50000]"));
        assert!((t.calls[0].completed.unwrap_or(0.0) - 1700000000.10001).abs() < 1e-6);
    }

    #[test]
    fn a_resumption_of_another_call_does_not_complete_the_open_one() {
        let t = Trace::parse(
            "5 10.0 fsync(3</d/x> <unfinished ...>\n5 11.0 <... write resumed>) = 1 <1.0>\n",
        );
        assert_eq!(t.calls[0].completed, None);
    }

    #[test]
    fn short_process_ids_are_padded_and_still_parsed() {
        let t = Trace::parse("7703  10.5 fsync(3</d/x>) = 0 <0.25>\n");
        assert_eq!(t.calls.len(), 1);
        assert_eq!(t.calls[0].completed, Some(10.75));
    }
}
