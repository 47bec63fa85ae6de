//! The side-by-side run: the sandbox, the gateway and nginx started once, then every workload
//! measured on every target in interleaved rounds (the target order rotates each round).

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http::{HeaderValue, Method};

use crate::client::Endpoint;
use crate::gateway::{self, Gateway};
use crate::load::{self, Paths, Spec};
use crate::nginx::{self, Nginx};
use crate::procs;
use crate::report::{Mode, Sample, Target};
use crate::setup::{self, Mail};

/// DVV bearer tokens issued by the benchmark's sandbox live this long (nginx holds one).
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);
/// Citizen assertions in each pool (used in turn, one per request).
const ASSERTION_POOL: usize = 256;
/// The fixed offered rate is this share of the slower proxy's saturation throughput.
const RATE_SHARE: f64 = 0.5;

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Plan {
    /// A few seconds in all, to keep the command working (CI).
    pub smoke: bool,
    /// Rounds of every workload.
    pub rounds: usize,
    /// Length of each measurement.
    pub duration: Duration,
    /// Connections for small answers (W1, W2).
    pub connections: usize,
    /// Whether the 1 GiB attachment is measured.
    pub one_gib: bool,
    /// Most first openings per round (W4).
    pub w4_per_round: usize,
    /// Whether nginx may be installed when missing.
    pub install: bool,
    /// Whether nginx is measured at all.
    pub with_nginx: bool,
    /// Only workloads whose name starts with one of these (all when empty), e.g. `W2`.
    pub workloads: Vec<String>,
    /// A gateway binary to measure instead of building this workspace's (to compare builds).
    pub gateway_bin: Option<PathBuf>,
}

/// What the run produced.
pub struct Finished {
    /// Every measurement.
    pub samples: Vec<Sample>,
    /// Machine and versions learned on the way.
    pub facts: Vec<(String, String)>,
    /// Parts skipped, and why.
    pub notes: Vec<String>,
}

#[derive(Clone, Copy)]
enum Kind {
    Inbox,
    Message,
    Attachment { large: bool },
    FirstOpenings,
}

struct Work {
    name: &'static str,
    kind: Kind,
    connections: usize,
    duration: Duration,
    fixed_rate: bool,
    targets: Vec<Target>,
    timeout: Duration,
}

/// Who is measured and how its cost is read.
struct Measured {
    endpoint: Endpoint,
    pids: Vec<u32>,
    sandbox_threads: bool,
}

/// Runs everything on the current runtime; the sandbox on `sandbox_rt`.
pub async fn run(plan: &Plan, sandbox_rt: &tokio::runtime::Handle) -> anyhow::Result<Finished> {
    let mut facts = Vec::new();
    let mut notes = Vec::new();
    let bin = match &plan.gateway_bin {
        Some(bin) => bin.clone(),
        None => tokio::task::spawn_blocking(gateway::binary).await??,
    };
    let dir = tempfile::Builder::new().prefix("ikkuna-bench-").tempdir()?;

    let mut options = ikkuna_sandbox::SandboxOptions::new(dir.path().join("sandbox"));
    options.token_ttl = TOKEN_TTL;
    let sandbox = sandbox_rt
        .spawn(ikkuna_sandbox::start(options))
        .await?
        .context("starting the sandbox")?;
    let info = sandbox.info();
    let provider = info
        .providers
        .first()
        .context("the sandbox has no provider")?;
    let admin = Endpoint::plain(sandbox.admin_addr())?;
    let dvv = Endpoint::tls(
        sandbox.dvv_addr(),
        &info.ca_cert,
        Some((&provider.client_cert, &provider.client_key)),
    )?;

    eprintln!("seeding benchmark mail…");
    let mail = setup::mail(&admin).await?;
    let w4_total = plan.w4_per_round * plan.rounds;
    let w4_ids = setup::many_messages(&admin, &mail.opener.id, w4_total, 16).await?;
    let token = setup::dvv_token(
        &dvv,
        &sandbox.token_url(),
        &provider.id,
        &provider.assertion_key,
    )
    .await?;
    let direct_auth = Arc::new(vec![HeaderValue::from_str(&format!("Bearer {token}"))?]);

    let config = info.gateway_config.clone();
    let gw = Gateway::start(&bin, &config, &dir.path().join("gateway.log")).await?;
    let gw_endpoint = Endpoint::tls(gateway::listen_addr(&config)?, &info.ca_cert, None)?;
    prime_openings(&gw_endpoint, sandbox.data_dir(), &mail).await?;

    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let nginx_bin = if plan.with_nginx {
        tokio::task::spawn_blocking({
            let install = plan.install;
            move || nginx::find_or_install(install)
        })
        .await??
    } else {
        None
    };
    let mut proxy = None;
    match &nginx_bin {
        Some(bin) => {
            facts.push(("nginx".to_owned(), nginx::version(bin)));
            let listen = free_port()?;
            let settings = nginx::Settings {
                listen,
                cert: &info.gateway_cert,
                key: &info.gateway_key,
                upstream: sandbox.dvv_addr(),
                ca: &info.ca_cert,
                client_cert: &provider.client_cert,
                client_key: &provider.client_key,
                token: &token,
                consent_id: &mail.reader.consent_id,
                workers,
                single_process: false,
            };
            let started = Nginx::start(bin, &dir.path().join("nginx"), &settings).await?;
            proxy = Some((started, Endpoint::tls(listen, &info.ca_cert, None)?));
        }
        None => notes.push(
            "nginx was not found (smoke mode does not install it): only the gateway and the \
             sandbox were measured."
                .to_owned(),
        ),
    }

    let direct = Measured {
        endpoint: dvv.clone(),
        pids: Vec::new(),
        sandbox_threads: true,
    };
    let ikkuna = Measured {
        endpoint: gw_endpoint.clone(),
        pids: vec![gw.pid],
        sandbox_threads: false,
    };
    let nginx_measured = proxy.as_ref().map(|(n, e)| Measured {
        endpoint: e.clone(),
        pids: n.pids(),
        sandbox_threads: false,
    });

    let mut works = works(plan, nginx_measured.is_some());
    if !plan.workloads.is_empty() {
        works.retain(|w| {
            plan.workloads
                .iter()
                .any(|p| w.name.starts_with(p.as_str()))
        });
    }
    if !plan.one_gib {
        notes.push("The 1 GiB attachment was not measured in this run.".to_owned());
    }
    let mut samples = Vec::new();
    let mut rates: Vec<Option<f64>> = vec![None; works.len()];
    let w4_paths: Arc<Vec<String>> = Arc::new(
        w4_ids
            .iter()
            .map(|id| format!("/v1/messages/{id}"))
            .collect(),
    );
    let started = Instant::now();
    for round in 0..plan.rounds {
        eprintln!("round {} of {}", round + 1, plan.rounds);
        for (wi, work) in works.iter().enumerate() {
            let mut order = work.targets.clone();
            let turns = round % order.len().max(1);
            order.rotate_left(turns);
            let mut round_sat = Vec::new();
            for fixed in [false, true] {
                if fixed && !work.fixed_rate {
                    continue;
                }
                if fixed && rates[wi].is_none() {
                    // The offered rate is set once, from the first round's saturation figures.
                    let slowest = round_sat.iter().copied().fold(f64::INFINITY, f64::min);
                    if slowest.is_finite() && slowest > 0.0 {
                        rates[wi] = Some((slowest * RATE_SHARE).max(1.0).round());
                    }
                }
                let mode = match (fixed, rates[wi]) {
                    (false, _) => Mode::Saturation,
                    (true, Some(rate)) => Mode::Rate(rate),
                    (true, None) => continue,
                };
                for &target in &order {
                    let measured = match target {
                        Target::Direct => &direct,
                        Target::Ikkuna => &ikkuna,
                        Target::Nginx => match &nginx_measured {
                            Some(m) => m,
                            None => continue,
                        },
                    };
                    let auth = match target {
                        Target::Direct => Arc::clone(&direct_auth),
                        _ => Arc::new(setup::assertions(
                            sandbox.data_dir(),
                            &mail.reader.id,
                            ASSERTION_POOL,
                        )?),
                    };
                    let (auth, paths) = match work.kind {
                        Kind::FirstOpenings => {
                            let per_round = plan.w4_per_round;
                            let slice: Vec<String> = w4_paths
                                .iter()
                                .skip(round * per_round)
                                .take(per_round)
                                .cloned()
                                .collect();
                            (
                                Arc::new(setup::assertions(
                                    sandbox.data_dir(),
                                    &mail.opener.id,
                                    ASSERTION_POOL,
                                )?),
                                Paths::Distinct(Arc::new(slice), Arc::new(AtomicUsize::new(0))),
                            )
                        }
                        _ => (auth, Paths::Fixed(path(work.kind, target, &mail))),
                    };
                    let spec = Spec {
                        paths,
                        auth,
                        connections: work.connections,
                        duration: work.duration,
                        rate: match mode {
                            Mode::Rate(r) => Some(r),
                            Mode::Saturation => None,
                        },
                        request_timeout: work.timeout,
                    };
                    settle(&[gw.pid]).await;
                    if round == 0
                        && mode == Mode::Saturation
                        && !matches!(
                            work.kind,
                            Kind::FirstOpenings | Kind::Attachment { large: true }
                        )
                    {
                        let warm = Spec {
                            duration: if plan.smoke {
                                Duration::from_millis(200)
                            } else {
                                Duration::from_secs(1)
                            },
                            ..spec.clone()
                        };
                        load::run(&measured.endpoint, &warm).await?;
                        settle(&[gw.pid]).await;
                    }
                    let (sample, first_error) =
                        measure(work.name, target, mode, measured, &spec).await?;
                    eprintln!(
                        "  {:<22} {:<15} {:<16} {:>8.0} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  cpu {:.3} s/1000  rss {:>6.1} MiB  err {}",
                        sample.workload,
                        target.name(),
                        match mode { Mode::Saturation => "saturation".to_owned(), Mode::Rate(r) => format!("fixed {r:.0}/s") },
                        sample.rps,
                        sample.p50_ms,
                        sample.p99_ms,
                        sample.cpu_per_1000,
                        sample.peak_rss_kib as f64 / 1024.0,
                        sample.errors
                    );
                    if let Some(why) = &first_error {
                        eprintln!("    first failure: {why}");
                    }
                    if mode == Mode::Saturation && target != Target::Direct {
                        round_sat.push(sample.rps);
                    }
                    samples.push(sample);
                }
            }
        }
    }
    facts.push((
        "measuring time".to_owned(),
        format!("{:.0} s", started.elapsed().as_secs_f64()),
    ));
    if let Some((n, _)) = proxy {
        n.stop().await;
    }
    gw.stop().await;
    drop(sandbox);
    Ok(Finished {
        samples,
        facts,
        notes,
    })
}

fn works(plan: &Plan, nginx: bool) -> Vec<Work> {
    let mut proxies = vec![Target::Direct];
    if nginx {
        proxies.push(Target::Nginx);
    }
    proxies.push(Target::Ikkuna);
    let d = plan.duration;
    let c = plan.connections;
    let mut works = vec![
        Work {
            name: "W1 inbox page",
            kind: Kind::Inbox,
            connections: c,
            duration: d,
            fixed_rate: true,
            targets: proxies.clone(),
            timeout: Duration::from_secs(30),
        },
        Work {
            name: "W2 message 10 KB",
            kind: Kind::Message,
            connections: c,
            duration: d,
            fixed_rate: true,
            targets: proxies.clone(),
            timeout: Duration::from_secs(30),
        },
        Work {
            name: "W3 attachment 1 MiB",
            kind: Kind::Attachment { large: false },
            connections: (c / 4).max(2),
            duration: d,
            fixed_rate: true,
            targets: proxies.clone(),
            timeout: Duration::from_secs(60),
        },
    ];
    if plan.one_gib {
        works.push(Work {
            name: "W3 attachment 1 GiB",
            kind: Kind::Attachment { large: true },
            connections: 2,
            duration: d,
            fixed_rate: false,
            targets: proxies,
            timeout: Duration::from_secs(600),
        });
    }
    works.push(Work {
        name: "W4 first openings",
        kind: Kind::FirstOpenings,
        connections: (c * 2).max(4),
        duration: d,
        fixed_rate: false,
        targets: vec![Target::Ikkuna],
        timeout: Duration::from_secs(30),
    });
    works
}

fn path(kind: Kind, target: Target, mail: &Mail) -> String {
    let base = match target {
        Target::Direct => format!("/v1/consents/{}/messages", mail.reader.consent_id),
        _ => "/v1/messages".to_owned(),
    };
    let (message, small, large) = mail.attachments;
    match kind {
        Kind::Inbox => format!("{base}?limit=20"),
        Kind::Message => format!("{base}/{}", mail.message_10k),
        Kind::Attachment { large: false } => format!("{base}/{message}/attachments/{small}"),
        Kind::Attachment { large: true } => format!("{base}/{message}/attachments/{large}"),
        Kind::FirstOpenings => base,
    }
}

/// Reads the W2 message and the W3 attachment once through the gateway, so their openings are
/// recorded before measuring (W2 and W3 measure reads, W4 first openings).
pub(crate) async fn prime_openings(
    gw: &Endpoint,
    data_dir: &std::path::Path,
    mail: &Mail,
) -> anyhow::Result<()> {
    let auth = setup::assertions(data_dir, &mail.reader.id, 1)?;
    let auth = auth[0].to_str()?.to_owned();
    let (message, small, _) = mail.attachments;
    for p in [
        format!("/v1/messages/{}", mail.message_10k),
        format!("/v1/messages/{message}/attachments/{small}"),
    ] {
        let (status, _) = gw
            .call(Method::GET, &p, &[("authorization", &auth)], None)
            .await?;
        anyhow::ensure!(
            status.is_success(),
            "priming {p} through the gateway answered {status}"
        );
    }
    Ok(())
}

async fn measure(
    workload: &str,
    target: Target,
    mode: Mode,
    m: &Measured,
    spec: &Spec,
) -> anyhow::Result<(Sample, Option<String>)> {
    let cpu = || {
        if m.sandbox_threads {
            procs::own_threads_cpu_secs("sandbox")
        } else {
            m.pids.iter().map(|p| procs::cpu_secs(*p)).sum()
        }
    };
    for pid in &m.pids {
        procs::reset_peak(*pid);
    }
    let before = cpu();
    let outcome = load::run(&m.endpoint, spec).await?;
    let used = cpu() - before;
    let peak: u64 = m.pids.iter().map(|p| procs::peak_rss_kib(*p)).sum();
    let secs = outcome.elapsed.as_secs_f64().max(1e-9);
    let sample = Sample {
        workload: workload.to_owned(),
        target,
        mode,
        rps: outcome.rps(),
        mib_s: outcome.bytes as f64 / secs / (1024.0 * 1024.0),
        p50_ms: outcome.quantile_ms(0.50),
        p99_ms: outcome.quantile_ms(0.99),
        cpu_per_1000: if outcome.ok > 0 {
            used / outcome.ok as f64 * 1000.0
        } else {
            0.0
        },
        peak_rss_kib: peak,
        ok: outcome.ok,
        errors: outcome.errors,
    };
    Ok((sample, outcome.first_error))
}

/// Waits (at most 30 s) until the gateway is idle: background work from the last measurement
/// (reporting openings to DVV) must not be charged to the next one.
async fn settle(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let window = Duration::from_millis(300);
    loop {
        let before: f64 = pids.iter().map(|p| procs::cpu_secs(*p)).sum();
        tokio::time::sleep(window).await;
        let after: f64 = pids.iter().map(|p| procs::cpu_secs(*p)).sum();
        if (after - before) / window.as_secs_f64() < 0.05 || Instant::now() > deadline {
            return;
        }
    }
}

pub(crate) fn free_port() -> anyhow::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// Where the report goes by default: `BENCHMARKS.md` at the workspace root.
pub fn default_report() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("BENCHMARKS.md")
}
