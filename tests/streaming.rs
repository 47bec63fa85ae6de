//! Attachments stream through the gateway in constant memory and never touch its disk.

mod common;

use std::time::Duration;

use common::{open_regular_files, rss_kib, Harness};
use http_body_util::BodyExt;
use serde_json::Value;

const GIB: u64 = 1 << 30;

/// Finds the seeded attachment of at least 1 GiB: (messageId, attachmentId, size).
async fn big_attachment(h: &Harness, token: &str) -> (i64, i64, u64) {
    let page = h
        .call("GET", "/v1/messages?limit=100", Some(token))
        .await
        .json();
    for m in page["messages"].as_array().expect("messages") {
        if m["attachmentCount"].as_i64().unwrap_or(0) == 0 || m["messageServiceType"] != "Normal" {
            continue;
        }
        let id = m["messageId"].as_i64().unwrap();
        let detail = h
            .call("GET", &format!("/v1/messages/{id}"), Some(token))
            .await
            .json();
        for a in detail["attachments"].as_array().into_iter().flatten() {
            let size = a["size"].as_u64().unwrap_or(0);
            if size >= GIB {
                return (id, a["attachmentId"].as_i64().unwrap(), size);
            }
        }
    }
    panic!("the seed has an attachment of at least 1 GiB");
}

fn assert_no_content_files(h: &Harness, pid: u32) {
    let store = h.dir.path().join("gateway");
    for f in open_regular_files(pid) {
        let s = f.to_string_lossy();
        let allowed = f.starts_with(&store) || f == h.gateway_log() || s.starts_with("/memfd:");
        assert!(
            allowed,
            "gateway holds an unexpected regular file open: {s}"
        );
        assert!(
            !s.contains("(deleted)"),
            "gateway holds an unlinked file: {s}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_streams_through_in_flat_memory_even_to_a_slow_client() {
    let h = Harness::start(&[]).await;
    let token = h.token(&h.richest_citizen().await);
    let (mid, aid, size) = big_attachment(&h, &token).await;
    let path = format!("/v1/messages/{mid}/attachments/{aid}");
    let pid = h.gateway_pid();

    // Range passes through.
    let ranged = h
        .call_with("GET", &path, Some(&token), &[("range", "bytes=0-99")])
        .await;
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body.len(), 100);
    assert_eq!(
        ranged.header("content-range"),
        Some(format!("bytes 0-99/{size}").as_str())
    );
    assert_eq!(ranged.header("cache-control"), Some("no-store"));

    let (_, peak_before) = rss_kib(pid);

    // The whole thing, read as fast as we can.
    let resp = h.open_stream(&path, &token).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], size.to_string().as_str());
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(resp.headers().get("content-disposition").is_some());
    let mut body = resp.into_body();
    let mut received: u64 = 0;
    let mut max_rss = 0;
    let mut next_sample = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("body frame");
        if let Some(data) = frame.data_ref() {
            received += data.len() as u64;
        }
        if received >= next_sample {
            max_rss = max_rss.max(rss_kib(pid).0);
            assert_no_content_files(&h, pid);
            next_sample += 64 << 20;
        }
    }
    assert_eq!(received, size, "every byte arrived");

    // A deliberately slow client: 32 MiB at a crawl, then it goes away.
    let resp = h.open_stream(&path, &token).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut slow: u64 = 0;
    while slow < (32 << 20) {
        match body.frame().await {
            Some(Ok(f)) => slow += f.data_ref().map(|d| d.len() as u64).unwrap_or(0),
            other => panic!("slow read ended early: {:?}", other.map(|r| r.is_ok())),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        if slow % (4 << 20) < 20_000 {
            max_rss = max_rss.max(rss_kib(pid).0);
            assert_no_content_files(&h, pid);
        }
    }
    drop(body);

    let (_, peak_after) = rss_kib(pid);
    let growth_mib = peak_after.saturating_sub(peak_before) / 1024;
    eprintln!(
        "gateway peak RSS before {} MiB, after {} MiB, max sampled {} MiB",
        peak_before / 1024,
        peak_after / 1024,
        max_rss / 1024
    );
    assert!(
        growth_mib < 48,
        "streaming 1 GiB grew the gateway's peak RSS by {growth_mib} MiB"
    );
    // Still healthy afterwards.
    assert_eq!(h.call("GET", "/v1/consent", Some(&token)).await.status, 200);
    let _: Value = h.call("GET", "/v1/messages", Some(&token)).await.json();
}
