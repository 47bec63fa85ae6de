//! The audit trail: every access is one chained JSON line naming the citizen only by a keyed
//! pseudonym, and `ikkuna audit verify` finds every kind of tampering and says where.

mod common;

use std::path::Path;

use common::{run_ikkuna, Harness};
use serde_json::Value;

/// Walks the inbox for a Normal message with attachments and a Verifiable one.
async fn pick_messages(h: &Harness, token: &str) -> (i64, i64, i64) {
    let page = h
        .call("GET", "/v1/messages?limit=100", Some(token))
        .await
        .json();
    let messages = page["messages"].as_array().expect("messages").clone();
    let with_attachment = messages
        .iter()
        .find(|m| {
            m["attachmentCount"].as_i64().unwrap_or(0) > 0 && m["messageServiceType"] == "Normal"
        })
        .and_then(|m| m["messageId"].as_i64())
        .expect("a Normal message with attachments");
    let verifiable = messages
        .iter()
        .find(|m| m["messageServiceType"] == "Verifiable")
        .and_then(|m| m["messageId"].as_i64())
        .expect("a Verifiable message");
    let detail = h
        .call(
            "GET",
            &format!("/v1/messages/{with_attachment}"),
            Some(token),
        )
        .await
        .json();
    let attachment = detail["attachments"][0]["attachmentId"]
        .as_i64()
        .expect("attachment id");
    (with_attachment, attachment, verifiable)
}

async fn verify(file: &Path) -> (bool, String) {
    let out = run_ikkuna(&["audit", "verify", &file.to_string_lossy()], None).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_access_is_chained_pseudonymous_and_tampering_is_found() {
    let h = Harness::start(&[]).await;
    let citizen = h.richest_citizen().await;
    let token = h.token(&citizen);

    let consent = h.call("GET", "/v1/consent", Some(&token)).await;
    assert_eq!(consent.status, 200);
    let (message, attachment, verifiable) = pick_messages(&h, &token).await;
    let read = h
        .call("GET", &format!("/v1/messages/{message}"), Some(&token))
        .await;
    assert_eq!(read.status, 200);
    let title = read.json()["title"].as_str().unwrap_or("").to_owned();
    let part = h
        .call_with(
            "GET",
            &format!("/v1/messages/{message}/attachments/{attachment}"),
            Some(&token),
            &[("range", "bytes=0-15")],
        )
        .await;
    assert!(part.status == 206 || part.status == 200, "{}", part.status);
    let receipt = h
        .call(
            "POST",
            &format!("/v1/messages/{verifiable}/receipt"),
            Some(&token),
        )
        .await;
    assert!(receipt.status < 300, "receipt {}", receipt.status);
    let refused = h
        .call("GET", "/v1/messages", Some(&h.token(&h.citizen("None"))))
        .await;
    assert_eq!(refused.status, 403);
    let anonymous = h.call("GET", "/v1/messages", None).await;
    assert_eq!(anonymous.status, 401);

    let records = h.audit_records();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap_or(""))
        .collect();
    for action in [
        "consent_check",
        "inbox_list",
        "message_read",
        "attachment",
        "receipt_confirmation",
    ] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }

    // The message read: its request id, ids, DVV trace id, consent and pseudonym.
    let request_id = read.header("x-request-id").expect("request id");
    let line = records
        .iter()
        .find(|r| r["requestId"] == request_id)
        .expect("the read is audited under its request id");
    assert_eq!(line["action"], "message_read");
    assert_eq!(line["messageId"], message);
    assert_eq!(line["outcome"], "ok");
    assert_eq!(line["status"], 200);
    assert!(line["consentId"].is_string(), "{line}");
    assert_eq!(
        line["traceId"].as_str(),
        read.header("traceId"),
        "DVV's trace id is kept"
    );
    let out = run_ikkuna(
        &[
            "audit",
            "pseudonym",
            "-",
            "--config",
            &h.config_path().to_string_lossy(),
        ],
        Some(&citizen),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pseudonym = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(pseudonym.len(), 64);
    assert_eq!(line["citizen"].as_str(), Some(pseudonym.as_str()));
    let mine = records
        .iter()
        .filter(|r| r["citizen"] == pseudonym.as_str())
        .count();
    assert!(mine >= 6, "the auditor finds the citizen's entries: {mine}");

    // Refusals are audited too: no consent (citizen known), no assertion (citizen unknown).
    let no_consent = records
        .iter()
        .find(|r| r["requestId"] == refused.header("x-request-id").expect("id"))
        .expect("refusal audited");
    assert_eq!(no_consent["outcome"], "refused");
    assert_eq!(no_consent["reason"], "no_consent");
    assert!(no_consent["citizen"].is_string());
    let unauthenticated = records
        .iter()
        .find(|r| r["requestId"] == anonymous.header("x-request-id").expect("id"))
        .expect("anonymous refusal audited");
    assert_eq!(unauthenticated["outcome"], "refused");
    assert!(unauthenticated["citizen"].is_null());

    // Nothing in the file names a citizen, carries a token or content.
    let text = std::fs::read_to_string(h.audit_log()).expect("audit file");
    for c in h.info["citizens"].as_array().expect("citizens") {
        let id = c["id"].as_str().expect("id");
        assert!(!text.contains(id), "an identity code in the audit file");
    }
    assert!(!text.contains("eyJ") && !text.to_lowercase().contains("bearer"));
    assert!(
        title.len() > 3 && !text.contains(&title),
        "content in the audit file"
    );

    // The chain verifies as written...
    let (ok, output) = verify(&h.audit_log()).await;
    assert!(ok, "{output}");
    assert!(output.contains("ok:"), "{output}");

    // ...and every kind of tampering is found, at the right line.
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert!(lines.len() >= 6);
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, lines: &[String]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        path
    };
    let mut edited = lines.clone();
    edited[2] = edited[2].replace("\"status\":", "\"status\":1");
    if edited[2] == lines[2] {
        edited[2] = edited[2].replacen('"', "\" ", 1);
    }
    let mut removed = lines.clone();
    removed.remove(2);
    let mut inserted = lines.clone();
    inserted.insert(3, lines[1].clone());
    let mut reordered = lines.clone();
    reordered.swap(2, 3);
    for (name, tampered, line, word) in [
        ("edited", edited, 4, "edited"),
        ("removed", removed, 3, "removed"),
        ("inserted", inserted, 4, "inserted"),
        ("reordered", reordered, 4, "reordered"),
    ] {
        let path = write(name, &tampered);
        let (ok, output) = verify(&path).await;
        assert!(!ok, "{name}: tampering not detected:\n{output}");
        let at = format!("{}:{line}:", path.display());
        assert!(
            output.contains(&at),
            "{name}: not pinpointed at {at}:\n{output}"
        );
        assert!(output.contains(word), "{name}: not named:\n{output}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_the_chain_and_a_restart_resumes_it() {
    let mut h = Harness::start(&[("IKKUNA_AUDIT_MAX_FILE_BYTES", "4096")]).await;
    let token = h.token(&h.citizen("Active"));
    for _ in 0..12 {
        assert_eq!(h.call("GET", "/v1/consent", Some(&token)).await.status, 200);
    }
    h.kill_gateway().await;
    h.start_gateway().await;
    for _ in 0..12 {
        assert_eq!(h.call("GET", "/v1/consent", Some(&token)).await.status, 200);
    }
    let active = h.audit_log();
    let dir = active.parent().expect("audit dir");
    let rotated: Vec<_> = std::fs::read_dir(dir)
        .expect("audit dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("audit.jsonl."))
        .collect();
    assert!(!rotated.is_empty(), "rotated by size");
    let (ok, output) = verify(&active).await;
    assert!(ok, "{output}");
    assert!(output.contains("ok: 24 records"), "{output}");
    let records: Value = h.audit_records().into_iter().last().expect("a record");
    assert!(
        records["seq"].as_u64().expect("seq") >= 23,
        "the chain continued"
    );
}
