//! The `ikkuna-sandbox` binary: `serve` starts, prints where things are, and exits cleanly on
//! SIGTERM; `token` prints a citizen assertion.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ikkuna-sandbox");

#[test]
fn serve_then_token_then_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--token-ttl", "60"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("sandbox.json: "), "{first}");
    let dvv = lines.next().unwrap().unwrap();
    assert!(dvv.contains("https://127.0.0.1:"), "{dvv}");
    let info = ikkuna_sandbox::SandboxInfo::read(&dir.path().join("sandbox.json")).unwrap();
    assert!(dvv.ends_with(&info.dvv_url));

    let out = Command::new(BIN)
        .args(["token", "--data-dir"])
        .arg(dir.path())
        .args([
            "--citizen",
            "150385-9046",
            "--acr",
            "http://ftn.ficora.fi/2017/loa2",
            "--ttl",
            "90",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let jwt = String::from_utf8(out.stdout).unwrap();
    let jwt = jwt.trim();
    assert_eq!(jwt.split('.').count(), 3);
    let claims = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(jwt)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "150385-9046");
    assert_eq!(claims["acr"], "http://ftn.ficora.fi/2017/loa2");
    assert_eq!(claims["aud"], "ikkuna");
    assert_eq!(claims["iss"], info.operator_issuer);

    // SIGTERM to the child we started, by its id.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not exit on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn token_without_a_sandbox_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["token", "--data-dir"])
        .arg(dir.path())
        .args(["--citizen", "150385-9046"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("signing.key"));
}
