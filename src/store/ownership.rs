//! Who runs the singleton work (the events feed, webhook dispatch, retention): a flag that the
//! backend's election raises and lowers, and — for a time-limited lease — the instant until which
//! this process may act as owner. Workers check [`Ownership::is_held`] before each claim and each
//! send, so a process that was frozen (SIGSTOP, a stalled VM) past its lease does nothing as owner
//! when it wakes, even before its election task has run again.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// This process's view of the singleton work's ownership. Cheap to clone.
#[derive(Clone)]
pub struct Ownership {
    owned: watch::Receiver<bool>,
    until: Arc<Mutex<Option<Instant>>>,
}

/// The election's side: grants and withdraws ownership.
pub(crate) struct Grant {
    owned: watch::Sender<bool>,
    until: Arc<Mutex<Option<Instant>>>,
}

impl Ownership {
    /// A new, not yet held ownership and the election's handle on it.
    pub(crate) fn channel() -> (Grant, Self) {
        let (owned, receiver) = watch::channel(false);
        let until = Arc::new(Mutex::new(None));
        (
            Grant {
                owned,
                until: Arc::clone(&until),
            },
            Self {
                owned: receiver,
                until,
            },
        )
    }

    /// Ownership held for as long as `shutdown` is false: the only process on its store.
    pub(crate) fn sole(mut shutdown: watch::Receiver<bool>) -> (Self, JoinHandle<()>) {
        let (grant, ownership) = Self::channel();
        grant.hold(None);
        let task = tokio::spawn(async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
            grant.withdraw();
        });
        (ownership, task)
    }

    /// True while this process owns the singleton work and its lease has not run out.
    pub fn is_held(&self) -> bool {
        if !*self.owned.borrow() {
            return false;
        }
        match *lock(&self.until) {
            Some(until) => Instant::now() < until,
            None => true,
        }
    }

    /// The flag itself, to wait for changes (true while owned).
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.owned.clone()
    }
}

impl Grant {
    /// This process owns the work, until `until` unless renewed (`None`: no time limit).
    pub(crate) fn hold(&self, until: Option<Instant>) {
        *lock(&self.until) = until;
        self.owned
            .send_if_modified(|owned| !std::mem::replace(owned, true));
    }

    /// This process no longer owns the work.
    pub(crate) fn withdraw(&self) {
        self.owned
            .send_if_modified(|owned| std::mem::replace(owned, false));
    }

    /// Whether ownership is currently granted (and its lease, if any, still running).
    pub(crate) fn held(&self) -> bool {
        *self.owned.borrow() && lock(&self.until).is_none_or(|until| Instant::now() < until)
    }

    /// Whether ownership is flagged as granted (its lease may have run out since).
    pub(crate) fn flagged(&self) -> bool {
        *self.owned.borrow()
    }

    /// The instant the current lease runs out, if granted with one.
    pub(crate) fn until(&self) -> Option<Instant> {
        *lock(&self.until)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs the work `start` spawns while this process owns the singleton work: started when
/// ownership is won, stopped (its stop signal set, its tasks awaited) when ownership is lost or
/// on `shutdown`, and started again on the next win.
pub fn spawn_while_owner<F>(
    ownership: Ownership,
    mut shutdown: watch::Receiver<bool>,
    start: F,
) -> JoinHandle<()>
where
    F: Fn(watch::Receiver<bool>) -> Vec<JoinHandle<()>> + Send + 'static,
{
    let mut owned = ownership.watch();
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
