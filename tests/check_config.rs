//! `ikkuna check-config` (and `ikkuna run`) as an operator runs them, on a real configuration the
//! sandbox wrote: the check is pure (it creates and changes nothing), every unknown `IKKUNA_…`
//! environment variable is an error with a "did you mean" for a near miss, and no value written
//! under an unknown key or variable is ever echoed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Something that must never reach the terminal.
const SECRET: &str = "pasted-s3cr3t-0123456789";

struct Sandbox {
    _running: ikkuna_sandbox::RunningSandbox,
    dir: tempfile::TempDir,
    config: PathBuf,
}

async fn sandbox() -> Sandbox {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = ikkuna_sandbox::start(ikkuna_sandbox::SandboxOptions::new(dir.path()))
        .await
        .expect("sandbox starts");
    let config = running.info().gateway_config.clone();
    Sandbox {
        _running: running,
        dir,
        config,
    }
}

/// The `ikkuna` binary with exactly `env` as its environment (none inherited), killed if it
/// has not finished within a minute.
fn ikkuna(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ikkuna"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ikkuna starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ikkuna {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// Every path under `dir` with its modification time: proof that nothing was created or written.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let mut all = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let entry = entry.expect("entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(entry.path());
            }
            all.insert(entry.path(), meta.modified().expect("mtime"));
        }
    }
    all
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_passes_a_valid_configuration_and_creates_nothing() {
    let sb = sandbox().await;
    let fresh = sb.dir.path().join("not-yet/data");
    let before = snapshot(sb.dir.path());
    let out = ikkuna(
        &["check-config", sb.config.to_str().expect("utf-8")],
        &[("IKKUNA_STORE_DATA_DIR", fresh.to_str().expect("utf-8"))],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("configuration is valid"),
        "{}",
        text(&out)
    );
    assert!(
        !sb.dir.path().join("not-yet").exists(),
        "check-config created the data directory"
    );
    assert_eq!(
        snapshot(sb.dir.path()),
        before,
        "check-config created or changed a file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ikkuna_variables_are_errors_named_without_their_values() {
    let sb = sandbox().await;
    let config = sb.config.to_str().expect("utf-8");
    let env = [
        ("IKKUNA_DVV_BASE_ULR", SECRET),
        ("IKKUNA_COMPLETELY_UNKNOWN", SECRET),
        // Ikkuna's own tools' variables are not configuration, and are left alone.
        ("IKKUNA_SOAK_SECS", "5"),
    ];
    for args in [
        vec!["check-config", config],
        vec!["run", "--config", config],
    ] {
        let out = ikkuna(&args, &env);
        let all = text(&out);
        assert!(!out.status.success(), "{args:?} accepted: {all}");
        assert!(
            all.contains("IKKUNA_DVV_BASE_ULR")
                && all.contains("did you mean IKKUNA_DVV_BASE_URL?"),
            "{args:?}: {all}"
        );
        assert!(all.contains("IKKUNA_COMPLETELY_UNKNOWN"), "{args:?}: {all}");
        assert!(!all.contains("IKKUNA_SOAK_SECS"), "{args:?}: {all}");
        assert!(!all.contains("s3cr3t"), "{args:?} echoed a value: {all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_under_an_unknown_key_is_never_echoed() {
    let sb = sandbox().await;
    let original = std::fs::read_to_string(&sb.config).expect("ikkuna.toml");
    let edited = original.replacen(
        "[dvv]\n",
        &format!("[dvv]\nclient_secret = \"{SECRET}\"\n"),
        1,
    );
    assert_ne!(edited, original, "the [dvv] section exists");
    let path = sb.dir.path().join("edited.toml");
    std::fs::write(&path, edited).expect("write");
    let out = ikkuna(&["check-config", path.to_str().expect("utf-8")], &[]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("client_secret") && all.contains("line "),
        "{all}"
    );
    assert!(!all.contains("s3cr3t"), "the value was echoed: {all}");
}
