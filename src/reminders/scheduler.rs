//! Fires due reminders: each one's webhook is queued in the same store transaction that advances
//! or ends its schedule row (see [`crate::store::Store::fire_reminders`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::clock::Clock;
use crate::events::FeedStatus;
use crate::store::{ReminderDelivery, Store, StoreError};
use crate::webhooks::WebhookEvent;

/// Most reminders fired in one transaction.
const BATCH: usize = 100;

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Most reminders per message.
    pub max_count: u32,
    /// How often the schedule is looked at.
    pub poll_interval: Duration,
    /// The webhook endpoints each reminder goes to.
    pub endpoints: Vec<String>,
}

/// Starts the scheduler (on the replica that owns the singleton work); it stops when `shutdown`
/// turns true. `feed` tells how far the events feed has caught up: a reminder fires only when
/// the feed reached its end after the reminder fell due, so a read DVV reported before then has
/// cancelled it.
pub fn spawn_scheduler(
    store: Store,
    clock: Arc<dyn Clock>,
    feed: FeedStatus,
    settings: SchedulerSettings,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let build: ReminderDelivery =
            Arc::new(|fired| crate::webhooks::delivery(&WebhookEvent::reminder(fired)));
        loop {
            if *shutdown.borrow() {
                return;
            }
            let wait = match fire_due(&store, clock.as_ref(), &feed, &settings, &build).await {
                Ok(n) if n >= BATCH => Duration::ZERO,
                Ok(_) => settings.poll_interval,
                Err(error) => {
                    tracing::warn!(kind = error.kind(), "reminder schedule unreadable");
                    settings.poll_interval
                }
            };
            if wait.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    })
}

/// One look at the schedule: fires what fell due before the feed last caught up.
async fn fire_due(
    store: &Store,
    clock: &dyn Clock,
    feed: &FeedStatus,
    settings: &SchedulerSettings,
    build: &ReminderDelivery,
) -> Result<usize, StoreError> {
    let Some(horizon) = horizon(clock.now(), feed) else {
        return Ok(0);
    };
    let fired = store
        .fire_reminders(
            horizon,
            BATCH,
            settings.max_count,
            &settings.endpoints,
            Arc::clone(build),
        )
        .await?;
    if !fired.is_empty() {
        tracing::info!(reminders = fired.len(), "unread-message reminders queued");
    }
    Ok(fired.len())
}

/// The latest due time that may fire: `now` less the feed's lag (how long ago it last reached
/// the end). `None` while the feed never reached it (a read may not be known yet).
fn horizon(now: DateTime<Utc>, feed: &FeedStatus) -> Option<DateTime<Utc>> {
    let lag = feed.stats().lag?;
    Some(now - TimeDelta::from_std(lag).ok()?)
}
