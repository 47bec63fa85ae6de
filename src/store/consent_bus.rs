//! Consent changes across replicas: only the feed's owner reads DVV's events feed, so it
//! publishes each consent change with `NOTIFY` ([`PgStore::publish_consent_changes`]) and every
//! replica `LISTEN`s on a connection of its own and applies the change to its cache at once.
//! While that connection is down (it is re-opened after `store.owner_retry_ms`), a change may be
//! missed; `consent.revocation_bound_secs` stays the worst case, as it is while DVV's feed is down.

use futures_util::StreamExt as _;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use super::pg::PgStore;
use crate::consent::ConsentCache;

/// The `NOTIFY` channel for consent changes.
pub const CONSENT_CHANNEL: &str = "ikkuna_consent";

/// Starts the listener: it applies every published consent change to `consents` until
/// `shutdown`.
pub fn spawn_consent_listener(
    store: PgStore,
    consents: ConsentCache,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *shutdown.borrow() {
                break;
            }
            match listen(&store, &consents, &mut shutdown).await {
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

/// One connection's life: `LISTEN`, then apply notifications until it fails (`Err`) or the
/// gateway stops (`Ok`).
async fn listen(
    store: &PgStore,
    consents: &ConsentCache,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), &'static str> {
    let (client, mut connection) = store.dedicated().await.map_err(|e| e.kind())?;
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
        tracing::debug!("consent listener ready");
        loop {
            tokio::select! {
                payload = received.recv() => match payload {
                    Some(payload) => apply(consents, &payload),
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

/// Applies one payload (`revoked:<consentId>` or `changed:<consentId>`); anything else is ignored.
fn apply(consents: &ConsentCache, payload: &str) {
    match payload.split_once(':') {
        Some(("revoked", consent_id)) if !consent_id.is_empty() => consents.revoke(consent_id),
        Some(("changed", consent_id)) if !consent_id.is_empty() => {
            consents.invalidate_consent(consent_id);
        }
        _ => tracing::warn!("ignored an unknown consent notification"),
    }
}
