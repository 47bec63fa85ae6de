//! Chaos under load: a mixed load (inbox lists, first reads of messages, attachment streams)
//! while the sandbox injects, in turns, latency, 5xx answers, dropped connections, bodies that
//! stall half-way, and a mix of all four. Checked:
//!
//! - every request is answered before a client deadline slightly above the gateway's own
//!   (`2 × dvv.call_timeout_ms + 1 s`: a consent lookup and a message call), with a success or
//!   a 5xx carrying `{"reason"}`; an attachment whose DVV body stalls is cut off by the gateway
//!   within `dvv.body_idle_timeout_ms` (the only signal possible once the head is out);
//! - when the faults stop, requests succeed again;
//! - DVV ends with exactly one opening per message whose body was released, and none other;
//! - the webhook receiver gets every event of DVV's feed, each exactly once;
//! - open descriptors and RSS return to near their baseline (slack documented in RELIABILITY.md).

mod common;
mod receiver;
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::HttpsClient;
use http_body_util::{BodyExt, Full};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const CALL_TIMEOUT_MS: u64 = 1500;
const BODY_IDLE_MS: u64 = 1000;
/// The client's deadline for a response head: the gateway's worst case plus one second.
const HEAD_DEADLINE: Duration = Duration::from_millis(2 * CALL_TIMEOUT_MS + 1000);
/// The client's limit between two body chunks of a stream.
const CHUNK_DEADLINE: Duration = Duration::from_millis(BODY_IDLE_MS + 1000);
const WORKERS: usize = 4;
/// Messages in play during the warm-up, and added by each fault phase.
const NEW_PER_PHASE: usize = 12;
const ATTACHMENT_BYTES: u64 = 256 * 1024;
/// Descriptor and RSS slack allowed after the run (pooled connections, allocator arenas).
const FD_SLACK: usize = 16;
const RSS_SLACK_KIB: u64 = 32 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    Clear5xx(u16),
    /// Head 200 sent, then the gateway ended the stream early (DVV stalled or dropped).
    StreamCut,
    /// Anything else: an unclear status, a 5xx without a reason, a hang, a broken connection.
    Bad,
}

#[derive(Clone)]
struct Target {
    citizen: String,
    message: i64,
    attachment: Option<i64>,
}

#[derive(Default)]
struct Tally {
    outcomes: BTreeMap<(&'static str, Outcome), usize>,
    /// Per phase: (answered, succeeded).
    phases: BTreeMap<&'static str, (usize, usize)>,
    /// Messages whose body (or an attachment head) left the gateway.
    released: BTreeSet<i64>,
    bad: Vec<String>,
    /// Requests made in the recovery phase after its grace period that did not succeed.
    recovery_failures: Vec<String>,
}

struct Load {
    client: HttpsClient,
    base: String,
    tokens: HashMap<String, String>,
    targets: Vec<Target>,
    tally: Mutex<Tally>,
    phase: Mutex<(&'static str, Instant)>,
    /// How many of `targets` are in play: each phase adds unread messages, so first openings
    /// happen under every kind of fault, not only before them.
    pool: std::sync::atomic::AtomicUsize,
}

impl Load {
    async fn head(
        &self,
        path: &str,
        token: &str,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        let req = http::Request::builder()
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(HEAD_DEADLINE, self.client.request(req)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(format!("connection: {e}")),
            Err(_) => Err(format!("no answer within {HEAD_DEADLINE:?}")),
        }
    }

    /// Reads a whole body, each chunk within the chunk deadline.
    async fn body(mut body: hyper::body::Incoming) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        loop {
            match tokio::time::timeout(CHUNK_DEADLINE, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        out.extend_from_slice(data);
                    }
                }
                Ok(Some(Err(e))) => return Err(format!("body error: {e}")),
                Ok(None) => return Ok(out),
                Err(_) => return Err(format!("body stalled past {CHUNK_DEADLINE:?}")),
            }
        }
    }

    /// A buffered answer: 200, or a 5xx with a reason.
    async fn json_call(&self, path: &str, token: &str) -> (Outcome, String) {
        let response = match self.head(path, token).await {
            Ok(r) => r,
            Err(e) => return (Outcome::Bad, e),
        };
        let status = response.status().as_u16();
        let body = match Self::body(response.into_body()).await {
            Ok(b) => b,
            Err(e) => return (Outcome::Bad, format!("{status}: {e}")),
        };
        let reason = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_owned))
            .unwrap_or_default();
        match status {
            200 => (Outcome::Ok, String::new()),
            500..=599 if !reason.is_empty() => (Outcome::Clear5xx(status), reason),
            _ => (Outcome::Bad, format!("{status} {reason:?}")),
        }
    }

    async fn stream_call(&self, path: &str, token: &str) -> (Outcome, String, bool) {
        let response = match self.head(path, token).await {
            Ok(r) => r,
            Err(e) => return (Outcome::Bad, e, false),
        };
        let status = response.status().as_u16();
        if status != 200 {
            let body = Self::body(response.into_body()).await.unwrap_or_default();
            let reason = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_owned))
                .unwrap_or_default();
            return if (500..600).contains(&status) && !reason.is_empty() {
                (Outcome::Clear5xx(status), reason, false)
            } else {
                (Outcome::Bad, format!("{status} {reason:?}"), false)
            };
        }
        match Self::body(response.into_body()).await {
            Ok(b) if b.len() as u64 == ATTACHMENT_BYTES => (Outcome::Ok, String::new(), true),
            Ok(b) => (
                Outcome::Bad,
                format!("short body without an error: {}", b.len()),
                true,
            ),
            Err(e) if e.starts_with("body error") => (Outcome::StreamCut, e, true),
            Err(e) => (Outcome::Bad, e, true),
        }
    }

    async fn one(&self, rng: &mut impl Rng) {
        let pool = self.pool.load(std::sync::atomic::Ordering::Relaxed);
        let target = self.targets[..pool.min(self.targets.len())]
            .choose(rng)
            .expect("targets")
            .clone();
        let token = &self.tokens[&target.citizen];
        let roll: f64 = rng.random();
        let (kind, outcome, detail, released) = if roll < 0.35 {
            let (o, d) = self.json_call("/v1/messages?limit=20", token).await;
            ("list", o, d, false)
        } else if roll < 0.75 || target.attachment.is_none() {
            let (o, d) = self
                .json_call(&format!("/v1/messages/{}", target.message), token)
                .await;
            ("message", o, d, o == Outcome::Ok)
        } else {
            let path = format!(
                "/v1/messages/{}/attachments/{}",
                target.message,
                target.attachment.unwrap_or_default()
            );
            let (o, d, head_ok) = self.stream_call(&path, token).await;
            ("attachment", o, d, head_ok)
        };
        let (phase, phase_started) = *self.phase.lock().expect("phase");
        let mut t = self.tally.lock().expect("tally");
        *t.outcomes.entry((kind, outcome)).or_default() += 1;
        let p = t.phases.entry(phase).or_default();
        p.0 += 1;
        if outcome == Outcome::Ok {
            p.1 += 1;
        }
        if released {
            t.released.insert(target.message);
        }
        if outcome == Outcome::Bad {
            t.bad.push(format!("{phase} {kind}: {detail}"));
        }
        if phase == "recovery"
            && phase_started.elapsed() > Duration::from_secs(2)
            && outcome != Outcome::Ok
        {
            t.recovery_failures
                .push(format!("{kind}: {outcome:?} {detail}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_load_under_injected_faults_loses_nothing_and_recovers() {
    let started = Instant::now();
    let call_timeout = CALL_TIMEOUT_MS.to_string();
    let body_idle = BODY_IDLE_MS.to_string();
    let env = [
        ("IKKUNA_DVV_CALL_TIMEOUT_MS", call_timeout.as_str()),
        ("IKKUNA_DVV_BODY_IDLE_TIMEOUT_MS", body_idle.as_str()),
        ("IKKUNA_DVV_MAX_RETRIES", "2"),
        ("IKKUNA_DVV_CONNECT_TIMEOUT_MS", "1000"),
        ("IKKUNA_WEBHOOKS_MAX_ATTEMPTS", "100"),
    ];
    // The load is one operator hammering three citizens: limits are not under test.
    let (h, rx) = support::start_with_receiver(&[&env[..], common::NO_LIMITS].concat(), 200).await;

    // Fresh messages for three citizens, a third of them with an attachment.
    let citizens: Vec<String> = h.citizens("Active").into_iter().take(3).collect();
    let mut targets = Vec::new();
    for (i, citizen) in citizens.iter().cycle().take(6 * NEW_PER_PHASE).enumerate() {
        let mut body = json!({"endUserId": citizen, "title": "Chaos", "body": "chaos body"});
        if i % 3 == 0 {
            body["attachments"] = json!([{"name": "c.pdf", "mediaType": "application/pdf",
                                          "size": ATTACHMENT_BYTES}]);
        }
        let a = h.sandbox_admin("POST", "/admin/messages", Some(body)).await;
        assert_eq!(a.status, 201, "{:?}", a.json());
        let v = a.json();
        targets.push(Target {
            citizen: citizen.clone(),
            message: v["messageId"].as_i64().expect("id"),
            attachment: v["attachmentIds"][0].as_i64(),
        });
    }
    let ours: BTreeSet<i64> = targets.iter().map(|t| t.message).collect();
    let tokens: HashMap<String, String> =
        citizens.iter().map(|c| (c.clone(), h.token(c))).collect();
    let load = Arc::new(Load {
        client: h.client.clone(),
        base: h.gateway_url(),
        tokens,
        targets,
        tally: Mutex::new(Tally::default()),
        phase: Mutex::new(("warm-up", Instant::now())),
        pool: std::sync::atomic::AtomicUsize::new(NEW_PER_PHASE),
    });
    let pid = h.gateway_pid();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (load, stop) = (load.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::from_os_rng();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                load.one(&mut rng).await;
            }
        }));
    }

    // Warm-up without faults; the baseline is taken after it (connections pooled, caches filled).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (fd_before, (rss_before, _)) = (common::fd_count(pid), common::rss_kib(pid));

    let phases: [(&'static str, Value); 5] = [
        ("latency", json!({"latencyMs": 400})),
        ("5xx", json!({"errorRate": 0.5})),
        ("drops", json!({"dropRate": 0.4})),
        ("stalls", json!({"stallRate": 0.4})),
        (
            "mixed",
            json!({"latencyMs": 150, "errorRate": 0.2, "dropRate": 0.1, "stallRate": 0.1}),
        ),
    ];
    let phase_len = Duration::from_secs(4);
    let mut faults_injected = 0usize;
    for (name, mut plan) in phases {
        plan["durationMs"] = json!(phase_len.as_millis() as u64 + 2000);
        let a = h.sandbox_admin("POST", "/admin/faults", Some(plan)).await;
        assert_eq!(a.status, 200, "{name}: {:?}", a.json());
        *load.phase.lock().expect("phase") = (name, Instant::now());
        load.pool
            .fetch_add(NEW_PER_PHASE, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(phase_len).await;
        let a = h.sandbox_admin("DELETE", "/admin/faults", None).await;
        assert!(a.status < 300);
        faults_injected += 1;
    }
    *load.phase.lock().expect("phase") = ("recovery", Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }

    // Faulted calls as DVV saw them.
    let calls = h.dvv_calls("provider-a").await;
    let faulted = calls.iter().filter(|c| !c["fault"].is_null()).count();

    let tally = std::mem::take(&mut *load.tally.lock().expect("tally"));
    assert!(
        tally.bad.is_empty(),
        "unclear or late answers: {:#?}",
        tally.bad
    );
    assert!(
        tally.recovery_failures.is_empty(),
        "requests failed after the faults stopped: {:#?}",
        tally.recovery_failures
    );
    let recovery = tally.phases.get("recovery").copied().unwrap_or_default();
    assert!(
        recovery.1 >= 10,
        "requests succeed again after the faults: {recovery:?}"
    );

    // Openings: exactly one per released message, none for another message.
    let openings = h
        .wait_openings(30, |o| {
            let got: BTreeSet<i64> = o
                .iter()
                .filter_map(|x| x["messageId"].as_i64())
                .filter(|id| ours.contains(id))
                .collect();
            got == tally.released
        })
        .await;
    let mut per_message: BTreeMap<i64, usize> = BTreeMap::new();
    for o in &openings {
        if let Some(id) = o["messageId"].as_i64().filter(|id| ours.contains(id)) {
            *per_message.entry(id).or_default() += 1;
        }
    }
    let duplicated: Vec<_> = per_message.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "openings reported twice: {duplicated:?}"
    );

    // Webhooks: every event of the feed, each delivered once.
    let feed = support::feed(&h, "provider-a").await;
    let expected: HashSet<String> = feed
        .iter()
        .filter_map(|e| ikkuna::webhooks::WebhookEvent::from_feed(e).map(|w| w.id))
        .collect();
    let seen = rx
        .wait_for(30, "every webhook event", |d| {
            d.iter()
                .filter(|d| d.ok())
                .map(|d| d.header("ikkuna-event-id").to_owned())
                .collect::<HashSet<_>>()
                == expected
        })
        .await;
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for d in seen.iter().filter(|d| d.ok()) {
        *per_event
            .entry(d.header("ikkuna-event-id").to_owned())
            .or_default() += 1;
    }
    let redelivered = per_event.values().filter(|n| **n > 1).count();
    assert_eq!(redelivered, 0, "webhook events delivered twice");

    // Resources back near the baseline once the load is gone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (fd_after, (rss_after, rss_peak)) = (common::fd_count(pid), common::rss_kib(pid));
    assert!(
        fd_after <= fd_before + FD_SLACK,
        "descriptors: {fd_before} before, {fd_after} after"
    );
    assert!(
        rss_after <= rss_before + RSS_SLACK_KIB,
        "RSS: {rss_before} KiB before, {rss_after} KiB after"
    );
    assert_eq!(h.gateway_pid(), pid);

    let answered: usize = tally.outcomes.values().sum();
    eprintln!(
        "chaos figures: {:.0}s; {faults_injected} fault phases, {faulted} DVV calls faulted of {}; \
         {answered} requests answered {:?}; per phase (answered, ok) {:?}; \
         {} messages released, {} openings at DVV, 0 duplicated; {} webhook events, all delivered once; \
         fds {fd_before} -> {fd_after}; RSS {rss_before} -> {rss_after} KiB (peak {rss_peak})",
        started.elapsed().as_secs_f64(),
        calls.len(),
        tally.outcomes,
        tally.phases,
        tally.released.len(),
        per_message.len(),
        expected.len(),
    );
}
