//! The dispatcher: sends due deliveries, a few at a time, signed at each attempt; retries with
//! jittered exponential backoff and parks a delivery after the configured number of failures.
//! The loop is the store's one claim → send → settle worker ([`crate::store::worker`]); this
//! module says how a delivery is sent and settled.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use http::{HeaderName, HeaderValue};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::client::WebhookClient;
use super::queue::{PendingDelivery, WebhookQueue, DELIVERED_RETENTION};
use super::signature::{sign, SIGNATURE_HEADER};
use crate::config::Secret;
use crate::store::worker::{self, Work, WorkerSettings};
use crate::store::{Ownership, StoreError};

/// How the dispatcher paces itself (from `[webhooks]`).
#[derive(Debug, Clone)]
pub struct DispatcherSettings {
    /// Most deliveries in flight at once.
    pub concurrency: usize,
    /// Failed attempts after which a delivery is parked.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles with each failure.
    pub initial_backoff: Duration,
    /// Longest delay between retries.
    pub max_backoff: Duration,
    /// Longest sleep between looks at the queue (picks up CLI replays).
    pub poll_interval: Duration,
}

/// How often delivered rows older than [`DELIVERED_RETENTION`] are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// Starts the dispatcher. It stops taking new deliveries when `shutdown` becomes true, lets the
/// attempts in flight finish, and ends; what is not delivered stays queued for the next start.
/// With `owner`, it claims and sends only while this process holds the singleton work.
pub fn spawn_dispatcher(
    queue: WebhookQueue,
    client: WebhookClient,
    secret: Secret,
    settings: DispatcherSettings,
    owner: Option<Ownership>,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let pacing = WorkerSettings {
        concurrency: settings.concurrency,
        poll_interval: settings.poll_interval,
        initial_backoff: settings.initial_backoff,
        max_backoff: settings.max_backoff,
    };
    let prune = prune_loop(queue.clone(), shutdown.clone());
    let work = Arc::new(Dispatch {
        queue,
        client,
        secret,
        settings,
        owner: owner.clone(),
    });
    tokio::spawn(async move {
        tokio::join!(worker::run(work, pacing, owner, shutdown), prune);
    })
}

/// Prunes delivered rows at start and then every [`PRUNE_EVERY`] until `shutdown`.
async fn prune_loop(queue: WebhookQueue, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        if let Err(error) = queue.prune_delivered(DELIVERED_RETENTION).await {
            tracing::warn!(kind = error.kind(), "could not prune delivered webhooks");
        }
        tokio::select! {
            () = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Webhook dispatch as [`Work`]: due deliveries from the queue, POSTed signed.
struct Dispatch {
    queue: WebhookQueue,
    client: WebhookClient,
    secret: Secret,
    settings: DispatcherSettings,
    owner: Option<Ownership>,
}

impl Work for Dispatch {
    type Item = PendingDelivery;
    type Key = i64;
    const NAME: &'static str = "webhooks";

    fn key(item: &PendingDelivery) -> i64 {
        item.id
    }

    fn claims(&self) -> bool {
        self.queue.claims()
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        self.queue.due(now, limit).await
    }

    async fn next_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.queue.next_due_after(now).await
    }

    async fn woken(&self) {
        self.queue.woken().await;
    }

    async fn send_and_settle(self: Arc<Self>, delivery: PendingDelivery) {
        if self.owner.as_ref().is_some_and(|o| !o.is_held()) {
            // Ownership ended since the claim: the row falls due again for the next owner.
            return;
        }
        deliver_one(
            &self.queue,
            &self.client,
            &self.secret,
            &self.settings,
            delivery,
        )
        .await;
    }

    async fn abandoned(&self, _id: i64) {
        // The row stays pending and is sent again at its next due time.
    }
}

/// One attempt: sign with a fresh timestamp, POST, record the outcome.
async fn deliver_one(
    queue: &WebhookQueue,
    client: &WebhookClient,
    secret: &Secret,
    settings: &DispatcherSettings,
    delivery: PendingDelivery,
) {
    let key = crate::config::trimmed_secret(secret.expose());
    let timestamp = Utc::now().timestamp();
    let body = Bytes::from(delivery.body.clone());
    let headers = headers(&delivery, &sign(key, timestamp, &body));
    let outcome = client.post(&delivery.endpoint, &headers, body).await;
    let stored = match outcome {
        Ok(status) => {
            tracing::debug!(event_id = %delivery.event_id, status, "webhook delivered");
            queue.mark_delivered(delivery.id, status).await
        }
        Err(error) => {
            let attempts = delivery.attempts.saturating_add(1);
            let park = attempts >= settings.max_attempts;
            let delay = backoff(settings.initial_backoff, settings.max_backoff, attempts);
            let next = Utc::now() + TimeDelta::from_std(delay).unwrap_or(TimeDelta::zero());
            if park {
                tracing::warn!(
                    event_id = %delivery.event_id,
                    kind = error.kind(),
                    status = error.status(),
                    attempts,
                    "webhook delivery failed too often; parked"
                );
            } else {
                tracing::info!(
                    event_id = %delivery.event_id,
                    kind = error.kind(),
                    status = error.status(),
                    attempts,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "webhook delivery failed; will retry"
                );
            }
            queue
                .mark_failed(delivery.id, error.kind(), error.status(), next, park)
                .await
        }
    };
    if let Err(error) = stored {
        // The row stays pending and is sent again: at least once, never lost.
        tracing::warn!(kind = error.kind(), "could not record a webhook outcome");
    }
}

fn headers(delivery: &PendingDelivery, signature: &str) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(4);
    let mut add = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            out.push((HeaderName::from_static(name), value));
        }
    };
    add(SIGNATURE_HEADER, signature);
    add("ikkuna-event-id", &delivery.event_id);
    add("ikkuna-event-type", &delivery.event_type);
    add(
        "ikkuna-delivery-attempt",
        &delivery.attempts.saturating_add(1).to_string(),
    );
    out
}

/// About `initial · 2^(failures−1)`, capped at `max`, drawn from its upper half (jitter).
pub(crate) fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    worker::backoff(initial, max, failures)
}
