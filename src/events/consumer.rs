//! The feed consumer: reads DVV's events feed from the stored position, applies consent changes
//! to the cache at once, queues webhooks, changes the reminder schedule and advances the position
//! in one transaction, then
//! polls again at once while events keep coming, every `poll_interval` when the feed is quiet,
//! and with doubling backoff while DVV or the store fails.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::position::{Committed, FeedPosition};
use super::status::FeedStatus;
use crate::config::FeedStart;
use crate::consent::ConsentCache;
use crate::dvv::{DvvClient, Event, EventType};
use crate::reminders::{self, ReminderDelays};
use crate::webhooks::WebhookEvent;

/// Most events DVV sends in one page: a shorter page means the end of the feed was reached.
pub const MAX_PAGE: usize = 1000;

/// How the consumer paces itself and where it sends webhooks.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    /// Wait between polls when the feed is quiet.
    pub poll_interval: Duration,
    /// Longest wait after failures.
    pub max_backoff: Duration,
    /// Where a first start begins.
    pub start: FeedStart,
    /// The webhook endpoints (empty: no webhooks, the feed still drives the cache).
    pub endpoints: Vec<String>,
    /// When reminders of unread messages fall due (scheduled only where there are endpoints).
    pub reminders: ReminderDelays,
}

/// Starts the consumer. It stops when `shutdown` becomes true (or its sender is dropped); a page
/// being processed is either committed whole or read again at the next start.
pub fn spawn_feed(
    dvv: DvvClient,
    consents: ConsentCache,
    position: FeedPosition,
    status: FeedStatus,
    settings: FeedSettings,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(run(dvv, consents, position, status, settings, shutdown))
}

async fn run(
    dvv: DvvClient,
    consents: ConsentCache,
    position: FeedPosition,
    status: FeedStatus,
    settings: FeedSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    // `None` until the stored position has been read.
    let mut token: Option<Option<String>> = None;
    let mut skipping = false;
    let mut failures: u32 = 0;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let wait = match step(
            &dvv,
            &consents,
            &position,
            &settings,
            &mut token,
            &mut skipping,
        )
        .await
        {
            Ok(page) => {
                failures = 0;
                let at_end = page < MAX_PAGE;
                status.page(page, at_end);
                if at_end {
                    skipping = false;
                }
                if page == 0 {
                    settings.poll_interval
                } else {
                    Duration::ZERO
                }
            }
            Err(kind) => {
                failures = failures.saturating_add(1);
                if kind == "bad_request" && failures == 1 {
                    tracing::error!(
                        "DVV refused the stored events feed position (older than DVV's 60-day \
                         retention?); revocations now rely on consent.revocation_bound_secs"
                    );
                }
                status.failure();
                let wait = backoff(settings.poll_interval, settings.max_backoff, failures);
                tracing::warn!(
                    kind,
                    failures,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "events feed poll failed"
                );
                wait
            }
        };
        if wait.is_zero() {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
    }
}

/// One poll: read the position if needed, fetch a page, apply it. Returns the page's size, or
/// the failure's kind.
async fn step(
    dvv: &DvvClient,
    consents: &ConsentCache,
    position: &FeedPosition,
    settings: &FeedSettings,
    token: &mut Option<Option<String>>,
    skipping: &mut bool,
) -> Result<usize, &'static str> {
    let from = match token {
        Some(from) => from.clone(),
        None => {
            let stored = position.load().await.map_err(|e| e.kind())?;
            *skipping = stored.is_none() && settings.start == FeedStart::Latest;
            *token = Some(stored.clone());
            stored
        }
    };
    let page = dvv
        .events(from.as_deref())
        .await
        .map_err(|e| e.kind())?
        .value;
    let count = page.events.len();
    for event in &page.events {
        apply_to_cache(consents, event);
    }
    // Other replicas (a shared store) drop these consents from their caches too.
    let changes = consent_changes(&page.events);
    if !changes.is_empty() {
        if let Err(error) = position.publish_consent_changes(&changes).await {
            tracing::warn!(kind = error.kind(), "could not publish consent changes");
        }
    }
    // A quiet feed is not written back (no disk write per poll); the very first position is, so
    // that a later first-start skip never covers events that happen after it.
    if count == 0 && from.is_some() {
        return Ok(0);
    }
    let schedule = !*skipping && !settings.endpoints.is_empty();
    let reminder_changes = reminders::changes(&page.events, &settings.reminders, schedule);
    let webhooks: Vec<WebhookEvent> = if *skipping || settings.endpoints.is_empty() {
        Vec::new()
    } else {
        page.events
            .iter()
            .filter_map(WebhookEvent::from_feed)
            .collect()
    };
    let committed = position
        .commit_page(
            from,
            page.continuation_token.clone(),
            &settings.endpoints,
            webhooks,
            &reminder_changes,
            count,
        )
        .await
        .map_err(|e| e.kind())?;
    match committed {
        Committed::Advanced { queued } => {
            if count > 0 {
                tracing::info!(events = count, queued, "events feed page applied");
            }
            *token = Some(Some(page.continuation_token));
            Ok(count)
        }
        Committed::Stale => {
            // Someone else moved the position: start again from what is stored.
            *token = None;
            Err("position_moved")
        }
    }
}

/// Consent changes reach the cache before anything else: a revocation wins over every answer
/// looked up before it, even one still in flight (see [`ConsentCache::revoke`]). Applying an
/// event twice (a page read again) is harmless.
fn apply_to_cache(consents: &ConsentCache, event: &Event) {
    match event.event_type {
        EventType::ConsentRevoked => consents.revoke(&event.metadata.consent_id),
        EventType::ConsentGranted => consents.invalidate_consent(&event.metadata.consent_id),
        EventType::MessageCreated
        | EventType::MessageRead
        | EventType::ReceiptConfirmed
        | EventType::MessageFromEndUser
        | EventType::Unknown => {}
    }
}

/// The page's consent changes as `(revoked, consent id)` pairs, for the other replicas.
fn consent_changes(events: &[Event]) -> Vec<(bool, String)> {
    events
        .iter()
        .filter_map(|event| match event.event_type {
            EventType::ConsentRevoked => Some((true, event.metadata.consent_id.clone())),
            EventType::ConsentGranted => Some((false, event.metadata.consent_id.clone())),
            _ => None,
        })
        .collect()
}

/// `initial · 2^failures`, capped at `max` (no jitter needed: one consumer per gateway).
fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    initial
        .saturating_mul(1u32 << failures.min(20))
        .min(max)
        .max(initial)
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_grows_to_the_cap() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(backoff(i, m, 1), Duration::from_millis(200));
        assert_eq!(backoff(i, m, 3), Duration::from_millis(800));
        assert_eq!(backoff(i, m, 50), m);
    }
}
