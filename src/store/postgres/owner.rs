//! One owner for the singleton work (the events feed, the webhook dispatcher, the ledger's
//! retention) among replicas sharing the database: the owner holds a *lease* — a row naming it,
//! valid until a time on the database's clock — and renews it every third of
//! `store.owner_lease_ms`. Another replica, trying every `store.owner_retry_ms`, takes the lease
//! once it has run out. The owner counts its lease from before it asked for it, on its own
//! monotonic clock, and stops acting as owner when that runs out without a renewal, so it has
//! always stopped before anyone else can start — whether it lost its connection, the database
//! restarted, or the whole process was frozen (SIGSTOP, a stalled machine) with its TCP session
//! still open. On shutdown the lease is released, and another replica takes over at once.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::PgStore;
use crate::store::ownership::Ownership;

/// Starts the election; see the module documentation.
pub(crate) fn spawn_owner_election(
    store: PgStore,
    mut shutdown: watch::Receiver<bool>,
) -> (Ownership, JoinHandle<()>) {
    let (grant, ownership) = Ownership::channel();
    let task = tokio::spawn(async move {
        let (lease, retry) = (store.owner_lease(), store.owner_retry());
        let renew_every = lease / 3;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let asked = Instant::now();
            // A renewal that cannot finish within a third of the lease is as good as failed.
            let answer = tokio::time::timeout(renew_every, try_acquire(&store, lease)).await;
            let was_held = grant.held();
            match answer {
                Ok(Ok(true)) => {
                    grant.hold(Some(asked + lease));
                    if !was_held {
                        tracing::info!(
                            "this replica now owns the events feed and webhook dispatch"
                        );
                    }
                }
                Ok(Ok(false)) => {
                    if was_held {
                        tracing::warn!("another replica took the singleton work over");
                    }
                    grant.withdraw();
                }
                Ok(Err(kind)) => tracing::warn!(kind, "owner lease: renewal failed"),
                Err(_) => tracing::warn!("owner lease: renewal timed out"),
            }
            let next = if grant.held() { renew_every } else { retry };
            let expiry = grant.until().filter(|_| grant.held());
            tokio::select! {
                () = tokio::time::sleep(next) => {}
                () = sleep_until_opt(expiry) => {}
                _ = shutdown.changed() => {}
            }
            if grant.flagged() && !grant.held() {
                tracing::warn!(
                    "owner lease ran out without renewal: this replica gave up the singleton work"
                );
                grant.withdraw();
            }
        }
        if grant.held() {
            grant.withdraw();
            // Let another replica take over at once rather than after the lease.
            let released = tokio::time::timeout(Duration::from_secs(2), release(&store)).await;
            if !matches!(released, Ok(Ok(()))) {
                tracing::warn!("owner lease: could not release it on shutdown");
            }
            tracing::info!("this replica gave up the singleton work");
        }
        grant.withdraw();
    });
    (ownership, task)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Takes the lease if it is free or run out, or renews it if this process holds it; true when
/// this process holds it now.
async fn try_acquire(store: &PgStore, lease: Duration) -> Result<bool, &'static str> {
    let millis = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let client = store.client().await.map_err(|e| e.kind())?;
    let row = client
        .query_opt(
            "INSERT INTO owner_lease (id, holder, expires_at, acquired_at)
             VALUES (1, $1, clock_timestamp() + $2 * interval '1 millisecond', clock_timestamp())
             ON CONFLICT (id) DO UPDATE
                 SET holder = excluded.holder,
                     expires_at = excluded.expires_at,
                     acquired_at = CASE WHEN owner_lease.holder = excluded.holder
                                        THEN owner_lease.acquired_at
                                        ELSE excluded.acquired_at END
                 WHERE owner_lease.holder = excluded.holder
                    OR owner_lease.expires_at < clock_timestamp()
             RETURNING holder",
            &[&store.holder(), &(millis as f64)],
        )
        .await
        .map_err(|_| "query")?;
    Ok(row.is_some())
}

/// Gives the lease up (only if this process still holds it).
async fn release(store: &PgStore) -> Result<(), &'static str> {
    let client = store.client().await.map_err(|e| e.kind())?;
    client
        .execute(
            "DELETE FROM owner_lease WHERE id = 1 AND holder = $1",
            &[&store.holder()],
        )
        .await
        .map_err(|_| "query")?;
    Ok(())
}
