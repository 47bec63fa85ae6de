//! Prometheus metrics: one process-wide registry, served by the admin listener's `/metrics`.
//!
//! Labels come only from fixed sets chosen in code (route templates, HTTP methods and statuses,
//! DVV operation names, error kinds, limit scopes), so no label can ever hold an identity code, a
//! token or content. Values owned by other parts (consent cache, outbox) are read at scrape time
//! by [`Metrics::observe_counter`] and [`Metrics::set_gauge`] callers in the admin handler.

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets in seconds: 1 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every metric the gateway exposes.
pub struct Metrics {
    registry: Registry,
    /// Operator-API requests by route template, method and status.
    pub http_requests: IntCounterVec,
    /// Operator-API latency by route template and method (to the response head).
    pub http_duration: HistogramVec,
    /// DVV calls by operation and outcome (`ok` or an error kind), with their latency.
    pub dvv_duration: HistogramVec,
    /// DVV access-token renewals by outcome.
    pub token_renewals: IntCounterVec,
    /// Requests refused by a rate limit, by scope (`client`, `citizen`, `dvv`).
    pub rate_limited: IntCounterVec,
    /// Connections the gateway closed because a deadline passed, by listener (`api`, `admin`)
    /// and reason (`no_request`, `idle`, `write_stalled`, `stream_stuck`).
    pub connections_closed: IntCounterVec,
    /// Content streams cut before their end, by reason (`write_idle`, `revoked`).
    pub streams_cut: IntCounterVec,
    /// Requests shed at once because `server.max_concurrent_requests` were in flight (503).
    pub shed: IntCounter,
    /// Requests answered 504 because they passed `server.request_timeout_ms`.
    pub request_timeouts: IntCounter,
    /// Audit records written.
    pub audit_records: IntCounter,
    /// `fdatasync`s of the audit file: with group commit, fewer than the records written.
    pub audit_syncs: IntCounter,
    /// Audit records that could not be written (each refused its access).
    pub audit_failures: IntCounter,
    /// Consent checks answered from the cache.
    pub consent_hits: IntCounter,
    /// Consent lookups at DVV.
    pub consent_misses: IntCounter,
    /// Cached consent answers dropped because a revocation overtook them.
    pub consent_stale: IntCounter,
    /// Cached consent decisions.
    pub consent_entries: IntGauge,
    /// Openings not yet settled with DVV.
    pub outbox_pending: IntGauge,
    /// Openings DVV refused for good.
    pub outbox_parked: IntGauge,
    /// Age of the oldest pending opening, in seconds (0 when none).
    pub outbox_oldest_age: IntGauge,
    /// Openings DVV acknowledged.
    pub openings_delivered: IntCounter,
    /// Openings DVV acknowledged as the first open of the message.
    pub openings_first: IntCounter,
    /// Whether the last scrape could read the outbox (1) or not (0).
    pub outbox_readable: IntGauge,
    /// Webhook deliveries waiting.
    pub webhook_pending: IntGauge,
    /// Webhook deliveries parked after too many failures.
    pub webhook_parked: IntGauge,
    /// Age of the oldest waiting webhook delivery, in seconds (0 when none).
    pub webhook_oldest_age: IntGauge,
    /// Webhook deliveries that succeeded.
    pub webhook_delivered: IntCounter,
    /// Webhook delivery attempts that failed.
    pub webhook_failures: IntCounter,
    /// Events read from DVV's feed.
    pub feed_events: IntCounter,
    /// Failed polls of DVV's feed.
    pub feed_failures: IntCounter,
    /// Seconds since the feed consumer last reached the end of the feed (-1 before the first).
    pub feed_lag: IntGauge,
    /// The request metrics' children resolved so far, so a request does not look its label
    /// values up in the registry (see [`Resolved`]).
    resolved: Resolved,
}

/// Children of the labelled request metrics, resolved on first use and kept: a request then
/// increments handles it finds in a short list instead of hashing and looking up its label
/// strings (and formatting its status) in prometheus' maps. Bounded by the fixed label sets
/// (route templates, methods, statuses, DVV operations and outcomes).
#[derive(Default)]
struct Resolved {
    /// By route template: (method, status) → the request counter and the latency histogram.
    http: RwLock<HashMap<Box<str>, Vec<HttpChildren>>>,
    /// (operation, outcome) → the DVV latency histogram.
    dvv: RwLock<Vec<DvvChild>>,
}

struct HttpChildren {
    method: &'static str,
    status: u16,
    requests: IntCounter,
    duration: Histogram,
}

struct DvvChild {
    operation: &'static str,
    outcome: &'static str,
    duration: Histogram,
}

impl Metrics {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "ikkuna_http_requests_total",
                "Operator API requests by route template, method and status.",
            ),
            &["route", "method", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "ikkuna_http_request_duration_seconds",
                "Operator API latency to the response head, by route template and method.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method"],
        )?;
        let dvv_duration = HistogramVec::new(
            HistogramOpts::new(
                "ikkuna_dvv_request_duration_seconds",
                "Latency of logical DVV calls (retries included) by operation and outcome.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation", "outcome"],
        )?;
        let token_renewals = IntCounterVec::new(
            Opts::new(
                "ikkuna_dvv_token_renewals_total",
                "DVV access-token requests by outcome.",
            ),
            &["outcome"],
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "ikkuna_rate_limited_requests_total",
                "Requests answered 429 by a rate limit, by scope.",
            ),
            &["scope"],
        )?;
        let connections_closed = IntCounterVec::new(
            Opts::new(
                "ikkuna_connections_closed_total",
                "Connections closed by the gateway because a deadline passed, by listener and reason.",
            ),
            &["listener", "reason"],
        )?;
        let streams_cut = IntCounterVec::new(
            Opts::new(
                "ikkuna_streams_cut_total",
                "Content streams cut before their end, by reason.",
            ),
            &["reason"],
        )?;
        let counter = |name: &str, help: &str| IntCounter::new(name, help);
        let gauge = |name: &str, help: &str| IntGauge::new(name, help);
        let metrics = Self {
            http_requests,
            http_duration,
            dvv_duration,
            token_renewals,
            connections_closed,
            streams_cut,
            rate_limited,
            shed: counter(
                "ikkuna_load_shed_requests_total",
                "Requests refused with 503 because server.max_concurrent_requests were in flight.",
            )?,
            request_timeouts: counter(
                "ikkuna_request_timeouts_total",
                "Requests answered 504 because they passed server.request_timeout_ms.",
            )?,
            audit_records: counter("ikkuna_audit_records_total", "Audit records written.")?,
            audit_syncs: counter(
                "ikkuna_audit_syncs_total",
                "fdatasyncs of the audit file; concurrent records share one (group commit).",
            )?,
            audit_failures: counter(
                "ikkuna_audit_write_failures_total",
                "Audit records that could not be written; each refused its access.",
            )?,
            consent_hits: counter(
                "ikkuna_consent_cache_hits_total",
                "Consent checks answered without a DVV lookup of their own.",
            )?,
            consent_misses: counter(
                "ikkuna_consent_cache_misses_total",
                "Consent lookups made at DVV.",
            )?,
            consent_stale: counter(
                "ikkuna_consent_cache_stale_total",
                "Consent answers dropped because a revocation overtook them.",
            )?,
            consent_entries: gauge(
                "ikkuna_consent_cache_entries",
                "Consent decisions held in the cache.",
            )?,
            outbox_pending: gauge(
                "ikkuna_openings_outbox_pending",
                "Openings recorded but not yet acknowledged by DVV.",
            )?,
            outbox_parked: gauge(
                "ikkuna_openings_outbox_parked",
                "Openings DVV refused for good (need an operator's look).",
            )?,
            outbox_oldest_age: gauge(
                "ikkuna_openings_outbox_oldest_pending_age_seconds",
                "Age of the oldest pending opening (0 when none).",
            )?,
            openings_delivered: counter(
                "ikkuna_openings_delivered_total",
                "Openings acknowledged by DVV.",
            )?,
            openings_first: counter(
                "ikkuna_openings_first_opens_total",
                "Openings DVV acknowledged as the message's first open.",
            )?,
            outbox_readable: gauge(
                "ikkuna_openings_outbox_up",
                "Whether the last scrape could read the openings outbox (1) or not (0).",
            )?,
            webhook_pending: gauge(
                "ikkuna_webhook_queue_pending",
                "Webhook deliveries waiting (due now or retrying later).",
            )?,
            webhook_parked: gauge(
                "ikkuna_webhook_queue_parked",
                "Webhook deliveries parked after too many failures.",
            )?,
            webhook_oldest_age: gauge(
                "ikkuna_webhook_queue_oldest_pending_age_seconds",
                "Age of the oldest waiting webhook delivery (0 when none).",
            )?,
            webhook_delivered: counter(
                "ikkuna_webhook_deliveries_total",
                "Webhook deliveries the operator acknowledged.",
            )?,
            webhook_failures: counter(
                "ikkuna_webhook_delivery_failures_total",
                "Webhook delivery attempts that failed.",
            )?,
            feed_events: counter(
                "ikkuna_events_feed_events_total",
                "Events read from DVV's events feed.",
            )?,
            feed_failures: counter(
                "ikkuna_events_feed_poll_failures_total",
                "Failed polls of DVV's events feed.",
            )?,
            feed_lag: gauge(
                "ikkuna_events_feed_lag_seconds",
                "Seconds since the feed consumer last reached the end of DVV's feed (-1 before the first time).",
            )?,
            registry,
            resolved: Resolved::default(),
        };
        metrics.register_all()?;
        Ok(metrics)
    }

    fn register_all(&self) -> Result<(), prometheus::Error> {
        let r = &self.registry;
        r.register(Box::new(self.http_requests.clone()))?;
        r.register(Box::new(self.http_duration.clone()))?;
        r.register(Box::new(self.dvv_duration.clone()))?;
        r.register(Box::new(self.token_renewals.clone()))?;
        r.register(Box::new(self.rate_limited.clone()))?;
        r.register(Box::new(self.connections_closed.clone()))?;
        r.register(Box::new(self.streams_cut.clone()))?;
        for c in [
            &self.shed,
            &self.request_timeouts,
            &self.audit_records,
            &self.audit_syncs,
            &self.audit_failures,
            &self.consent_hits,
            &self.consent_misses,
            &self.consent_stale,
            &self.openings_delivered,
            &self.openings_first,
            &self.webhook_delivered,
            &self.webhook_failures,
            &self.feed_events,
            &self.feed_failures,
        ] {
            r.register(Box::new(c.clone()))?;
        }
        for g in [
            &self.consent_entries,
            &self.outbox_pending,
            &self.outbox_parked,
            &self.outbox_oldest_age,
            &self.outbox_readable,
            &self.webhook_pending,
            &self.webhook_parked,
            &self.webhook_oldest_age,
            &self.feed_lag,
        ] {
            r.register(Box::new(g.clone()))?;
        }
        Ok(())
    }

    /// Registers a further collector (e.g. webhook queue gauges owned by another module).
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        if let Err(error) = self.registry.register(collector) {
            tracing::warn!(%error, "metric registration refused");
        }
    }

    /// Records one operator-API request.
    /// The method label is one of the standard methods or `other`, so a client cannot mint
    /// label values.
    pub fn observe_http(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let seconds = elapsed.as_secs_f64();
        let found = |children: &[HttpChildren]| {
            children
                .iter()
                .find(|c| c.status == status && c.method == method)
                .map(|c| {
                    c.requests.inc();
                    c.duration.observe(seconds);
                })
                .is_some()
        };
        {
            let http = self
                .resolved
                .http
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if http.get(route).is_some_and(|children| found(children)) {
                return;
            }
        }
        let mut http = self
            .resolved
            .http
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let children = http.entry(Box::from(route)).or_default();
        if found(children) {
            return;
        }
        let child = HttpChildren {
            method,
            status,
            requests: self.http_requests.with_label_values(&[
                route,
                method,
                status.to_string().as_str(),
            ]),
            duration: self.http_duration.with_label_values(&[route, method]),
        };
        child.requests.inc();
        child.duration.observe(seconds);
        children.push(child);
    }

    /// Records one logical DVV call's latency under its operation and outcome.
    pub fn observe_dvv(&self, operation: &'static str, outcome: &'static str, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let found = |children: &[DvvChild]| {
            children
                .iter()
                .find(|c| c.operation == operation && c.outcome == outcome)
                .map(|c| c.duration.observe(seconds))
                .is_some()
        };
        if found(
            &self
                .resolved
                .dvv
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        ) {
            return;
        }
        let mut dvv = self
            .resolved
            .dvv
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if found(&dvv) {
            return;
        }
        let duration = self.dvv_duration.with_label_values(&[operation, outcome]);
        duration.observe(seconds);
        dvv.push(DvvChild {
            operation,
            outcome,
            duration,
        });
    }

    /// Raises a counter to a total read from its owner (owners' totals only grow).
    pub fn observe_counter(counter: &IntCounter, total: u64) {
        let current = counter.get();
        if total > current {
            counter.inc_by(total - current);
        }
    }

    /// Sets a gauge from an unsigned value read from its owner.
    pub fn set_gauge(gauge: &IntGauge, value: u64) {
        gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    }

    /// Reads the consent cache's figures.
    pub fn refresh_consent(&self, stats: crate::consent::ConsentCacheStats, entries: u64) {
        Self::observe_counter(&self.consent_hits, stats.hits);
        Self::observe_counter(&self.consent_misses, stats.misses);
        Self::observe_counter(&self.consent_stale, stats.stale);
        Self::set_gauge(&self.consent_entries, entries);
    }

    /// Reads the openings outbox's figures (`None`: the store could not be read).
    pub fn refresh_outbox(&self, stats: Option<crate::openings::OutboxStats>) {
        let Some(s) = stats else {
            self.outbox_readable.set(0);
            return;
        };
        self.outbox_readable.set(1);
        Self::set_gauge(&self.outbox_pending, s.pending);
        Self::set_gauge(&self.outbox_parked, s.parked);
        Self::set_gauge(
            &self.outbox_oldest_age,
            s.oldest_pending_age.map_or(0, |a| a.as_secs()),
        );
        Self::observe_counter(&self.openings_delivered, s.delivered);
        Self::observe_counter(&self.openings_first, s.first_opens);
    }

    /// Reads the webhook queue's figures (`None`: the store could not be read).
    pub fn refresh_webhooks(&self, stats: Option<crate::webhooks::WebhookStats>) {
        let Some(s) = stats else { return };
        Self::set_gauge(&self.webhook_pending, s.pending);
        Self::set_gauge(&self.webhook_parked, s.parked);
        Self::set_gauge(
            &self.webhook_oldest_age,
            s.oldest_pending_age.map_or(0, |a| a.as_secs()),
        );
        Self::observe_counter(&self.webhook_delivered, s.delivered_total);
        Self::observe_counter(&self.webhook_failures, s.failed_total);
    }

    /// Reads the events feed consumer's figures.
    pub fn refresh_feed(&self, stats: crate::events::FeedStats) {
        Self::observe_counter(&self.feed_events, stats.events_total);
        Self::observe_counter(&self.feed_failures, stats.failures_total);
        self.feed_lag.set(
            stats
                .lag
                .map_or(-1, |l| i64::try_from(l.as_secs()).unwrap_or(i64::MAX)),
        );
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "metrics encoding failed");
        }
        out
    }
}

/// An HTTP method as a label: one of a fixed set, else `other` (a client may send any token as
/// a method, so the raw method never reaches a label or a log line).
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// The process-wide metrics. Initialised on first use; `None` only if a metric definition is
/// invalid, which the unit tests rule out.
pub fn metrics() -> Option<&'static Metrics> {
    static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| match Metrics::new() {
            Ok(m) => Some(m),
            Err(error) => {
                tracing::error!(%error, "metrics registry cannot be built");
                None
            }
        })
        .as_ref()
}

/// Shorthand for instrumentation points: runs `f` when metrics exist.
pub fn with(f: impl FnOnce(&Metrics)) {
    if let Some(m) = metrics() {
        f(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_builds_and_renders_every_family() {
        let m = metrics().expect("metrics build");
        m.observe_http("/v1/messages", "GET", 200, Duration::from_millis(3));
        m.observe_dvv("list_messages", "ok", Duration::from_millis(2));
        m.rate_limited.with_label_values(&["citizen"]).inc();
        Metrics::observe_counter(&m.consent_hits, 5);
        Metrics::observe_counter(&m.consent_hits, 3);
        assert!(m.consent_hits.get() >= 5);
        let text = String::from_utf8(m.render()).expect("utf8");
        for name in [
            "ikkuna_http_requests_total",
            "ikkuna_http_request_duration_seconds_bucket",
            "ikkuna_dvv_request_duration_seconds_count",
            "ikkuna_rate_limited_requests_total",
            "ikkuna_consent_cache_hits_total",
            "ikkuna_openings_outbox_oldest_pending_age_seconds",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }

    #[test]
    fn resolved_handles_count_into_the_labelled_series() {
        let m = metrics().expect("metrics build");
        let route = "/test/resolved";
        for _ in 0..3 {
            m.observe_http(route, "GET", 418, Duration::from_millis(1));
        }
        m.observe_http(route, "GET", 419, Duration::from_millis(1));
        m.observe_http(route, "010190-999W", 418, Duration::from_millis(1));
        let count = |method: &str, status: &str| {
            m.http_requests
                .with_label_values(&[route, method, status])
                .get()
        };
        assert_eq!(count("GET", "418"), 3);
        assert_eq!(count("GET", "419"), 1);
        assert_eq!(count("other", "418"), 1, "an unknown method is `other`");
        let latency = m.http_duration.with_label_values(&[route, "GET"]);
        assert_eq!(latency.get_sample_count(), 4);
        for _ in 0..2 {
            m.observe_dvv("test_op", "ok", Duration::from_millis(1));
        }
        m.observe_dvv("test_op", "timeout", Duration::from_millis(1));
        let dvv = |outcome: &str| {
            m.dvv_duration
                .with_label_values(&["test_op", outcome])
                .get_sample_count()
        };
        assert_eq!((dvv("ok"), dvv("timeout")), (2, 1));
    }
}
