//! CI: the real gateway binary, launched by the real `ikkuna-certify` binary (mode 1), passes
//! every mandatory requirement, and the report shows every requirement of the catalogue.

mod common;

use std::process::Command;

#[test]
fn the_real_gateway_is_certified_and_the_report_shows_every_requirement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report_dir = dir.path().join("report");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ikkuna-certify"));
    cmd.arg("run")
        .arg("--gateway-bin")
        .arg(common::gateway_bin())
        .arg("--report-dir")
        .arg(&report_dir);
    for name in common::omit_env() {
        cmd.arg("--omit-env").arg(name);
    }
    let out = cmd.output().expect("ikkuna-certify runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(report_dir.join("report.json")).expect("report.json"),
    )
    .expect("report.json is JSON");
    assert!(
        out.status.success(),
        "not certified:\n{stdout}\n{stderr}\nmandatory failures: {}",
        json["summary"]["mandatoryFailures"]
    );
    let html = std::fs::read_to_string(report_dir.join("report.html")).expect("report.html");
    let catalogue = ikkuna_certify::catalogue::Catalogue::builtin().expect("catalogue");
    for r in &catalogue.requirements {
        assert!(
            html.contains(&format!("id=\"{}\"", r.id)),
            "{} missing from the HTML",
            r.id
        );
        let entry = json["requirements"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["id"] == r.id.as_str()))
            .expect("requirement in the JSON");
        if r.mandatory {
            // Every mandatory requirement passes; TLS-1 may only be "not checked" on a machine
            // without openssl, OPEN-10 and TRACE-5 on a developer's machine without strace (CI
            // installs both and accepts no excuse).
            let verdict = entry["verdict"].as_str().unwrap_or("");
            let excused = verdict == "NOT_CHECKED"
                && ((r.id == "TLS-1" && !openssl_present())
                    || (["OPEN-10", "TRACE-5"].contains(&r.id.as_str())
                        && !tool_present("strace", "-V")
                        && std::env::var_os("CI").is_none()));
            assert!(verdict == "PASS" || excused, "{}: {}", r.id, entry);
        }
    }
    // Self-contained: no script, no stylesheet link, nothing loaded from elsewhere.
    for needle in ["<script", "<link", "@import", "src=", "url("] {
        assert!(
            !html.contains(needle),
            "the HTML report must not contain {needle}"
        );
    }
}

fn openssl_present() -> bool {
    tool_present("openssl", "version")
}

fn tool_present(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
