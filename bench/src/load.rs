//! The load generator: persistent connections, either closed-loop (as fast as answers come back:
//! the saturation throughput) or open-loop at a constant offered rate (wrk2-style: each request
//! has an intended start time and its latency is counted from then, so a stall is charged to every
//! request it delayed and the tail is not understated).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::Full;
use tokio::time::Instant;

use crate::client::{drain, Conn, Endpoint};

/// Which paths the requests ask for.
#[derive(Clone)]
pub enum Paths {
    /// Every request asks for the same path.
    Fixed(String),
    /// Each request takes the next path from the list, once; the run ends when they run out.
    Distinct(Arc<Vec<String>>, Arc<AtomicUsize>),
}

impl Paths {
    fn next(&self) -> Option<&str> {
        match self {
            Self::Fixed(path) => Some(path),
            Self::Distinct(list, at) => list
                .get(at.fetch_add(1, Ordering::Relaxed))
                .map(String::as_str),
        }
    }
}

/// One load run.
#[derive(Clone)]
pub struct Spec {
    /// What to ask for.
    pub paths: Paths,
    /// `Authorization` values, used in turn (one citizen assertion per request, or one token).
    pub auth: Arc<Vec<HeaderValue>>,
    /// Persistent connections.
    pub connections: usize,
    /// How long new requests are started.
    pub duration: Duration,
    /// Requests per second offered in total (open loop); `None`: closed loop, as fast as possible.
    pub rate: Option<f64>,
    /// Longest wait for one complete answer before it counts as an error.
    pub request_timeout: Duration,
}

/// What a run measured.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Answers with a 2xx status, read to the end.
    pub ok: u64,
    /// Failed connections, non-2xx answers, broken bodies, timeouts.
    pub errors: u64,
    /// Body bytes received in the 2xx answers.
    pub bytes: u64,
    /// From the common start to the last answer.
    pub elapsed: Duration,
    /// Latency of each 2xx answer, microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// The first failure, for the operator to see why (a status or an error kind).
    pub first_error: Option<String>,
}

impl Outcome {
    /// Completed requests per second.
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of latency in milliseconds (0 when nothing completed).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return 0.0;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.latencies_us[rank - 1] as f64 / 1000.0
    }
}

/// Runs the load: opens every connection first, then starts them together.
pub async fn run(endpoint: &Endpoint, spec: &Spec) -> anyhow::Result<Outcome> {
    let mut conns = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections.max(1) {
        conns.push(endpoint.connect().await?);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let n = conns.len();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, conn) in conns.into_iter().enumerate() {
        let (endpoint, spec) = (endpoint.clone(), spec.clone());
        tasks.spawn(async move { one_connection(endpoint, spec, conn, index, n, start).await });
    }
    let mut total = Outcome::default();
    let mut last = start;
    while let Some(done) = tasks.join_next().await {
        let (part, finished) = done?;
        total.ok += part.ok;
        total.errors += part.errors;
        total.bytes += part.bytes;
        total.latencies_us.extend(part.latencies_us);
        total.first_error = total.first_error.or(part.first_error);
        last = last.max(finished);
    }
    total.elapsed = match spec.rate {
        Some(_) => spec.duration,
        None => last.saturating_duration_since(start),
    };
    total.latencies_us.sort_unstable();
    Ok(total)
}

async fn one_connection(
    endpoint: Endpoint,
    spec: Spec,
    conn: Conn,
    index: usize,
    connections: usize,
    start: Instant,
) -> (Outcome, Instant) {
    let mut out = Outcome::default();
    let mut conn = Some(conn);
    let deadline = start + spec.duration;
    let interval = spec
        .rate
        .map(|rate| Duration::from_secs_f64(connections as f64 / rate.max(1e-3)));
    // Spread the connections' schedules over one interval so they do not fire in lockstep.
    let mut intended = start
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(index as f64 / connections as f64)
        });
    let mut turn = index;
    tokio::time::sleep_until(intended).await;
    let mut last = start;
    loop {
        let now = Instant::now();
        if now >= deadline || (interval.is_some() && intended >= deadline) {
            break;
        }
        if let Some(i) = interval {
            if intended > now {
                tokio::time::sleep_until(intended).await;
            }
            // Open loop: latency counts from the intended start even if we are behind.
            intended += i;
        }
        let Some(path) = spec.paths.next() else {
            break;
        };
        let begun = match interval {
            Some(i) => intended - i,
            None => Instant::now(),
        };
        let auth = spec.auth[turn % spec.auth.len().max(1)].clone();
        turn += connections;
        let c = match conn.take() {
            Some(c) => c,
            None => match endpoint.connect().await {
                Ok(c) => c,
                Err(_) => {
                    out.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        match tokio::time::timeout(spec.request_timeout, one_request(c, path, auth)).await {
            Ok(Ok((c, bytes, status))) if status.is_success() => {
                let done = Instant::now();
                out.ok += 1;
                out.bytes += bytes;
                out.latencies_us.push(
                    u64::try_from(done.duration_since(begun).as_micros()).unwrap_or(u64::MAX),
                );
                last = done;
                conn = Some(c);
            }
            Ok(Ok((c, _, status))) => {
                // A refusal read to its end: the connection stays usable.
                out.errors += 1;
                out.first_error
                    .get_or_insert_with(|| format!("status {status}"));
                last = Instant::now();
                conn = Some(c);
            }
            Ok(Err(e)) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| format!("{e:#}"));
                last = Instant::now();
            }
            Err(_) => {
                out.errors += 1;
                out.first_error
                    .get_or_insert_with(|| "timed out".to_owned());
                last = Instant::now();
            }
        }
    }
    (out, last)
}

/// One request, its answer read to the end: the connection back, the body bytes, the status.
async fn one_request(
    mut conn: Conn,
    path: &str,
    auth: HeaderValue,
) -> anyhow::Result<(Conn, u64, http::StatusCode)> {
    let req = Request::get(path)
        .header(http::header::AUTHORIZATION, auth)
        .body(Full::new(Bytes::new()))?;
    let resp = conn.send(req).await?;
    let status = resp.status();
    let bytes = drain(resp.into_body()).await?;
    Ok((conn, bytes, status))
}
