//! Consent changes across replicas: only the feed's owner reads DVV's events feed, so it logs
//! each consent change and notifies it in one transaction
//! ([`PgStore::publish_consent_changes`]); every replica `LISTEN`s on a connection of its own
//! and applies each change at once. When that connection is lost, the replica re-opens it after
//! `store.owner_retry_ms`, subscribes again, and then reads every logged change after the last
//! one it applied, so a change published while it was not listening is still applied.

use futures_util::StreamExt as _;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use super::PgStore;
use crate::store::backend::{Backend, ConsentSink};
use crate::store::types::ConsentChange;

/// The `NOTIFY` channel for consent changes.
pub const CONSENT_CHANNEL: &str = "ikkuna_consent";

/// The `application_name` of the listening connection.
pub const LISTENER_NAME: &str = "ikkuna-consent-listener";

/// Most logged changes read per catch-up query.
const CATCH_UP_BATCH: usize = 1_000;

/// Starts the listener: it applies every published consent change until `shutdown`.
pub(crate) fn spawn_consent_listener(
    store: PgStore,
    apply: ConsentSink,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Changes logged before this process connected concern caches it did not have yet.
        let mut last = store.consent_seq_at_start();
        loop {
            if *shutdown.borrow() {
                break;
            }
            match listen(&store, &apply, &mut last, &mut shutdown).await {
                Ok(()) => break,
                Err(kind) => {
                    tracing::warn!(kind, "consent listener lost its connection; reconnecting");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(store.owner_retry()) => {}
                _ = shutdown.changed() => break,
            }
        }
    })
}

/// One connection's life: `LISTEN`, catch up on what was logged since `last`, then apply
/// notifications until it fails (`Err`) or the gateway stops (`Ok`).
async fn listen(
    store: &PgStore,
    apply: &ConsentSink,
    last: &mut i64,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), &'static str> {
    let (client, mut connection) = store.dedicated(LISTENER_NAME).await.map_err(|e| e.kind())?;
    let (sender, mut received) = mpsc::unbounded_channel::<String>();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    if sender.send(note.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    let result = async {
        client
            .batch_execute(&format!("LISTEN {CONSENT_CHANNEL}"))
            .await
            .map_err(|_| "listen")?;
        // Subscribed first, then caught up: a change is either in the log read now or notified
        // after (or both: `last` skips repeats).
        let mut caught_up = 0usize;
        loop {
            let missed = Backend::consent_changes_after(store, *last, CATCH_UP_BATCH)
                .await
                .map_err(|e| e.kind())?;
            let n = missed.len();
            for change in &missed {
                deliver(apply, last, change);
            }
            caught_up += n;
            if n < CATCH_UP_BATCH {
                break;
            }
        }
        if caught_up > 0 {
            tracing::info!(caught_up, "consent listener applied changes it had missed");
        }
        tracing::debug!("consent listener ready");
        loop {
            tokio::select! {
                payload = received.recv() => match payload {
                    Some(payload) => match parse(&payload) {
                        Some(change) => deliver(apply, last, &change),
                        None => tracing::warn!("ignored an unknown consent notification"),
                    },
                    None => return Err("connection_lost"),
                },
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }
    .await;
    drop(client);
    driver.abort();
    result
}

/// Applies a change not applied yet.
fn deliver(apply: &ConsentSink, last: &mut i64, change: &ConsentChange) {
    if change.seq <= *last {
        return;
    }
    *last = change.seq;
    apply(change);
}

/// `<seq>:revoked:<consentId>` or `<seq>:changed:<consentId>`.
fn parse(payload: &str) -> Option<ConsentChange> {
    let (seq, rest) = payload.split_once(':')?;
    let (kind, consent_id) = rest.split_once(':')?;
    let revoked = match kind {
        "revoked" => true,
        "changed" => false,
        _ => return None,
    };
    if consent_id.is_empty() {
        return None;
    }
    Some(ConsentChange {
        seq: seq.parse().ok()?,
        revoked,
        consent_id: consent_id.to_owned(),
    })
}
