//! `ikkuna sandbox` as a newcomer runs it: the binary prints the citizens and a guided tour whose
//! calls work as printed, and `ikkuna sandbox token` (same binary) mints an assertion the gateway
//! accepts.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};

/// Kills the demo (its whole process) when the test ends, however it ends.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get(ca: &Path, url: &str, token: &str) -> (u16, serde_json::Value) {
    let client = common::https_client(ca);
    let request = http::Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(bytes::Bytes::new()))
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .expect("answer in time")
        .expect("answer");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_a_tour_whose_calls_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ikkuna"))
        .args(["sandbox", "--data-dir"])
        .arg(dir.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ikkuna sandbox starts");
    let stdout = child.stdout.take().expect("stdout");
    let _demo = Demo(child);
    let lines = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            let done = line.starts_with("Stop with Ctrl-C");
            lines.push(line);
            if done || Instant::now() > deadline {
                break;
            }
        }
        lines
    })
    .await
    .expect("reader");
    let text = lines.join("\n");
    assert!(
        text.contains("Stop with Ctrl-C"),
        "no complete tour:\n{text}"
    );

    // The citizens, with their consent states.
    for (id, state) in [
        ("150385-9046", "Active"),
        ("021178-917V", "Revoked"),
        ("210690Y923C", "none"),
    ] {
        assert!(
            lines.iter().any(|l| l.contains(id) && l.contains(state)),
            "{id} {state} not listed:\n{text}"
        );
    }
    // The tour's variables and calls.
    let var = |name: &str| -> String {
        let line = lines
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(&format!("{name}=")))
            .or_else(|| {
                lines.iter().find_map(|l| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix(&format!("{name}=")))
                })
            })
            .unwrap_or_else(|| panic!("{name} not printed:\n{text}"));
        line.split_whitespace()
            .next()
            .unwrap_or_default()
            .trim_matches('\'')
            .to_owned()
    };
    let (ca, gw, token) = (var("CA"), var("GW"), var("TOKEN"));
    let ca = Path::new(&ca);
    for step in [
        "# 1.",
        "# 2.",
        "# 3.",
        "# 4.",
        "# 5.",
        "# 6.",
        "Range: bytes=0-99",
        "/receipt",
    ] {
        assert!(text.contains(step), "the tour lacks {step}:\n{text}");
    }

    // Step 1 as printed: the inbox of the tour's citizen.
    let (status, page) = get(ca, &format!("{gw}/v1/messages"), &token).await;
    assert_eq!(status, 200, "{page}");
    let messages = page["messages"].as_array().expect("messages");
    assert!(messages
        .iter()
        .any(|m| m["messageServiceType"] == "Verifiable"));
    assert!(messages.iter().any(|m| !m["readAt"].is_null()));

    // Step 5 as printed: the citizen without consent is refused with the consent link.
    let refused = lines
        .iter()
        .filter(|l| l.contains("curl"))
        .filter_map(|l| l.split("Bearer ").nth(1))
        .find(|t| !t.starts_with('$'))
        .and_then(|t| t.split('\'').next())
        .expect("the no-consent call carries its own assertion")
        .to_owned();
    let (status, body) = get(ca, &format!("{gw}/v1/messages"), &refused).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["consentServiceUrl"].is_string(), "{body}");

    // `ikkuna sandbox token`: the same binary mints an assertion the gateway accepts.
    let out = Command::new(env!("CARGO_BIN_EXE_ikkuna"))
        .args(["sandbox", "token", "--citizen", "150385-9046", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert_eq!(fresh.split('.').count(), 3, "a JWT: {fresh}");
    let (status, _) = get(ca, &format!("{gw}/v1/messages"), &fresh).await;
    assert_eq!(status, 200);
}
