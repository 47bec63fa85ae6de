//! Soak: a steady mixed load (inbox lists, message reads, attachment streams, new mail arriving
//! and its webhooks) for minutes, sampled in ten windows: memory, descriptors and latency must
//! stay flat, and nothing may be lost. Not part of CI (ignored); run it with
//!
//! ```sh
//! IKKUNA_SOAK_SECS=300 cargo test --release --test soak -- --ignored --nocapture
//! ```
//!
//! Memory and descriptors are asserted (last window against the first, with the slack in
//! RELIABILITY.md); latency is only reported (no timed assertions).

mod common;
mod receiver;
mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

const WORKERS: usize = 4;
const ATTACHMENT_BYTES: u64 = 64 * 1024;
const FD_SLACK: usize = 16;
const RSS_SLACK_KIB: u64 = 32 * 1024;

#[derive(Clone)]
struct Target {
    token: String,
    message: i64,
    attachment: Option<i64>,
}

#[derive(Default)]
struct Window {
    latencies_us: Vec<u64>,
    failures: usize,
    /// Failed answers by status (0: no answer).
    failed_statuses: BTreeMap<u16, usize>,
    released: BTreeSet<i64>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long, on demand; run: IKKUNA_SOAK_SECS=300 cargo test --release --test soak -- --ignored --nocapture"]
async fn steady_load_keeps_memory_descriptors_and_latency_flat() {
    let total = Duration::from_secs(
        std::env::var("IKKUNA_SOAK_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300),
    );
    let window_len = total / 10;
    let (h, rx) = support::start_with_receiver(common::NO_LIMITS, 200).await;
    let pid = h.gateway_pid();
    let citizens: Vec<String> = h.citizens("Active").into_iter().take(3).collect();
    let targets: Arc<Mutex<Vec<Target>>> = Arc::new(Mutex::new(Vec::new()));
    let mut created = 0usize;
    let add_messages = |n: usize, created: &mut usize| {
        let (h, targets, citizens) = (&h, targets.clone(), citizens.clone());
        let start = *created;
        *created += n;
        async move {
            for i in start..start + n {
                let citizen = &citizens[i % citizens.len()];
                let mut body = json!({"endUserId": citizen, "title": "Soak", "body": "soak body"});
                if i % 3 == 0 {
                    body["attachments"] = json!([{"name": "s.pdf", "mediaType": "application/pdf",
                                                  "size": ATTACHMENT_BYTES}]);
                }
                let a = h.sandbox_admin("POST", "/admin/messages", Some(body)).await;
                assert_eq!(a.status, 201, "{:?}", a.json());
                let v = a.json();
                targets.lock().expect("targets").push(Target {
                    token: h.token(citizen),
                    message: v["messageId"].as_i64().expect("id"),
                    attachment: v["attachmentIds"][0].as_i64(),
                });
            }
        }
    };
    add_messages(12, &mut created).await;

    let windows: Arc<Mutex<Vec<Window>>> = Arc::new(Mutex::new(vec![Window::default()]));
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (client, base) = (h.client.clone(), h.gateway_url());
        let (targets, windows, stop, requests) = (
            targets.clone(),
            windows.clone(),
            stop.clone(),
            requests.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::from_os_rng();
            while !stop.load(Ordering::Relaxed) {
                let t = targets
                    .lock()
                    .expect("targets")
                    .choose(&mut rng)
                    .expect("a target")
                    .clone();
                let roll: f64 = rng.random();
                let (path, opens) = if roll < 0.35 {
                    ("/v1/messages?limit=20".to_owned(), false)
                } else if roll < 0.75 || t.attachment.is_none() {
                    (format!("/v1/messages/{}", t.message), true)
                } else {
                    let a = t.attachment.unwrap_or_default();
                    (format!("/v1/messages/{}/attachments/{a}", t.message), true)
                };
                let req = http::Request::builder()
                    .uri(format!("{base}{path}"))
                    .header("authorization", format!("Bearer {}", t.token))
                    .body(Full::new(Bytes::new()))
                    .expect("request");
                let begun = Instant::now();
                let call = async {
                    let r = client.request(req).await.ok()?;
                    let status = r.status().as_u16();
                    let head = begun.elapsed();
                    r.into_body().collect().await.ok()?;
                    Some((status, head))
                };
                let answer = tokio::time::timeout(Duration::from_secs(30), call).await;
                requests.fetch_add(1, Ordering::Relaxed);
                let mut w = windows.lock().expect("windows");
                let current = w.last_mut().expect("window");
                match answer {
                    Ok(Some((200, head))) => {
                        current
                            .latencies_us
                            .push(u64::try_from(head.as_micros()).unwrap_or(u64::MAX));
                        if opens {
                            current.released.insert(t.message);
                        }
                    }
                    other => {
                        current.failures += 1;
                        let status = match other {
                            Ok(Some((status, _))) => status,
                            _ => 0,
                        };
                        *current.failed_statuses.entry(status).or_default() += 1;
                    }
                }
            }
        }));
    }

    // Ten windows; new mail arrives at the start of each (first openings and webhooks go on).
    let mut rows = Vec::new();
    for i in 0..10 {
        add_messages(6, &mut created).await;
        tokio::time::sleep(window_len).await;
        let (fds, (rss, _)) = (common::fd_count(pid), common::rss_kib(pid));
        let mut w = windows.lock().expect("windows");
        let done = w.last_mut().expect("window");
        done.latencies_us.sort_unstable();
        rows.push((
            i,
            done.latencies_us.len(),
            done.failures,
            percentile(&done.latencies_us, 0.5),
            percentile(&done.latencies_us, 0.99),
            rss,
            fds,
        ));
        w.push(Window::default());
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }

    let windows = std::mem::take(&mut *windows.lock().expect("windows"));
    let failures: usize = windows.iter().map(|w| w.failures).sum();
    let released: BTreeSet<i64> = windows.iter().flat_map(|w| w.released.clone()).collect();
    let ours: BTreeSet<i64> = targets
        .lock()
        .expect("targets")
        .iter()
        .map(|t| t.message)
        .collect();
    let openings = h
        .wait_openings(60, |o| {
            o.iter()
                .filter_map(|x| x["messageId"].as_i64())
                .filter(|id| ours.contains(id))
                .collect::<BTreeSet<_>>()
                == released
        })
        .await;
    let mut per_message: BTreeMap<i64, usize> = BTreeMap::new();
    for o in &openings {
        if let Some(id) = o["messageId"].as_i64().filter(|id| ours.contains(id)) {
            *per_message.entry(id).or_default() += 1;
        }
    }
    assert!(per_message.values().all(|n| *n == 1), "openings duplicated");
    let feed = support::feed(&h, "provider-a").await;
    let expected: HashSet<String> = feed
        .iter()
        .filter_map(|e| ikkuna::webhooks::WebhookEvent::from_feed(e).map(|w| w.id))
        .collect();
    rx.wait_for(60, "every webhook event", |d| {
        d.iter()
            .filter(|d| d.ok())
            .map(|d| d.header("ikkuna-event-id").to_owned())
            .collect::<HashSet<_>>()
            == expected
    })
    .await;

    println!(
        "soak: {:?} total, {WORKERS} workers, {} requests",
        total,
        requests.load(Ordering::Relaxed)
    );
    println!("| window | OK | failed | p50 ms | p99 ms | RSS KiB | fds |");
    println!("|---|---|---|---|---|---|---|");
    for (i, ok, failed, p50, p99, rss, fds) in &rows {
        println!("| {i} | {ok} | {failed} | {p50:.2} | {p99:.2} | {rss} | {fds} |");
    }
    println!(
        "soak: {} messages released, {} openings at DVV (each once), {} webhook events delivered",
        released.len(),
        per_message.len(),
        expected.len()
    );
    let statuses: Vec<_> = windows.iter().map(|w| w.failed_statuses.clone()).collect();
    assert_eq!(
        failures, 0,
        "requests failed without any fault injected: {statuses:?}"
    );
    let (first, last) = (rows[1], rows[rows.len() - 1]);
    assert!(
        last.5 <= first.5 + RSS_SLACK_KIB,
        "RSS grew: {} -> {} KiB",
        first.5,
        last.5
    );
    assert!(
        last.6 <= first.6 + FD_SLACK,
        "descriptors grew: {} -> {}",
        first.6,
        last.6
    );
}
