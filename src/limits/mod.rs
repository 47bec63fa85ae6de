//! Rate limits (GCRA, from `governor`): per operator client (its certificate, or its address
//! when it has none), per citizen (keyed by the consent cache's keyed pseudonym, never the
//! identity code), and one overall budget for requests that may reach DVV, so that one busy
//! citizen or one misbehaving client cannot spend the operator's share of DVV.
//!
//! Keyed limiters keep a state per key they have seen; [`spawn_housekeeping`] drops idle states
//! and returns the memory periodically (governor's maps grow without bound otherwise).
//! This module knows nothing of HTTP: a refusal says which limit and how long to wait.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::consent::CitizenKey;

/// Rates and bursts of each limit; a rate of 0 turns that limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Requests per minute one citizen may make.
    pub citizen_per_minute: u32,
    /// Requests one citizen may make at once before the rate applies.
    pub citizen_burst: u32,
    /// Requests per second one operator client (certificate or address) may make.
    pub client_per_second: u32,
    /// Burst of one operator client.
    pub client_burst: u32,
    /// Requests per second, all together, that may reach DVV.
    pub dvv_per_second: u32,
    /// Burst of the overall DVV budget.
    pub dvv_burst: u32,
}

impl Default for LimitSettings {
    /// 120/min (burst 30) per citizen, 200/s (burst 400) per client, 500/s (burst 1000) to DVV.
    fn default() -> Self {
        Self {
            citizen_per_minute: 120,
            citizen_burst: 30,
            client_per_second: 200,
            client_burst: 400,
            dvv_per_second: 500,
            dvv_burst: 1000,
        }
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The operator client's own limit.
    Client,
    /// The citizen's limit.
    Citizen,
    /// The overall budget toward DVV.
    Dvv,
}

impl Scope {
    /// A metric label: `client`, `citizen` or `dvv`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Citizen => "citizen",
            Self::Dvv => "dvv",
        }
    }
}

/// A request over a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Which limit.
    pub scope: Scope,
    /// How long until a request would be allowed.
    pub retry_after: Duration,
}

impl Refusal {
    /// Whole seconds to put in `Retry-After` (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// Who an operator client is: its certificate (SHA-256 of the leaf) under mutual TLS, else
/// its network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// Fingerprint of the client certificate.
    Certificate([u8; 32]),
    /// The peer's IP address.
    Address(IpAddr),
}

/// The limiters of one gateway process.
pub struct Limits {
    citizen: Option<DefaultKeyedRateLimiter<CitizenKey>>,
    client: Option<DefaultKeyedRateLimiter<ClientKey>>,
    dvv: Option<DefaultDirectRateLimiter>,
    clock: DefaultClock,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (citizens, clients) = self.tracked();
        f.debug_struct("Limits")
            .field("citizens", &citizens)
            .field("clients", &clients)
            .finish_non_exhaustive()
    }
}

fn quota(per: fn(NonZeroU32) -> Quota, rate: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Some(per(rate).allow_burst(burst))
}

impl Limits {
    /// Limiters for `settings`.
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            citizen: quota(
                Quota::per_minute,
                settings.citizen_per_minute,
                settings.citizen_burst,
            )
            .map(DefaultKeyedRateLimiter::keyed),
            client: quota(
                Quota::per_second,
                settings.client_per_second,
                settings.client_burst,
            )
            .map(DefaultKeyedRateLimiter::keyed),
            dvv: quota(
                Quota::per_second,
                settings.dvv_per_second,
                settings.dvv_burst,
            )
            .map(DefaultDirectRateLimiter::direct),
            clock: DefaultClock::default(),
        }
    }

    /// No limits at all.
    pub fn unlimited() -> Self {
        Self::new(LimitSettings {
            citizen_per_minute: 0,
            citizen_burst: 0,
            client_per_second: 0,
            client_burst: 0,
            dvv_per_second: 0,
            dvv_burst: 0,
        })
    }

    fn refuse(&self, scope: Scope, wait: Duration) -> Refusal {
        crate::telemetry::metrics::with(|m| {
            m.rate_limited.with_label_values(&[scope.label()]).inc()
        });
        Refusal {
            scope,
            retry_after: wait,
        }
    }

    /// Counts one request of an operator client.
    pub fn check_client(&self, key: &ClientKey) -> Result<(), Refusal> {
        match &self.client {
            Some(limiter) => limiter
                .check_key(key)
                .map_err(|n| self.refuse(Scope::Client, n.wait_time_from(self.clock.now()))),
            None => Ok(()),
        }
    }

    /// Counts one request for a citizen.
    pub fn check_citizen(&self, key: &CitizenKey) -> Result<(), Refusal> {
        match &self.citizen {
            Some(limiter) => limiter
                .check_key(key)
                .map_err(|n| self.refuse(Scope::Citizen, n.wait_time_from(self.clock.now()))),
            None => Ok(()),
        }
    }

    /// Counts one request that may reach DVV against the overall budget.
    pub fn check_dvv(&self) -> Result<(), Refusal> {
        match &self.dvv {
            Some(limiter) => limiter
                .check()
                .map_err(|n| self.refuse(Scope::Dvv, n.wait_time_from(self.clock.now()))),
            None => Ok(()),
        }
    }

    /// Drops the state of keys idle long enough to be back at a full burst, and returns memory.
    pub fn housekeeping(&self) {
        if let Some(l) = &self.citizen {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.client {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// How many citizens and clients currently have a state.
    pub fn tracked(&self) -> (usize, usize) {
        (
            self.citizen.as_ref().map_or(0, |l| l.len()),
            self.client.as_ref().map_or(0, |l| l.len()),
        )
    }
}

/// Runs [`Limits::housekeeping`] every `every` until `stop` turns true.
pub fn spawn_housekeeping(
    limits: Arc<Limits>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => limits.housekeeping(),
                _ = stop.changed() => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn settings(burst: u32) -> LimitSettings {
        LimitSettings {
            citizen_per_minute: 1,
            citizen_burst: burst,
            client_per_second: 1,
            client_burst: burst,
            dvv_per_second: 1,
            dvv_burst: burst,
        }
    }

    #[test]
    fn a_burst_passes_then_the_next_is_refused_with_a_wait() {
        let limits = Limits::new(settings(3));
        let client = ClientKey::Address(IpAddr::V4(Ipv4Addr::LOCALHOST));
        for _ in 0..3 {
            limits.check_client(&client).expect("within burst");
        }
        let refusal = limits.check_client(&client).expect_err("over burst");
        assert_eq!(refusal.scope, Scope::Client);
        assert!(refusal.retry_after_secs() >= 1);
        // Another client has its own budget.
        let other = ClientKey::Certificate([1; 32]);
        limits.check_client(&other).expect("own budget");
    }

    #[test]
    fn the_dvv_budget_is_shared_and_zero_means_off() {
        let limits = Limits::new(settings(2));
        limits.check_dvv().expect("1");
        limits.check_dvv().expect("2");
        assert_eq!(limits.check_dvv().expect_err("3").scope, Scope::Dvv);
        let off = Limits::unlimited();
        for _ in 0..10_000 {
            off.check_dvv().expect("no limit");
        }
    }

    #[test]
    fn housekeeping_forgets_idle_keys() {
        let limits = Limits::new(LimitSettings {
            client_per_second: 1000,
            client_burst: 1,
            ..settings(1)
        });
        for i in 0..200u8 {
            let _ =
                limits.check_client(&ClientKey::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i))));
        }
        assert_eq!(limits.tracked().1, 200);
        std::thread::sleep(Duration::from_millis(20));
        limits.housekeeping();
        assert_eq!(limits.tracked().1, 0, "idle states dropped");
    }
}
