//! OPEN-9: the store cannot write, so the gateway cannot record an opening durably: a first read
//! must be refused (503 with a reason), release no content, and report no opening to DVV.
//!
//! A second instance of the launched (mode 1) or supervised (mode 2 with `--supervised`) gateway —
//! same binary, configuration and DVV backend — gets its store (SQLite) on a small tmpfs the suite
//! mounts and then fills to the last byte, as `tests/fail_closed.rs` does (`chmod` would not stop a
//! gateway running as root). Mounting needs root or CAP_SYS_ADMIN: without it, and in mode 2
//! without a supervisor, the case is NOT CHECKED.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cases::transport::{free_port, set_private};
use crate::ctx::Ctx;
use crate::outcome::{Outcome, Verdict};
use crate::target::wait_until;

/// Size of the tmpfs the instance's store lives on.
const DISK_SIZE: &str = "8m";
/// How long an opening may take to show at DVV (none should).
const SETTLE: Duration = Duration::from_secs(4);

/// A tmpfs mounted at a directory, unmounted (lazily) on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path) -> anyhow::Result<SmallDisk> {
        std::fs::create_dir_all(at)?;
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={DISK_SIZE},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(
            status.success(),
            "mounting a tmpfs failed (needs root or CAP_SYS_ADMIN)"
        );
        Ok(SmallDisk(at.to_path_buf()))
    }

    /// Writes a ballast file until the disk refuses even one more byte; returns its size.
    fn fill(&self) -> anyhow::Result<u64> {
        let mut file = std::fs::File::create(self.0.join("ballast"))?;
        let mut written = 0u64;
        for chunk in [64 * 1024, 4096, 512, 1] {
            let block = vec![0x5au8; chunk];
            while file.write_all(&block).and_then(|()| file.flush()).is_ok() {
                written += chunk as u64;
            }
        }
        let _ = file.sync_all();
        Ok(written)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// OPEN-9: a first read while the store cannot write is refused with a reason and records nothing.
pub async fn store_full(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let out = Outcome::new();
    let guard = ctx.target.process.lock().await;
    let template;
    let process = match (guard.as_ref(), &ctx.target.supervised) {
        (Some(p), _) => p,
        (None, Some(s)) => {
            // Mode 2 under a supervisor: a second instance of the deployment's binary and
            // configuration, its store (SQLite) moved onto the small disk; the deployment's own
            // store is never touched.
            template = s.second_instance(ctx.target.work_dir.join("store-full-gateway.log"));
            &template
        }
        (None, None) => {
            return Ok(out.conclude(
                Verdict::NotChecked,
                "the suite controls neither the gateway's process nor its disk in this mode (give --supervised and --gateway-config, or use mode 1)",
            ))
        }
    };
    let dir = ctx.target.work_dir.join("store-full");
    let _ = std::fs::remove_dir_all(&dir);
    let disk = match SmallDisk::mount(&dir.join("disk")) {
        Ok(d) => d,
        Err(e) => return Ok(out.conclude(Verdict::NotChecked, format!("{e:#}"))),
    };
    let data = disk.0.join("data");
    std::fs::create_dir_all(&data)?;
    set_private(&data);
    let (listen, admin) = (free_port()?, free_port()?);
    let path = |p: &Path| p.display().to_string();
    let mut env = vec![
        (
            "IKKUNA_SERVER_LISTEN".to_owned(),
            format!("127.0.0.1:{listen}"),
        ),
        (
            "IKKUNA_ADMIN_LISTEN".to_owned(),
            format!("127.0.0.1:{admin}"),
        ),
        ("IKKUNA_STORE_BACKEND".to_owned(), "sqlite".to_owned()),
        ("IKKUNA_STORE_DATA_DIR".to_owned(), path(&data)),
    ];
    if ctx.target.audit_file.is_some() {
        // Its own audit file, off the small disk, so the certified chain is not interleaved.
        env.push((
            "IKKUNA_AUDIT_FILE".to_owned(),
            path(&dir.join("audit.jsonl")),
        ));
    }
    let log = dir.join("gateway.log");
    let mut child = Some(process.spawn(&env, &log)?);
    let result = run(ctx, out, &disk, listen, admin, &mut child).await;
    if let Some(mut c) = child.take() {
        let _ = c.kill().await;
        let _ = c.wait().await;
    }
    drop(disk);
    result
}

async fn run(
    ctx: &Ctx,
    mut out: Outcome,
    disk: &SmallDisk,
    listen: u16,
    admin: u16,
    child: &mut Option<tokio::process::Child>,
) -> anyhow::Result<Outcome> {
    wait_until(
        &ctx.http,
        &format!("http://127.0.0.1:{admin}/healthz"),
        Duration::from_secs(20),
        child,
    )
    .await?;
    let token = ctx.token(&ctx.fx.a.code)?;
    let m = &ctx.fx.a_store_full;
    let get = |p: String| {
        let token = token.clone();
        async move {
            // Not through `Http::gateway`: this instance is not the certified gateway.
            ctx.http
                .request(
                    "GET",
                    &format!("https://127.0.0.1:{listen}{p}"),
                    &[("authorization".to_owned(), format!("Bearer {token}"))],
                    None,
                )
                .await
        }
    };
    // Control: the instance serves before its disk fills.
    let list = get("/v1/messages?limit=5".to_owned()).await?;
    out.log(format!(
        "control: inbox list before the disk fills → {}",
        list.summary()
    ));
    if list.status != 200 {
        return Ok(out.error("the instance on the small disk did not serve even a list"));
    }
    let ballast = disk.fill()?;
    out.log(format!(
        "the store's {DISK_SIZE} tmpfs filled to the last byte ({ballast} bytes of ballast)"
    ));
    let read = get(format!("/v1/messages/{}", m.id)).await?;
    out.log(format!("first read of a message → {}", read.summary()));
    let reason = read.json()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let released = read.contains(&m.body_canary());
    tokio::time::sleep(SETTLE).await;
    let openings = ctx
        .openings()
        .await?
        .into_iter()
        .filter(|o| o["messageId"].as_i64() == Some(m.id))
        .count();
    out.log(format!("openings DVV recorded for it: {openings}"));
    let mut problems = Vec::new();
    if read.status != 503 {
        problems.push(format!("answered {} instead of 503", read.status));
    }
    if reason.is_empty() {
        problems.push("the answer carries no reason".to_owned());
    }
    if released {
        problems.push("the body's canary was released".to_owned());
    }
    if openings > 0 {
        problems.push(format!(
            "{openings} opening(s) reported although none could be recorded durably"
        ));
    }
    Ok(out.decide(
        problems.is_empty(),
        format!("a first read on a full store answered 503 ({reason}), released no content and reported no opening"),
        problems.join("; "),
    ))
}
