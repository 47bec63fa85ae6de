//! Ikkuna sandbox: a reference implementation of the hypothetical DVV viewing-connection API
//! (`docs/dvv-viewing-api.yaml`), with a throwaway PKI, seeded fictional citizens and messages, several
//! providers, an admin API and fault injection.
//!
//! The gateway's tests, the `ikkuna sandbox` subcommand, the benchmarks and the certification
//! suite all run against it. It knows only the contract, never the gateway.
//!
//! ```text
//! let sandbox = ikkuna_sandbox::start(SandboxOptions::new(dir)).await?;
//! sandbox.dvv_url();   // https://127.0.0.1:PORT (mutual TLS)
//! sandbox.admin_url(); // http://127.0.0.1:PORT
//! sandbox.info();      // the content of DIR/sandbox.json
//! sandbox.shutdown().await;
//! ```

mod admin;
mod app;
mod auth;
mod calls;
pub mod canary;
mod citizen_assertion;
pub mod cli;
pub mod content;
mod continuation;
mod domain;
mod dvv;
mod faults;
mod fsutil;
mod http;
mod info;
mod journal;
mod keys;
mod model;
mod notifications;
mod pki;
mod ports;
mod range;
pub mod replies;
mod seed;
mod store;
mod time;
mod tls;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use citizen_assertion::{mint_citizen_assertion, sign_operator_jwt, DEFAULT_ACR};
pub use info::{
    CitizenConsent, CitizenInfo, ProviderInfo, SandboxInfo, GATEWAY_AUDIENCE, OPERATOR_ISSUER,
};
pub use seed::DEFAULT_SEED;

use crate::app::App;
use crate::http::serve::{self as listener, Transport};
use crate::info::GatewayConfig;
use crate::model::ConsentState;

/// Bearer token lifetime unless configured.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(300);
/// How long after a citizen's reply the sandbox's authority answers it, by default.
pub const DEFAULT_ANSWER_DELAY: Duration = Duration::from_secs(2);
/// Concurrent connections the DVV listener accepts.
const MAX_DVV_CONNECTIONS: usize = 4096;
/// Concurrent connections the admin listener accepts.
const MAX_ADMIN_CONNECTIONS: usize = 256;

/// How to start a sandbox.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// Directory for the PKI, the journal, `sandbox.json` and `ikkuna.toml`; created if missing.
    pub data_dir: PathBuf,
    /// DVV listener address; default: the port remembered in the data dir, else a free
    /// loopback port.
    pub dvv_listen: Option<SocketAddr>,
    /// Admin listener address (must be loopback); default as for `dvv_listen`.
    pub admin_listen: Option<SocketAddr>,
    /// Lifetime of issued bearer tokens.
    pub token_ttl: Duration,
    /// Seed file replacing the built-in seed.
    pub seed: Option<PathBuf>,
    /// Recording mode for auditors: unique canary strings in every title, body and attachment
    /// (the prefix is in `DIR/canaries.json`; see [`canary`]).
    pub canaries: bool,
    /// What one citizen's reply may hold (default: the Suomi.fi Messages figures; see
    /// [`replies`]).
    pub reply_limits: replies::ReplyLimits,
    /// The authority answers each citizen's reply this long after it arrived (a new message in
    /// the thread); `None`: only when asked through the admin API.
    pub answer_replies_after: Option<Duration>,
    /// The first-open settlement window (the contract's [`domain::SETTLEMENT_WINDOW`] unless a
    /// test shortens it to see settled verdicts).
    pub settlement_window: Duration,
}

impl SandboxOptions {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            dvv_listen: None,
            admin_listen: None,
            token_ttl: DEFAULT_TOKEN_TTL,
            seed: None,
            canaries: false,
            reply_limits: replies::ReplyLimits::default(),
            answer_replies_after: Some(DEFAULT_ANSWER_DELAY),
            settlement_window: Duration::from_secs(
                domain::SETTLEMENT_WINDOW.num_seconds().unsigned_abs(),
            ),
        }
    }
}

/// A started sandbox. Dropping it stops the listeners; [`RunningSandbox::shutdown`] also waits
/// until they have closed.
pub struct RunningSandbox {
    info: SandboxInfo,
    data_dir: PathBuf,
    dvv_addr: SocketAddr,
    admin_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    app: Arc<App>,
}

/// One message of a citizen's inbox as the sandbox holds it (see [`RunningSandbox::inbox_of`]).
#[derive(Clone, Debug)]
pub struct InboxEntry {
    /// Message id.
    pub message_id: i64,
    /// Title.
    pub title: String,
    /// A `Verifiable` message (proof of receipt).
    pub verifiable: bool,
    /// Already opened in some window.
    pub read: bool,
    /// Receipt confirmed (verifiable messages).
    pub receipt_confirmed: bool,
    /// Attachments as `(id, name, size in bytes)`.
    pub attachments: Vec<(i64, String, u64)>,
}

impl RunningSandbox {
    /// Base URL of the DVV API, e.g. `https://127.0.0.1:41234`.
    pub fn dvv_url(&self) -> &str {
        &self.info.dvv_url
    }

    /// The token endpoint, the exact `aud` of client assertions.
    pub fn token_url(&self) -> String {
        format!("{}/v1/token", self.info.dvv_url)
    }

    /// Base URL of the admin API, e.g. `http://127.0.0.1:41235`.
    pub fn admin_url(&self) -> &str {
        &self.info.admin_url
    }

    /// Address the DVV listener is bound to.
    pub fn dvv_addr(&self) -> SocketAddr {
        self.dvv_addr
    }

    /// Address the admin listener is bound to.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The content of `sandbox.json`.
    pub fn info(&self) -> &SandboxInfo {
        &self.info
    }

    /// The (absolute) data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A citizen's inbox, newest first, read from the sandbox's state without going through the
    /// contract (no opening or release is recorded): `ikkuna sandbox` picks the messages of its
    /// guided tour with it.
    pub fn inbox_of(&self, citizen: &str) -> Vec<InboxEntry> {
        self.app
            .domain
            .inbox_of(citizen)
            .into_iter()
            .map(|m| InboxEntry {
                message_id: m.id,
                title: m.title,
                verifiable: m.service_type == model::MessageServiceType::Verifiable,
                read: m.read_at.is_some(),
                receipt_confirmed: m.receipt.is_some(),
                attachments: m
                    .attachments
                    .into_iter()
                    .map(|a| (a.id, a.name, a.size))
                    .collect(),
            })
            .collect()
    }

    /// Stops accepting, lets connections finish briefly, and waits for the listeners to close.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts a sandbox: creates or reuses the data directory's PKI, ports and state, starts the
/// DVV and admin listeners, and writes `sandbox.json` and `ikkuna.toml`.
pub async fn start(opts: SandboxOptions) -> anyhow::Result<RunningSandbox> {
    tls::install_crypto_provider();
    fsutil::ensure_private_dir(&opts.data_dir)?;
    let dir = opts
        .data_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", opts.data_dir.display()))?;
    if let Some(addr) = opts.admin_listen {
        anyhow::ensure!(
            addr.ip().is_loopback(),
            "the admin listener must be on a loopback address"
        );
    }

    let mut seed = seed::Seed::load(opts.seed.as_deref())?;
    let canaries = if opts.canaries {
        let c = canary::Canaries::load_or_create(&dir)?;
        c.mark_seed(&mut seed);
        Some(c)
    } else {
        None
    };
    let provider_ids: Vec<String> = seed.providers.iter().map(|p| p.id.clone()).collect();
    let pki = pki::Pki::ensure(&dir, &provider_ids)?;
    let key = keys::StateKey::load_or_create(&dir.join("state.key"))?;
    let settlement_window =
        chrono::Duration::from_std(opts.settlement_window).unwrap_or(domain::SETTLEMENT_WINDOW);
    let domain = domain::Domain::open(
        &dir.join("journal.jsonl"),
        &seed,
        key.clone(),
        settlement_window,
    )?;

    let ports_path = dir.join("ports.json");
    let mut ports = ports::Ports::load(&ports_path)?;
    let dvv_listener = bind(ports::choose(opts.dvv_listen, ports.dvv), "DVV").await?;
    let admin_listener = bind(ports::choose(opts.admin_listen, ports.admin), "admin").await?;
    let dvv_addr = dvv_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    ports.dvv = dvv_addr.port();
    ports.admin = admin_addr.port();
    if ports.gateway == 0 {
        ports.gateway = ports::free_loopback_port(&[ports.dvv, ports.admin])?;
    }
    if ports.gateway_admin == 0 {
        ports.gateway_admin = ports::free_loopback_port(&[ports.dvv, ports.admin, ports.gateway])?;
    }
    ports.save(&ports_path)?;

    let dvv_url = format!("https://{}", url_authority(dvv_addr));
    let admin_url = format!("http://{}", url_authority(admin_addr));
    let consent_service_url = format!("https://{}/consent-service", url_authority(admin_addr));

    let assertion_keys = pki
        .providers
        .iter()
        .map(|p| {
            std::fs::read(&p.assertion_public_key)
                .map(|pem| (p.id.clone(), pem))
                .with_context(|| format!("reading {}", p.assertion_public_key.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let fingerprints = Arc::new(tls::provider_fingerprints(
        &pki.providers
            .iter()
            .map(|p| (p.id.clone(), p.client_cert.as_path()))
            .collect::<Vec<_>>(),
    )?);

    let app = Arc::new(App {
        domain,
        tokens: auth::bearer::BearerTokens::new(opts.token_ttl),
        assertions: auth::assertion::AssertionVerifier::new(
            format!("{dvv_url}/v1/token"),
            &assertion_keys,
        )?,
        continuation: continuation::ContinuationCodec::new(key),
        faults: faults::Faults::default(),
        calls: calls::CallLog::new(calls::DEFAULT_CAPACITY),
        dvv_url: dvv_url.clone(),
        admin_url: admin_url.clone(),
        started_at: time::now(),
        canaries,
        reply_limits: opts.reply_limits,
        answer_replies_after: opts.answer_replies_after,
    });

    let info = write_outputs(
        &dir,
        &pki,
        &app,
        &ports,
        &dvv_url,
        &admin_url,
        &consent_service_url,
    )?;

    let (stop, stop_rx) = watch::channel(false);
    let dvv_transport = Transport::Tls {
        config: tls::dvv_server_config(&pki.ca_cert, &pki.server_cert, &pki.server_key)?,
        identify: Arc::new(move |chain| {
            chain
                .first()
                .and_then(|ee| fingerprints.get(&pki::certificate_fingerprint(ee)).cloned())
        }),
    };
    let admin_transport = Transport::PlainOrTls {
        config: tls::admin_server_config(&pki.server_cert, &pki.server_key)?,
    };
    let dvv_app = app.clone();
    let admin_app = app.clone();
    let tasks = vec![
        listener::spawn(
            "dvv",
            dvv_listener,
            dvv_transport,
            MAX_DVV_CONNECTIONS,
            Arc::new(move |req, conn| Box::pin(dvv::handle(dvv_app.clone(), conn, req))),
            stop_rx.clone(),
        ),
        listener::spawn(
            "admin",
            admin_listener,
            admin_transport,
            MAX_ADMIN_CONNECTIONS,
            Arc::new(move |req, conn| Box::pin(admin::handle(admin_app.clone(), conn, req))),
            stop_rx,
        ),
    ];
    tracing::info!(dvv = %dvv_url, admin = %admin_url, data_dir = %dir.display(), "sandbox started");
    Ok(RunningSandbox {
        info,
        data_dir: dir,
        dvv_addr,
        admin_addr,
        stop,
        tasks,
        app,
    })
}

async fn bind(addr: SocketAddr, name: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "binding the {name} listener to {addr} (a port remembered in ports.json may be taken; \
             pass an explicit address or free it)"
        )
    })
}

/// `host:port` for a URL: unspecified addresses become loopback, IPv6 is bracketed.
fn url_authority(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port()).to_string()
}

fn write_outputs(
    dir: &Path,
    pki: &pki::Pki,
    app: &App,
    ports: &ports::Ports,
    dvv_url: &str,
    admin_url: &str,
    consent_service_url: &str,
) -> anyhow::Result<SandboxInfo> {
    let names = app.domain.providers();
    let providers: Vec<ProviderInfo> = pki
        .providers
        .iter()
        .map(|p| ProviderInfo {
            id: p.id.clone(),
            name: names
                .iter()
                .find(|(id, _)| *id == p.id)
                .map(|(_, n)| n.clone())
                .unwrap_or_default(),
            client_cert: p.client_cert.clone(),
            client_key: p.client_key.clone(),
            assertion_key: p.assertion_key.clone(),
        })
        .collect();
    let first = providers
        .first()
        .context("the seed has no provider")?
        .clone();
    let citizens = app
        .domain
        .citizens(&first.id)
        .into_iter()
        .map(|c| CitizenInfo {
            id: c.id,
            name: c.name.unwrap_or_default(),
            consent: match c.consent {
                Some(ConsentState::Active) => CitizenConsent::Active,
                Some(ConsentState::Revoked) => CitizenConsent::Revoked,
                None => CitizenConsent::None,
            },
            messages: c.messages,
        })
        .collect();
    let gateway_dir = dir.join("gateway");
    fsutil::ensure_private_dir(&gateway_dir)?;
    let gateway_config = dir.join("ikkuna.toml");
    let gateway_listen = format!("127.0.0.1:{}", ports.gateway);
    let audit_log = gateway_dir.join("audit.jsonl");
    let audit_key = gateway_dir.join("audit-pseudonym.key");
    // A random hex key, created once with mode 0600 (the gateway refuses readable keys).
    keys::StateKey::load_or_create(&audit_key)?;
    let toml = GatewayConfig {
        listen: gateway_listen.clone(),
        admin_listen: format!("127.0.0.1:{}", ports.gateway_admin),
        tls_cert: &pki.gateway_cert,
        tls_key: &pki.gateway_key,
        ca_cert: &pki.ca_cert,
        dvv_url,
        provider: &first,
        consent_service_url,
        jwks: &pki.operator_jwks,
        store_dir: &gateway_dir,
        audit_file: &audit_log,
        audit_key: &audit_key,
    }
    .render();
    fsutil::write_atomic(&gateway_config, toml.as_bytes(), fsutil::Mode::Public)?;
    let info = SandboxInfo {
        dvv_url: dvv_url.to_owned(),
        admin_url: admin_url.to_owned(),
        ca_cert: pki.ca_cert.clone(),
        operator_signing_key: pki.operator_signing_key.clone(),
        operator_jwks: pki.operator_jwks.clone(),
        operator_issuer: OPERATOR_ISSUER.to_owned(),
        gateway_audience: GATEWAY_AUDIENCE.to_owned(),
        consent_service_url: consent_service_url.to_owned(),
        gateway_cert: pki.gateway_cert.clone(),
        gateway_key: pki.gateway_key.clone(),
        gateway_url: format!("https://{gateway_listen}"),
        gateway_admin_url: format!("http://127.0.0.1:{}", ports.gateway_admin),
        audit_log: audit_log.clone(),
        gateway_config,
        providers,
        citizens,
    };
    info.write(&dir.join("sandbox.json"))?;
    Ok(info)
}
