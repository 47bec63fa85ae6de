//! OPEN-10 and TRACE-5 can fail: the real gateway launched in mode 1 with its audit sync turned off
//! (`IKKUNA_AUDIT_FSYNC=false`, a configuration an operator could choose) is caught by TRACE-5 —
//! a SIGKILL test passes it, since the kernel keeps unsynced lines — while the opening's own sync
//! still satisfies OPEN-10. The source mutant `open10-store-not-synced.patch` is OPEN-10's control.
//! Needs `strace` and the right to trace a child (CI installs it).

mod common;

use std::process::Command;

#[test]
#[ignore = "needs strace; run: cargo test -p ikkuna-certify --test durability_control -- --ignored"]
fn an_unsynced_audit_line_is_caught_by_trace_5_and_the_store_sync_still_passes_open_10() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report_dir = dir.path().join("report");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ikkuna-certify"));
    cmd.arg("run")
        .arg("--gateway-bin")
        .arg(common::gateway_bin())
        .arg("--report-dir")
        .arg(&report_dir)
        .args(["--gateway-env", "IKKUNA_AUDIT_FSYNC=false"])
        .args(["--only", "OPEN-10", "--only", "TRACE-5"]);
    for name in common::omit_env() {
        cmd.arg("--omit-env").arg(name);
    }
    let out = cmd.output().expect("ikkuna-certify runs");
    assert!(
        !out.status.success(),
        "a gateway that does not sync its audit trail must not pass"
    );
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(report_dir.join("report.json")).expect("report.json"),
    )
    .expect("report.json is JSON");
    let verdict = |id: &str| {
        json["requirements"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["id"] == id))
            .map(|x| x.to_string())
            .unwrap_or_default()
    };
    assert!(
        verdict("TRACE-5").contains("\"verdict\":\"FAIL\""),
        "TRACE-5 must fail without the audit sync: {}",
        verdict("TRACE-5")
    );
    assert!(
        verdict("OPEN-10").contains("\"verdict\":\"PASS\""),
        "OPEN-10 must still pass (the store syncs): {}",
        verdict("OPEN-10")
    );
}
