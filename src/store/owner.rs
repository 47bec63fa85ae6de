//! One owner for the singleton work (the events feed, the webhook dispatcher, the ledger's
//! retention) among replicas sharing a PostgreSQL store: the owner holds a session advisory lock
//! on a connection of its own. When the owner dies, PostgreSQL ends its session and releases the
//! lock (at once for a killed process; after TCP keepalive for a lost machine), and another
//! replica, retrying every `store.owner_retry_ms`, takes over. An owner that cannot reach its
//! connection gives the work up within one retry period. Work done twice during a handover is
//! harmless: pages commit by compare-and-set and deliveries are claimed.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::pg::PgStore;

/// The advisory lock key of the owner.
const OWNER_LOCK: i64 = 0x0069_6b6b_756e_6103;

/// Starts the election: the returned receiver is true while this replica owns the singleton
/// work. On `shutdown` the lock is released (the connection closed) so another replica takes over
/// at once.
pub fn spawn_owner_election(
    store: PgStore,
    mut shutdown: watch::Receiver<bool>,
) -> (watch::Receiver<bool>, JoinHandle<()>) {
    let (owner, owned) = watch::channel(false);
    let task = tokio::spawn(async move {
        let retry = store.owner_retry();
        loop {
            if *shutdown.borrow() {
                break;
            }
            match hold(&store, &owner, &mut shutdown, retry).await {
                // Stopping (or the stop signal's sender is gone).
                Ok(()) => break,
                Err(kind) => tracing::warn!(kind, "owner election: connection lost"),
            }
            owner.send_replace(false);
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                _ = shutdown.changed() => break,
            }
        }
        owner.send_replace(false);
    });
    (owned, task)
}

/// One connection's life: try the lock every `retry`; once held, check the connection every
/// `retry` and keep ownership while it answers. Returns `Ok` on shutdown.
async fn hold(
    store: &PgStore,
    owner: &watch::Sender<bool>,
    shutdown: &mut watch::Receiver<bool>,
    retry: Duration,
) -> Result<(), &'static str> {
    let (client, connection) = store.dedicated().await.map_err(|e| e.kind())?;
    let mut driver = tokio::spawn(connection);
    let result = async {
        loop {
            let answer = tokio::time::timeout(
                retry.max(Duration::from_secs(1)),
                client.query_one("SELECT pg_try_advisory_lock($1)", &[&OWNER_LOCK]),
            )
            .await;
            let held: bool = match answer {
                Ok(Ok(row)) => row.get(0),
                Ok(Err(_)) => return Err("query"),
                Err(_) => return Err("timeout"),
            };
            if held {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                _ = &mut driver => return Err("connection_closed"),
                _ = shutdown.changed() => return Ok(()),
            }
        }
        tracing::info!("this replica now owns the events feed and webhook dispatch");
        owner.send_replace(true);
        loop {
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                _ = &mut driver => return Err("connection_closed"),
                _ = shutdown.changed() => return Ok(()),
            }
            let alive = tokio::time::timeout(
                retry.max(Duration::from_secs(1)),
                client.simple_query("SELECT 1"),
            )
            .await;
            if !matches!(alive, Ok(Ok(_))) {
                return Err("check_failed");
            }
        }
    }
    .await;
    if *owner.borrow() {
        tracing::info!("this replica gave up the singleton work");
    }
    owner.send_replace(false);
    drop(client);
    driver.abort();
    result
}

/// Runs the work `start` spawns while this replica is the owner: started when ownership is won,
/// stopped (its stop signal set, its tasks awaited) when ownership is lost or on `shutdown`, and
/// started again on the next win.
pub fn spawn_while_owner<F>(
    mut owned: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
    start: F,
) -> JoinHandle<()>
where
    F: Fn(watch::Receiver<bool>) -> Vec<JoinHandle<()>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            loop {
                if *shutdown.borrow() {
                    return;
                }
                if *owned.borrow_and_update() {
                    break;
                }
                tokio::select! {
                    changed = owned.changed() => if changed.is_err() { return },
                    changed = shutdown.changed() => if changed.is_err() { return },
                }
            }
            let (stop, stopped) = watch::channel(false);
            let tasks = start(stopped);
            loop {
                if *shutdown.borrow() || !*owned.borrow_and_update() {
                    break;
                }
                tokio::select! {
                    changed = owned.changed() => if changed.is_err() { break },
                    changed = shutdown.changed() => if changed.is_err() { break },
                }
            }
            let _ = stop.send(true);
            for task in tasks {
                let _ = task.await;
            }
        }
    })
}
