//! Wiring: builds every part from a validated [`Config`], starts the listeners and background
//! tasks, and stops them in order. The only module that knows all the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::state::Window;
use crate::citizen::{self, AssertionVerifier, VerifierSettings};
use crate::config::{self, Config};
use crate::consent::{ConsentCache, ConsentCacheSettings};
use crate::dvv::{DvvClient, OpeningReport};
use crate::openings::{self, DelivererSettings, ReportError, ReportOutcome};
use crate::server::{self, ConnectionLimits};

/// A started gateway: its bound addresses and the handle to stop it.
pub struct RunningGateway {
    /// Where the operator API listens.
    pub api_addr: SocketAddr,
    /// Where the admin endpoints listen.
    pub admin_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    audit: crate::audit::AuditLog,
}

impl RunningGateway {
    /// Stops accepting, lets requests in flight and opening reports finish, then returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.audit.log_head("stop");
    }
}

/// Builds everything from `config` and starts serving.
pub async fn start(config: Config) -> anyhow::Result<RunningGateway> {
    crate::tls_provider::install();
    let exposed = config::insecure_secret_files(&config);
    if !exposed.is_empty() {
        return Err(config::ConfigErrors(exposed))
            .context("refusing to start with secret files others can read");
    }
    std::fs::create_dir_all(&config.store.data_dir).with_context(|| {
        format!(
            "store.data_dir: cannot create {}",
            config.store.data_dir.display()
        )
    })?;
    let outbox = crate::store::open(&config.store)
        .await
        .context("store: cannot open the openings outbox")?;
    let dvv = DvvClient::new(&config.dvv).context("dvv: cannot set up the DVV client")?;
    let verifier_settings = verifier_settings(&config.assertions);
    let keys = verifier_settings.keys_status.clone();
    let verifier = AssertionVerifier::new(verifier_settings)
        .await
        .context("assertions: cannot set up citizen assertion verification")?;
    let consents = ConsentCache::new(ConsentCacheSettings {
        capacity: config.consent.cache_capacity,
        positive_ttl: config.consent.revocation_bound,
        negative_ttl: config.consent.negative_ttl,
    });
    let tls = server::tls::server_config(
        &config.server.tls_cert,
        config.server.tls_key.path(),
        config.server.client_ca.as_deref(),
    )?;

    let audit = crate::audit::from_config(&config.audit)?;
    let rate_limits = Arc::new(crate::limits::Limits::new(config.limits.settings));

    let window = Arc::new(Window {
        verifier,
        consents,
        dvv: dvv.clone(),
        outbox: outbox.clone(),
        recorded: Default::default(),
        consent_service_url: config.dvv.consent_service_url.to_string(),
        fallback_url: config.dvv.fallback_url.to_string(),
        limits: rate_limits.clone(),
        audit: audit.clone(),
        webhooks: crate::webhooks::WebhookQueue::new(outbox.clone()),
        feed: crate::events::FeedStatus::default(),
        keys,
        streams: crate::api::state::StreamLimits {
            write_idle: config.server.write_idle_timeout,
            recheck_every: config.consent.revocation_bound,
        },
        replies: crate::api::state::ReplyTimeouts {
            upload_idle: config.dvv.body_idle_timeout,
            answer_timeout: config.dvv.call_timeout,
        },
    });
    crate::health::metrics();

    let api_listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("server.listen: cannot bind {}", config.server.listen))?;
    let admin_listener = TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("admin.listen: cannot bind {}", config.admin.listen))?;
    let api_addr = api_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    let (stop, stopped) = watch::channel(false);
    let limits = ConnectionLimits {
        name: "api",
        handshake_timeout: config.server.tls_handshake_timeout,
        header_read_timeout: config.server.header_read_timeout,
        idle_timeout: config.server.idle_timeout,
        write_idle_timeout: config.server.write_idle_timeout,
        max_connections: config.server.max_connections,
        drain_timeout: config.server.drain_timeout,
    };
    let admin_limits = ConnectionLimits {
        name: "admin",
        max_connections: config.admin.max_connections,
        ..limits.clone()
    };
    let pipelines = spawn_pipelines(&outbox, &config, &dvv, &window, &stopped)?;
    let tasks = vec![
        crate::limits::spawn_housekeeping(
            rate_limits,
            Duration::from_secs(config.limits.housekeeping_secs),
            stopped.clone(),
        ),
        openings::spawn_deliverer(
            outbox,
            Arc::new(DvvReporter(dvv)),
            DelivererSettings::default(),
            stopped.clone(),
        ),
        tokio::spawn(server::serve(
            api_listener,
            Some(tls),
            crate::api::router(
                window.clone(),
                crate::api::PipelineSettings {
                    max_concurrent_requests: config.server.max_concurrent_requests,
                    request_timeout: config.server.request_timeout,
                },
            ),
            limits,
            stopped.clone(),
        )),
        tokio::spawn(server::serve(
            admin_listener,
            None,
            crate::admin::router(window.clone()),
            admin_limits,
            stopped,
        )),
    ];
    let mut tasks = tasks;
    tasks.extend(pipelines);
    tasks.push(openings::spawn_store_probe(
        window.outbox.clone(),
        openings::ProbeSettings::default(),
        stop.subscribe(),
    ));
    tasks.push(crate::health::spawn_keys_retry(
        window.clone(),
        Duration::from_secs(2),
        stop.subscribe(),
    ));
    tracing::info!(%api_addr, %admin_addr, "gateway started");
    Ok(RunningGateway {
        api_addr,
        admin_addr,
        stop,
        tasks,
        audit,
    })
}

fn verifier_settings(a: &config::AssertionsConfig) -> VerifierSettings {
    let jwks = match &a.jwks {
        config::JwksSource::File(path) => citizen::JwksSource::File(path.clone()),
        config::JwksSource::Url { url, ca } => citizen::JwksSource::Url {
            url: url.to_string(),
            ca_file: ca.clone(),
        },
    };
    let mut s = VerifierSettings::new(a.issuer.clone(), a.audience.clone(), jwks);
    s.refresh = a.jwks_refresh;
    s.algorithms = a.algorithms.clone();
    s.leeway = a.leeway;
    s.max_lifetime = a.max_lifetime;
    s.accepted_acr = a.accepted_acr.clone();
    s.allowed_claims = a.allowed_claims.clone();
    s
}

/// The webhook dispatcher's parts, prepared at start so a bad secret or CA fails the start rather
/// than the first takeover of the singleton work.
#[derive(Clone)]
struct Dispatch {
    client: crate::webhooks::WebhookClient,
    secret: config::Secret,
    settings: crate::webhooks::DispatcherSettings,
}

impl Dispatch {
    /// `None` when no webhook endpoints are configured.
    fn prepare(config: &Config) -> anyhow::Result<Option<Self>> {
        let w = &config.webhooks;
        if w.endpoints.is_empty() {
            return Ok(None);
        }
        let secret = w
            .secret
            .as_ref()
            .context("webhooks.secret_file: is required with webhooks.endpoints")?
            .read()
            .context("webhooks.secret_file: cannot read")?;
        let client = crate::webhooks::WebhookClient::new(
            w.ca_cert.as_deref(),
            w.connect_timeout,
            w.timeout,
        )?;
        Ok(Some(Self {
            client,
            secret,
            settings: crate::webhooks::DispatcherSettings {
                concurrency: w.concurrency,
                max_attempts: w.max_attempts,
                initial_backoff: w.initial_backoff,
                max_backoff: w.max_backoff,
                poll_interval: Duration::from_secs(1),
            },
        }))
    }
}

/// The singleton work — the events feed (consent changes and webhooks), the webhook dispatcher
/// when endpoints are configured, the ledger's retention — run while this process owns it (at
/// once on the embedded store; by election on a shared one), and the listener for consent
/// changes other replicas publish.
fn spawn_pipelines(
    store: &crate::store::Store,
    config: &Config,
    dvv: &DvvClient,
    window: &Arc<Window>,
    stopped: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let dispatch = Dispatch::prepare(config)?;
    let consents = window.consents.clone();
    let sink: crate::store::ConsentSink = Arc::new(move |change: &crate::store::ConsentChange| {
        if change.revoked {
            consents.revoke(&change.consent_id);
        } else {
            consents.invalidate_consent(&change.consent_id);
        }
    });
    let listener = store.spawn_consent_listener(sink, stopped.clone());
    let (ownership, election) = store.spawn_owner_election(stopped.clone());
    let (config, dvv, window) = (config.clone(), dvv.clone(), Arc::clone(window));
    let owner = ownership.clone();
    let owner_work = crate::store::spawn_while_owner(ownership, stopped.clone(), move |stop| {
        spawn_event_pipelines(&config, &dvv, &window, dispatch.clone(), &owner, &stop)
    });
    let mut tasks = vec![election, owner_work];
    tasks.extend(listener);
    Ok(tasks)
}

/// Starts the singleton work; it stops when `stopped` turns true (ownership lost or shutdown).
fn spawn_event_pipelines(
    config: &Config,
    dvv: &DvvClient,
    window: &Window,
    dispatch: Option<Dispatch>,
    owner: &crate::store::Ownership,
    stopped: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let endpoints: Vec<String> = config
        .webhooks
        .endpoints
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut tasks = Vec::with_capacity(3);
    if let Some(d) = dispatch {
        tasks.push(crate::webhooks::spawn_dispatcher(
            window.webhooks.clone(),
            d.client,
            d.secret,
            d.settings,
            Some(owner.clone()),
            stopped.clone(),
        ));
    }
    tasks.push(crate::events::spawn_feed(
        dvv.clone(),
        window.consents.clone(),
        crate::events::FeedPosition::new(window.webhooks.clone()),
        window.feed.clone(),
        crate::events::FeedSettings {
            poll_interval: config.events.poll_interval,
            max_backoff: config.events.max_backoff,
            start: config.events.start,
            endpoints: endpoints.clone(),
            reminders: crate::reminders::ReminderDelays {
                normal: config.reminders.delay,
                receipt: config.reminders.receipt_delay,
                max_count: config.reminders.max_count,
            },
        },
        stopped.clone(),
    ));
    if !endpoints.is_empty() {
        tasks.push(crate::reminders::spawn_scheduler(
            window.webhooks.store().clone(),
            Arc::new(crate::reminders::SystemClock::ahead_by(
                config.reminders.clock_offset,
            )),
            window.feed.clone(),
            crate::reminders::SchedulerSettings {
                max_count: config.reminders.max_count,
                poll_interval: config.reminders.poll_interval,
                endpoints,
            },
            stopped.clone(),
        ));
    }
    tasks.push(crate::ledger::spawn_retention(
        window.outbox.clone(),
        config.ledger.retention,
        stopped.clone(),
    ));
    tasks
}

/// Reports openings through the DVV client: 201 and 409 both settle an opening. A failure is
/// permanent only when DVV names a refusal the contract calls permanent
/// ([`crate::dvv::OpeningRefusal`]); everything else is retried, since DVV may still accept it.
struct DvvReporter(DvvClient);

impl openings::OpeningReporter for DvvReporter {
    async fn report(
        &self,
        consent_id: &str,
        message_id: i64,
        opening_id: &str,
        opened_at: DateTime<Utc>,
    ) -> Result<ReportOutcome, ReportError> {
        let report = OpeningReport {
            opening_id: opening_id.to_owned(),
            opened_at,
        };
        match self.0.report_opening(consent_id, message_id, &report).await {
            Ok(answer) => Ok(ReportOutcome {
                first_open: answer.value.first_open,
                read_at: answer.value.read_at,
                settles_at: (answer.value.first_open_status
                    == crate::dvv::FirstOpenStatus::Provisional)
                    .then_some(answer.value.settles_at),
            }),
            Err(e) => Err(match e.opening_refusal() {
                Some(refusal) => ReportError {
                    permanent: true,
                    kind: refusal.label(),
                },
                None => ReportError {
                    permanent: false,
                    kind: e.kind(),
                },
            }),
        }
    }
}

/// How long `ikkuna run` waits for a clean stop after SIGTERM before giving up.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// Resolves on SIGINT or SIGTERM (an orchestrator's stop).
pub async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
