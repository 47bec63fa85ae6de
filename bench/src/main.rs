//! `ikkuna-bench`: the gateway beside nginx (a plain TLS reverse proxy) and the sandbox DVV
//! called directly, in one run, interleaved; writes the table to `BENCHMARKS.md`.
//!
//! `cargo run --release -p ikkuna-bench` runs everything (about 15 minutes on 2 cores);
//! `--smoke` runs a few seconds to keep the command working; `--only consent-memory` and
//! `--only outbox` run the library measurements alone; `--only instructions` counts the
//! instructions per request of W1 and W2 (gateway and nginx under valgrind's callgrind).

mod client;
mod extras;
mod gateway;
mod instructions;
mod load;
mod nginx;
mod procs;
mod report;
mod run;
mod setup;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};

/// Which parts to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Only {
    /// The side-by-side proxy workloads (W1–W4).
    Proxies,
    /// Memory of cached consents.
    ConsentMemory,
    /// Durable first openings straight into the outbox.
    Outbox,
    /// Instructions per request of W1 and W2, gateway and nginx under valgrind's callgrind.
    Instructions,
}

/// Benchmarks the Ikkuna gateway beside nginx and the sandbox DVV.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A few seconds in all: tiny loads, one round, no 1 GiB attachment, nginx only if present.
    #[arg(long)]
    smoke: bool,
    /// Rounds of every workload (default 3; smoke 1).
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds per measurement (default 8; smoke 0.4).
    #[arg(long)]
    seconds: Option<f64>,
    /// Connections for the small workloads (default 64; smoke 4).
    #[arg(long)]
    connections: Option<usize>,
    /// Run only these parts (repeatable); default all.
    #[arg(long, value_enum)]
    only: Vec<Only>,
    /// Cached consents to measure (default 1 000 000; smoke 10 000).
    #[arg(long)]
    consents: Option<usize>,
    /// Only workloads whose name starts with this (repeatable), e.g. `--workload W2`; measures
    /// only the proxy workloads unless `--only` says otherwise.
    #[arg(long = "workload")]
    workloads: Vec<String>,
    /// Measure this gateway binary instead of building the workspace's `ikkuna`.
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// Leave out the 1 GiB attachment.
    #[arg(long)]
    skip_1gib: bool,
    /// Do not measure nginx.
    #[arg(long)]
    no_nginx: bool,
    /// Never install nginx, even when missing.
    #[arg(long)]
    no_install: bool,
    /// Requests counted per workload and target under callgrind (default 2000; smoke 50).
    #[arg(long)]
    count_requests: Option<usize>,
    /// Where the callgrind dumps are kept (default `target/instructions`).
    #[arg(long)]
    profile_dir: Option<PathBuf>,
    /// Where to write the report (default `BENCHMARKS.md` for a full run; a smoke or partial run
    /// writes none unless given).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Args {
    /// Whether this run measures every part the published table holds: only such a run may
    /// replace BENCHMARKS.md's generated section by default, so a run of one workload (or
    /// without nginx, or without the 1 GiB attachment) cannot leave the published table half
    /// empty by accident.
    fn is_full(&self) -> bool {
        !self.smoke
            && self.only.is_empty()
            && self.workloads.is_empty()
            && !self.skip_1gib
            && !self.no_nginx
    }

    /// Whether this run measures `part`: every part by default, the named ones with `--only`,
    /// and only the proxy workloads when `--workload` picks some of them.
    fn wants(&self, part: Only) -> bool {
        if self.only.is_empty() {
            self.workloads.is_empty() || part == Only::Proxies
        } else {
            self.only.contains(&part)
        }
    }

    /// The file the report goes into: `--out`, else BENCHMARKS.md after a full run, else none.
    fn report_file(&self) -> Option<PathBuf> {
        match &self.out {
            Some(path) => Some(path.clone()),
            None if self.is_full() => Some(run::default_report()),
            None => None,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let sandbox_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sandbox")
        .enable_all()
        .build()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("loadgen")
        .enable_all()
        .build()?;
    let result = rt.block_on(bench(args, sandbox_rt.handle()));
    rt.shutdown_timeout(Duration::from_secs(5));
    sandbox_rt.shutdown_timeout(Duration::from_secs(5));
    result
}

async fn bench(args: Args, sandbox_rt: &tokio::runtime::Handle) -> anyhow::Result<()> {
    let smoke = args.smoke;
    let mut samples = Vec::new();
    let mut facts = machine_facts();
    let mut notes = Vec::new();
    let plan = run::Plan {
        smoke,
        rounds: args.rounds.unwrap_or(if smoke { 1 } else { 3 }).max(1),
        duration: Duration::from_secs_f64(args.seconds.unwrap_or(if smoke { 0.4 } else { 8.0 })),
        connections: args
            .connections
            .unwrap_or(if smoke { 4 } else { 64 })
            .max(1),
        one_gib: !smoke && !args.skip_1gib,
        w4_per_round: if smoke { 200 } else { 25_000 },
        install: !smoke && !args.no_install,
        with_nginx: !args.no_nginx,
        workloads: args.workloads.clone(),
        gateway_bin: args.gateway_bin.clone(),
    };
    facts.push(("load average at start".to_owned(), load_average()));
    facts.push((
        "settings".to_owned(),
        format!(
            "{} round(s), {:.1} s per measurement, {} connections (W3 1 MiB: {}, 1 GiB: 2, W4: {}), \
             fixed rate = {:.0}% of the slower proxy's saturation rate",
            plan.rounds,
            plan.duration.as_secs_f64(),
            plan.connections,
            (plan.connections / 4).max(2),
            (plan.connections * 2).max(4),
            50.0
        ),
    ));
    if args.wants(Only::Proxies) {
        let finished = run::run(&plan, sandbox_rt).await?;
        samples = finished.samples;
        facts.extend(finished.facts);
        notes.extend(finished.notes);
    }
    let mut instructions = Vec::new();
    // Minutes under valgrind: in smoke mode only when asked for by name.
    let count_instructions = if smoke {
        args.only.contains(&Only::Instructions)
    } else {
        args.wants(Only::Instructions)
    };
    if count_instructions {
        if instructions::available() {
            let nginx_bin = if plan.with_nginx {
                let install = plan.install;
                tokio::task::spawn_blocking(move || nginx::find_or_install(install)).await??
            } else {
                None
            };
            let count = instructions::CountPlan {
                requests: args.count_requests.unwrap_or(if smoke { 50 } else { 2000 }),
                warmup: if smoke { 64 } else { 400 },
                connections: if smoke { 4 } else { 16 },
                gateway_bin: args.gateway_bin.clone(),
                profile_dir: args.profile_dir.clone().unwrap_or_else(|| {
                    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                        .join("..")
                        .join("target")
                        .join("instructions")
                }),
            };
            instructions = instructions::run(&count, nginx_bin.as_deref(), sandbox_rt).await?;
            facts.push((
                "instruction count".to_owned(),
                format!(
                    "valgrind --tool=callgrind, {} requests per workload and target after {} warm-up requests, {} connections, closed loop; nginx as one process (master_process off)",
                    count.requests, count.warmup, count.connections
                ),
            ));
        } else {
            notes.push(
                "valgrind was not found: instructions per request were not counted.".to_owned(),
            );
        }
    }
    let mut outbox = Vec::new();
    if args.wants(Only::Outbox) {
        let n = if smoke { 500 } else { 50_000 };
        for concurrency in [1usize, 64, 512] {
            let count = if concurrency == 1 { n / 50 } else { n };
            let rate = extras::outbox_rate(count, concurrency).await?;
            eprintln!(
                "outbox: {concurrency} recorders: {:.0} openings/s",
                rate.per_sec
            );
            outbox.push(rate);
        }
    }
    let consent = if args.wants(Only::ConsentMemory) {
        let entries = args
            .consents
            .unwrap_or(if smoke { 10_000 } else { 1_000_000 });
        let m = extras::consent_memory(entries).await?;
        eprintln!(
            "consent cache: {} entries, {:.1} MiB ({:.0} B each)",
            m.entries,
            m.bytes as f64 / 1048576.0,
            m.per_entry()
        );
        Some(m)
    } else {
        None
    };
    facts.push(("load average at end".to_owned(), load_average()));
    let rows = report::rows(&samples);
    let text = report::markdown(
        &rows,
        &report::Context {
            facts,
            notes,
            consent,
            outbox,
            instructions,
        },
    );
    println!("{text}");
    match args.report_file() {
        Some(path) => {
            report::write_into(&path, &text)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("report written to {}", path.display());
        }
        None if !smoke => {
            eprintln!(
                "a partial run: BENCHMARKS.md left as it is (give --out FILE to keep this report)"
            );
        }
        None => {}
    }
    Ok(())
}

/// `/proc/loadavg`'s 1, 5 and 15 minute figures: other work on the machine shows here.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The machine and the versions, for the report.
fn machine_facts() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown".to_owned(), |s| s.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let os = read("/etc/os-release")
        .lines()
        .find(|l| l.starts_with("PRETTY_NAME="))
        .map_or("unknown".to_owned(), |l| {
            l.trim_start_matches("PRETTY_NAME=")
                .trim_matches('"')
                .to_owned()
        });
    let command = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".to_owned())
    };
    let commit = command(
        "git",
        &[
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    );
    vec![
        ("date".to_owned(), chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string()),
        ("CPU".to_owned(), format!("{cpu}, {cores} cores available")),
        ("memory".to_owned(), format!("{:.1} GiB", mem_kib as f64 / 1048576.0)),
        ("OS / kernel".to_owned(), format!("{os} / {}", read("/proc/sys/kernel/osrelease").trim())),
        ("rustc".to_owned(), command("rustc", &["--version"])),
        (
            "gateway".to_owned(),
            format!(
                "ikkuna {} (commit {commit}, plus the working tree), {} build",
                env!("CARGO_PKG_VERSION"),
                if cfg!(debug_assertions) { "dev" } else { "release" }
            ),
        ),
        (
            "load generator".to_owned(),
            "ikkuna-bench's own (Rust, hyper 1 + rustls, HTTP/1.1 keep-alive; closed loop and wrk2-style open loop), in the same process as the sandbox, on its own runtime".to_owned(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        let mut argv = vec!["ikkuna-bench"];
        argv.extend_from_slice(list);
        Args::try_parse_from(argv).expect("valid arguments")
    }

    #[test]
    fn only_a_full_run_rewrites_the_published_table_by_default() {
        assert_eq!(args(&[]).report_file(), Some(run::default_report()));
        assert_eq!(
            args(&["--gateway-bin", "x", "--rounds", "1"]).report_file(),
            Some(run::default_report()),
            "another build or other settings still measure every part"
        );
        for partial in [
            &["--smoke"][..],
            &["--workload", "W3 attachment 1 MiB"],
            &["--only", "instructions"],
            &["--no-nginx"],
            &["--skip-1gib"],
        ] {
            assert_eq!(args(partial).report_file(), None, "{partial:?}");
        }
        assert_eq!(
            args(&["--workload", "W2", "--out", "/tmp/w2.md"]).report_file(),
            Some(PathBuf::from("/tmp/w2.md"))
        );
    }

    #[test]
    fn a_workload_filter_measures_only_the_proxy_workloads() {
        let w2 = args(&["--workload", "W2"]);
        assert!(w2.wants(Only::Proxies));
        for other in [Only::Instructions, Only::Outbox, Only::ConsentMemory] {
            assert!(!w2.wants(other), "{other:?}");
        }
        let everything = args(&[]);
        for part in [
            Only::Proxies,
            Only::Instructions,
            Only::Outbox,
            Only::ConsentMemory,
        ] {
            assert!(everything.wants(part), "{part:?}");
        }
        let named = args(&["--workload", "W1", "--only", "instructions"]);
        assert!(named.wants(Only::Instructions) && !named.wants(Only::Proxies));
    }
}
