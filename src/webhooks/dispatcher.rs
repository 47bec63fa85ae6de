//! The dispatcher: sends due deliveries, a few at a time, signed at each attempt; retries with
//! jittered exponential backoff and parks a delivery after the configured number of failures.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::{TimeDelta, Utc};
use http::{HeaderName, HeaderValue};
use rand::Rng as _;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::client::WebhookClient;
use super::queue::{PendingDelivery, WebhookQueue, DELIVERED_RETENTION};
use super::signature::{sign, SIGNATURE_HEADER};
use crate::config::Secret;

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
pub fn spawn_dispatcher(
    queue: WebhookQueue,
    client: WebhookClient,
    secret: Secret,
    settings: DispatcherSettings,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(run(queue, client, secret, settings, shutdown))
}

async fn run(
    queue: WebhookQueue,
    client: WebhookClient,
    secret: Secret,
    settings: DispatcherSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let concurrency = settings.concurrency.max(1);
    let mut in_flight: JoinSet<()> = JoinSet::new();
    // Task id → queue row, so a finished (or panicked) attempt frees its row.
    let mut busy: HashMap<tokio::task::Id, i64> = HashMap::new();
    let mut store_failures: u32 = 0;
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(tokio::time::Instant::now());
            if let Err(error) = queue.prune_delivered(DELIVERED_RETENTION).await {
                tracing::warn!(kind = error.kind(), "could not prune delivered webhooks");
            }
        }
        let mut wait = settings.poll_interval;
        if busy.len() < concurrency {
            let now = Utc::now();
            // A shared store claims what it returns (never the ones in flight): ask only for
            // free slots.
            let wanted = if queue.claims() {
                concurrency - busy.len()
            } else {
                concurrency + busy.len()
            };
            match queue.due(now, wanted).await {
                Ok(due) => {
                    store_failures = 0;
                    for delivery in due {
                        if busy.len() >= concurrency {
                            break;
                        }
                        if busy.values().any(|id| *id == delivery.id) {
                            continue;
                        }
                        let id = delivery.id;
                        let task = in_flight.spawn(deliver_one(
                            queue.clone(),
                            client.clone(),
                            secret.clone(),
                            settings.clone(),
                            delivery,
                        ));
                        busy.insert(task.id(), id);
                    }
                    if busy.len() < concurrency {
                        if let Ok(Some(at)) = queue.next_due_after(now).await {
                            let until = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                            wait = wait.min(until);
                        }
                    }
                }
                Err(error) => {
                    store_failures = store_failures.saturating_add(1);
                    tracing::warn!(kind = error.kind(), "webhook queue unreadable; paused");
                    wait = wait.min(backoff(
                        settings.initial_backoff,
                        settings.max_backoff,
                        store_failures,
                    ));
                }
            }
        }
        tokio::select! {
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                let id = match &done {
                    Ok((id, ())) => *id,
                    Err(error) => {
                        // The row stays pending and is sent again at its next due time.
                        tracing::warn!("a webhook delivery task failed");
                        error.id()
                    }
                };
                busy.remove(&id);
            }
            () = queue.woken() => {}
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// One attempt: sign with a fresh timestamp, POST, record the outcome.
async fn deliver_one(
    queue: WebhookQueue,
    client: WebhookClient,
    secret: Secret,
    settings: DispatcherSettings,
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
    let exponent = failures.saturating_sub(1).min(30);
    let ceiling = initial.saturating_mul(1u32 << exponent).min(max);
    let floor = ceiling / 2;
    if ceiling <= floor {
        return ceiling;
    }
    rand::rng().random_range(floor..=ceiling)
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_within_bounds() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for failures in 1..40 {
            let d = backoff(initial, max, failures);
            assert!(d <= max, "{failures}: {d:?}");
            let ceiling = (initial * 2u32.pow(failures.saturating_sub(1).min(20))).min(max);
            assert!(d >= ceiling / 2, "{failures}: {d:?}");
        }
    }
}
