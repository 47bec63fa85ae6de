//! The DVV API contract end to end over mutual TLS: consents, inbox paging, message detail,
//! verifiable messages, attachments and ranges, openings with first-open arbitration, receipt
//! confirmations, the events feed, and bad input of every kind.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::{json, Value};

fn ts_ok(v: &Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    s.len() == 24 && s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

#[tokio::test]
async fn consent_lookup_states() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let b = h.provider(1);
    let ta = a.token().await;
    let tb = b.token().await;

    let r = a
        .post_json("/v1/consents/lookup", &ta, &json!({"endUserId": AINO}))
        .await
        .expect(200);
    let v = r.json();
    assert_eq!(v["state"], "Active");
    assert!(ts_ok(&v["grantedAt"]));
    assert!(v["revokedAt"].is_null());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let consent_a = v["consentId"].as_str().unwrap().to_owned();
    assert!(!consent_a.contains(AINO));
    // Stable per citizen and provider; different per provider.
    assert_eq!(a.consent_id(&ta, AINO).await, consent_a);
    assert_ne!(b.consent_id(&tb, AINO).await, consent_a);

    let v = a
        .post_json("/v1/consents/lookup", &ta, &json!({"endUserId": MATTI}))
        .await
        .expect(200)
        .json();
    assert_eq!(v["state"], "Revoked");
    assert!(ts_ok(&v["revokedAt"]));

    for citizen in [LIISA, VILLE_Y, "311299-999E"] {
        let r = a
            .post_json("/v1/consents/lookup", &ta, &json!({"endUserId": citizen}))
            .await
            .expect(404);
        assert_eq!(r.reason(), "No consent for this provider");
    }
    // provider-b has no consent from Matti.
    b.post_json("/v1/consents/lookup", &tb, &json!({"endUserId": MATTI}))
        .await
        .expect(404);
}

#[tokio::test]
async fn invalid_identity_codes_are_400_without_echo() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let t = a.token().await;
    for bad in [
        "150385-9047",  // check character
        "150385G9046",  // unknown century sign
        "150385y9046",  // lower-case sign
        "310285-904A",  // no such date
        "150385-90",    // too short
        "1503859-9046", // too long
        "15038X-9046",  // letters in the date
        "150385-0016",  // individual number below 002
        "",
    ] {
        let r = a
            .post_json("/v1/consents/lookup", &t, &json!({"endUserId": bad}))
            .await
            .expect(400);
        let v = r.json();
        assert_eq!(v["validationErrors"][0]["field"], "endUserId", "{bad}");
        let text = String::from_utf8_lossy(&r.body).to_string();
        if !bad.is_empty() {
            assert!(!text.contains(bad), "reason echoes the code: {text}");
        }
    }
    for body in [
        json!({}),
        json!({"endUserId": 150385}),
        json!({"endUserId": null}),
    ] {
        let r = a
            .post_json("/v1/consents/lookup", &t, &body)
            .await
            .expect(400);
        assert_eq!(r.json()["validationErrors"][0]["field"], "endUserId");
    }
}

#[tokio::test]
async fn malformed_bodies_routes_and_methods() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let t = a.token().await;
    for body in [
        &b"{"[..],
        b"not json",
        b"[1,2]",
        b"",
        b"\"x\"",
        b"{\"endUserId\": \"150385-9046\"",
    ] {
        let r = a
            .post_raw("/v1/consents/lookup", &t, body.to_vec())
            .await
            .expect(400);
        assert!(!String::from_utf8_lossy(&r.body).contains(AINO));
    }
    // Oversized body: 413, whether announced by Content-Length or not.
    let big = format!(
        "{{\"endUserId\": \"{AINO}\", \"pad\": \"{}\"}}",
        "x".repeat(70 * 1024)
    );
    a.post_raw("/v1/consents/lookup", &t, big.into_bytes())
        .await
        .expect(413);
    // Unknown routes and ids.
    for path in [
        "/",
        "/v1",
        "/v1/",
        "/v2/events",
        "/v1/consents",
        "/v1/events/",
        "/v1/consents//messages",
    ] {
        a.get(path, &t).await.expect(404);
    }
    let r = a.get("/v1/consents/lookup", &t).await.expect(405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = a.post_json("/v1/events", &t, &json!({})).await.expect(405);
    assert_eq!(r.header("allow"), Some("GET"));
    a.send(http::Method::DELETE, "/v1/events", Some(&t), None, &[])
        .await
        .expect(405);
    // Unknown consent ids.
    a.get("/v1/consents/cns-000000000000000000000000/messages", &t)
        .await
        .expect(404);
    a.get("/v1/consents/%00%ff/messages", &t).await.expect(404);
}

#[tokio::test]
async fn consent_scoping_revoked_and_foreign() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let b = h.provider(1);
    let ta = a.token().await;
    let tb = b.token().await;
    let matti = a.consent_id(&ta, MATTI).await;
    let r = a
        .get(&format!("/v1/consents/{matti}/messages"), &ta)
        .await
        .expect(403);
    assert_eq!(r.reason(), "Consent revoked");
    // Another provider's consentId is unknown to this one.
    let aino_b = b.consent_id(&tb, AINO).await;
    let r = a
        .get(&format!("/v1/consents/{aino_b}/messages"), &ta)
        .await
        .expect(404);
    assert_eq!(r.reason(), "Consent not found");
    // A message of another citizen is not found through this consent.
    let ville = a.consent_id(&ta, VILLE_DASH).await;
    let aino = a.consent_id(&ta, AINO).await;
    let aino_msgs = all_messages(&a, &ta, &aino, 100).await;
    let foreign = aino_msgs[0]["messageId"].as_i64().unwrap();
    let r = a
        .get(&format!("/v1/consents/{ville}/messages/{foreign}"), &ta)
        .await
        .expect(404);
    assert_eq!(r.reason(), "Message not found");
    a.post_json(
        &format!("/v1/consents/{ville}/messages/{foreign}/openings"),
        &ta,
        &json!({"openingId": "o-foreign", "openedAt": "2026-11-01T00:00:00Z"}),
    )
    .await
    .expect(404);
    // Non-numeric and unknown ids.
    a.get(&format!("/v1/consents/{aino}/messages/abc"), &ta)
        .await
        .expect(400);
    a.get(&format!("/v1/consents/{aino}/messages/-5"), &ta)
        .await
        .expect(400);
    a.get(
        &format!("/v1/consents/{aino}/messages/99999999999999999999"),
        &ta,
    )
    .await
    .expect(400);
    a.get(&format!("/v1/consents/{aino}/messages/1"), &ta)
        .await
        .expect(404);
    // Same digits, other century sign: a different person with their own (unconsented) mail.
    let ville_msgs = all_messages(&a, &ta, &ville, 100).await;
    assert_eq!(ville_msgs.len(), 1);
    assert_eq!(ville_msgs[0]["title"], "Kela-kortti");
}

#[tokio::test]
async fn inbox_paging() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let t = a.token().await;
    let paavo = a.consent_id(&t, PAAVO).await;
    let first = a
        .get(&format!("/v1/consents/{paavo}/messages"), &t)
        .await
        .expect(200)
        .json();
    assert_eq!(
        first["messages"].as_array().unwrap().len(),
        20,
        "default limit"
    );
    assert!(first["continuationToken"].is_string());
    let all = all_messages(&a, &t, &paavo, 7).await;
    assert_eq!(all.len(), 45);
    let ids: std::collections::HashSet<i64> = all
        .iter()
        .map(|m| m["messageId"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 45, "no duplicates across pages");
    let times: Vec<&str> = all
        .iter()
        .map(|m| m["createdAt"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert_eq!(all[0]["title"], "Tiedote 45/45");
    let m = &all[0];
    for field in [
        "messageId",
        "senderName",
        "title",
        "createdAt",
        "readAt",
        "messageServiceType",
        "receiptConfirmedAt",
        "attachmentCount",
    ] {
        assert!(m.get(field).is_some(), "summary has {field}");
    }
    // Exactly one full page: no continuation.
    let one = a
        .get(&format!("/v1/consents/{paavo}/messages?limit=100"), &t)
        .await
        .expect(200)
        .json();
    assert_eq!(one["messages"].as_array().unwrap().len(), 45);
    assert!(one["continuationToken"].is_null());
    // Empty inbox.
    let eeva = a.consent_id(&t, EEVA).await;
    let empty = a
        .get(&format!("/v1/consents/{eeva}/messages"), &t)
        .await
        .expect(200)
        .json();
    assert_eq!(empty["messages"], json!([]));
    assert!(empty["continuationToken"].is_null());
    // Bad limits.
    for limit in ["0", "101", "-1", "abc", "1.5", "99999999999999999999", "+5"] {
        let r = a
            .get(&format!("/v1/consents/{paavo}/messages?limit={limit}"), &t)
            .await
            .expect(400);
        assert_eq!(r.json()["validationErrors"][0]["field"], "limit");
    }
    // Bad and foreign continuation tokens.
    let token = first["continuationToken"].as_str().unwrap();
    let aino = a.consent_id(&t, AINO).await;
    a.get(
        &format!("/v1/consents/{aino}/messages?continuationToken={token}"),
        &t,
    )
    .await
    .expect(400);
    let mut tampered = token.to_owned();
    tampered.replace_range(0..2, if token.starts_with("aa") { "bb" } else { "aa" });
    for bad in [tampered.as_str(), "garbage", "a.b", "%zz"] {
        a.get(
            &format!("/v1/consents/{paavo}/messages?continuationToken={bad}"),
            &t,
        )
        .await
        .expect(400);
    }
    a.get(
        &format!("/v1/consents/{paavo}/messages?limit=5&limit=6"),
        &t,
    )
    .await
    .expect(400);
    // An events token is not an inbox token.
    let events = a.get("/v1/events", &t).await.expect(200).json();
    let et = events["continuationToken"].as_str().unwrap();
    a.get(
        &format!("/v1/consents/{paavo}/messages?continuationToken={et}"),
        &t,
    )
    .await
    .expect(400);
}

#[tokio::test]
async fn message_detail_and_verifiable_withholding() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let t = a.token().await;
    let aino = a.consent_id(&t, AINO).await;
    let msgs = all_messages(&a, &t, &aino, 100).await;

    let tax = by_title(&msgs, "Verotuspäätös 2025");
    let id = tax["messageId"].as_i64().unwrap();
    let r = a
        .get(&format!("/v1/consents/{aino}/messages/{id}"), &t)
        .await
        .expect(200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let d = r.json();
    assert_eq!(d["bodyFormat"], "Markdown");
    assert!(d["body"].as_str().unwrap().contains("Verotuspäätös"));
    assert_eq!(d["attachments"][0]["name"], "verotuspaatos-2025.pdf");
    assert_eq!(d["attachments"][0]["mediaType"], "application/pdf");
    assert_eq!(d["attachments"][0]["size"], 151552);
    assert_eq!(d["attachmentCount"], 1);
    // Reading the detail does not mark it read.
    assert!(d["readAt"].is_null());
    let again = a
        .get(&format!("/v1/consents/{aino}/messages/{id}"), &t)
        .await
        .expect(200)
        .json();
    assert!(again["readAt"].is_null());

    let plain = by_title(&msgs, "Ajoneuvoveron eräpäivä lähestyy");
    let d = a
        .get(
            &format!("/v1/consents/{aino}/messages/{}", plain["messageId"]),
            &t,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(d["bodyFormat"], "Text");
    assert_eq!(d["attachments"], json!([]));

    // Verifiable, unconfirmed: withheld everywhere until receipt is confirmed.
    let kela = by_title(&msgs, "Päätös yleisestä asumistuesta");
    let kid = kela["messageId"].as_i64().unwrap();
    assert_eq!(kela["messageServiceType"], "Verifiable");
    assert!(kela["receiptConfirmedAt"].is_null());
    assert_eq!(kela["attachmentCount"], 2);
    let d = a
        .get(&format!("/v1/consents/{aino}/messages/{kid}"), &t)
        .await
        .expect(200)
        .json();
    assert!(d["body"].is_null());
    assert_eq!(d["attachments"], json!([]));
    let att = {
        // Learn an attachment id of the message from the admin-independent seed order: ids are
        // consecutive, so take the ones of the preceding message and add one.
        let tax_detail = a
            .get(&format!("/v1/consents/{aino}/messages/{id}"), &t)
            .await
            .json();
        tax_detail["attachments"][0]["attachmentId"]
            .as_i64()
            .unwrap()
            + 1
    };
    let r = a
        .get(
            &format!("/v1/consents/{aino}/messages/{kid}/attachments/{att}"),
            &t,
        )
        .await
        .expect(403);
    assert_eq!(r.reason(), "Receipt confirmation required");
    let r = a
        .post_json(
            &format!("/v1/consents/{aino}/messages/{kid}/openings"),
            &t,
            &json!({"openingId": "open-before-receipt", "openedAt": "2026-11-20T10:00:00Z"}),
        )
        .await
        .expect(403);
    assert_eq!(r.reason(), "Receipt confirmation required");

    // Confirm: 201, then 409 with the original.
    let path = format!("/v1/consents/{aino}/messages/{kid}/receipt-confirmations");
    let first = a.post_json(&path, &t, &json!({})).await.expect(201).json();
    assert_eq!(first["messageId"], kid);
    assert!(ts_ok(&first["receiptConfirmedAt"]));
    let second = a.post_json(&path, &t, &json!({})).await.expect(409).json();
    assert_eq!(second, first);
    let d = a
        .get(&format!("/v1/consents/{aino}/messages/{kid}"), &t)
        .await
        .expect(200)
        .json();
    assert!(d["body"].as_str().unwrap().contains("asumistuesta"));
    assert_eq!(d["attachments"].as_array().unwrap().len(), 2);
    assert_eq!(d["receiptConfirmedAt"], first["receiptConfirmedAt"]);
    assert_eq!(d["attachments"][0]["attachmentId"], att);
    a.get(
        &format!("/v1/consents/{aino}/messages/{kid}/attachments/{att}"),
        &t,
    )
    .await
    .expect(200);
    // Recorded with who confirmed.
    let receipts = h.admin.get("/admin/receipts").await;
    let row = receipts
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["messageId"] == kid)
        .unwrap();
    assert_eq!(row["providerId"], "provider-a");

    // A Normal message cannot be confirmed; a malformed body is 400.
    let r = a
        .post_json(
            &format!("/v1/consents/{aino}/messages/{id}/receipt-confirmations"),
            &t,
            &json!({}),
        )
        .await
        .expect(400);
    assert_eq!(r.reason(), "Message is not Verifiable");
    a.post_raw(&path, &t, b"{".to_vec()).await.expect(400);
}

#[tokio::test]
async fn attachments_and_ranges() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let t = a.token().await;
    let aino = a.consent_id(&t, AINO).await;
    let msgs = all_messages(&a, &t, &aino, 100).await;
    let tax = by_title(&msgs, "Verotuspäätös 2025")["messageId"]
        .as_i64()
        .unwrap();
    let d = a
        .get(&format!("/v1/consents/{aino}/messages/{tax}"), &t)
        .await
        .json();
    let att = d["attachments"][0]["attachmentId"].as_i64().unwrap();
    let path = format!("/v1/consents/{aino}/messages/{tax}/attachments/{att}");

    let full = a.get(&path, &t).await.expect(200);
    assert_eq!(full.body.len(), 151552);
    assert_eq!(full.header("content-length"), Some("151552"));
    assert_eq!(full.header("content-type"), Some("application/pdf"));
    assert_eq!(
        full.header("content-disposition"),
        Some("attachment; filename=\"verotuspaatos-2025.pdf\"")
    );
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(full.header("cache-control"), Some("no-store"));
    assert_eq!(
        &full.body[..],
        &ikkuna_sandbox::content::bytes_at(tax, att, 0, 151552)[..]
    );
    // Deterministic.
    assert_eq!(a.get(&path, &t).await.body, full.body);

    for (range, start, end) in [
        ("bytes=0-9", 0usize, 10usize),
        ("bytes=65530-65545", 65530, 65546),
        ("bytes=151000-", 151000, 151552),
        ("bytes=-100", 151452, 151552),
        ("bytes=151500-999999", 151500, 151552),
    ] {
        let r = a.get_with(&path, &t, &[("range", range)]).await.expect(206);
        assert_eq!(&r.body[..], &full.body[start..end], "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{}/151552", end - 1).as_str())
        );
        assert_eq!(
            r.header("content-length"),
            Some((end - start).to_string().as_str())
        );
    }
    for range in ["bytes=151552-", "bytes=200000-300000", "bytes=-0"] {
        let r = a.get_with(&path, &t, &[("range", range)]).await.expect(416);
        assert_eq!(r.header("content-range"), Some("bytes */151552"));
    }
    for range in ["bytes=0-1,5-6", "lines=1-2", "bytes=9-1", "bytes=x-"] {
        let r = a.get_with(&path, &t, &[("range", range)]).await.expect(200);
        assert_eq!(r.body.len(), 151552, "{range}");
    }
    // Unknown and malformed attachment ids.
    a.get(
        &format!("/v1/consents/{aino}/messages/{tax}/attachments/1"),
        &t,
    )
    .await
    .expect(404);
    a.get(
        &format!("/v1/consents/{aino}/messages/{tax}/attachments/x"),
        &t,
    )
    .await
    .expect(400);
}

#[tokio::test]
async fn attachments_over_2_gib_serve_ranges_at_their_end() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let t = a.token().await;
    let aino = a.consent_id(&t, AINO).await;
    let msgs = all_messages(&a, &t, &aino, 100).await;
    let m = by_title(&msgs, "Tilaamasi sukututkimusaineisto")["messageId"]
        .as_i64()
        .unwrap();
    let d = a
        .get(&format!("/v1/consents/{aino}/messages/{m}"), &t)
        .await
        .json();
    let att = &d["attachments"][0];
    let size = att["size"].as_u64().unwrap();
    assert!(size > 2 * 1024 * 1024 * 1024);
    let id = att["attachmentId"].as_i64().unwrap();
    let path = format!("/v1/consents/{aino}/messages/{m}/attachments/{id}");
    let start = size - 100_000;
    let r = a
        .get_with(&path, &t, &[("range", &format!("bytes={start}-"))])
        .await
        .expect(206);
    assert_eq!(r.body.len(), 100_000);
    assert_eq!(
        &r.body[..],
        &ikkuna_sandbox::content::bytes_at(m, id, start, 100_000)[..]
    );
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {start}-{}/{size}", size - 1).as_str())
    );
    // A full request announces the whole length without sending it all at once; read the
    // headers and drop it.
    let res = a.stream(&path, &t, &[]).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-length"].to_str().unwrap(),
        size.to_string()
    );
}

#[tokio::test]
async fn openings_are_idempotent_and_mark_read_everywhere() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let b = h.provider(1);
    let ta = a.token().await;
    let tb = b.token().await;
    let aino_a = a.consent_id(&ta, AINO).await;
    let aino_b = b.consent_id(&tb, AINO).await;
    let msgs = all_messages(&a, &ta, &aino_a, 100).await;
    let id = by_title(&msgs, "Ajoneuvoveron eräpäivä lähestyy")["messageId"]
        .as_i64()
        .unwrap();
    let path_a = format!("/v1/consents/{aino_a}/messages/{id}/openings");
    let path_b = format!("/v1/consents/{aino_b}/messages/{id}/openings");
    // The content is released to provider-a before its citizen can open it.
    let unreleased = a
        .post_json(
            &path_a,
            &ta,
            &json!({"openingId": "a-0", "openedAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}),
        )
        .await
        .expect(422);
    assert_eq!(unreleased.reason(), "Opened before content release");
    a.get(&format!("/v1/consents/{aino_a}/messages/{id}"), &ta)
        .await
        .expect(200);

    let opened_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let first = a
        .post_json(
            &path_a,
            &ta,
            &json!({"openingId": "a-1", "openedAt": opened_at}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(first["firstOpen"], true);
    assert_eq!(first["firstOpenStatus"], "Provisional");
    assert_eq!(first["openingId"], "a-1");
    assert_eq!(first["messageId"], id);
    assert!(ts_ok(&first["readAt"]));
    // Repeat: 409 with exactly the original body.
    let again = a
        .post_json(
            &path_a,
            &ta,
            &json!({"openingId": "a-1", "openedAt": opened_at}),
        )
        .await
        .expect(409)
        .json();
    assert_eq!(again, first);
    // A second opening in the same window is not first.
    let second = a
        .post_json(
            &path_a,
            &ta,
            &json!({"openingId": "a-2", "openedAt": opened_at}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(second["firstOpen"], false);
    assert_eq!(second["readAt"], first["readAt"]);
    // Read is visible to the other provider, whose opening is not first either.
    let seen_b = b
        .get(&format!("/v1/consents/{aino_b}/messages/{id}"), &tb)
        .await
        .expect(200)
        .json();
    assert_eq!(seen_b["readAt"], first["readAt"]);
    let ob = b
        .post_json(
            &path_b,
            &tb,
            &json!({"openingId": "a-1", "openedAt": opened_at}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(ob["firstOpen"], false, "openingId keys are per provider");
    // A message already read in DVV's own service is never a first open for a provider.
    let dvv_read = by_title(&msgs, "Tarkista väestötietosi");
    assert!(ts_ok(&dvv_read["readAt"]));
    a.get(
        &format!("/v1/consents/{aino_a}/messages/{}", dvv_read["messageId"]),
        &ta,
    )
    .await
    .expect(200);
    let r = a
        .post_json(
            &format!(
                "/v1/consents/{aino_a}/messages/{}/openings",
                dvv_read["messageId"]
            ),
            &ta,
            &json!({"openingId": "a-3", "openedAt": opened_at}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(r["firstOpen"], false);
    assert_eq!(r["readAt"], dvv_read["readAt"]);

    // Bad opening bodies.
    let future = (chrono::Utc::now() + chrono::Duration::seconds(300))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for body in [
        json!({"openingId": "", "openedAt": opened_at}),
        json!({"openingId": "x".repeat(65), "openedAt": opened_at}),
        json!({"openingId": "has space", "openedAt": opened_at}),
        json!({"openingId": "ok-1", "openedAt": "yesterday"}),
        json!({"openingId": "ok-1"}),
        json!({"openedAt": opened_at}),
    ] {
        a.post_json(&path_a, &ta, &body).await.expect(400);
    }
    // A future `openedAt` (the reporter's clock ahead) and a backdated one are named refusals.
    let r = a
        .post_json(
            &path_a,
            &ta,
            &json!({"openingId": "ok-1", "openedAt": future}),
        )
        .await
        .expect(422);
    assert_eq!(r.reason(), "Opened in the future");
    let backdated = (chrono::Utc::now() - chrono::Duration::seconds(600))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let r = a
        .post_json(
            &path_a,
            &ta,
            &json!({"openingId": "ok-2", "openedAt": backdated}),
        )
        .await
        .expect(422);
    assert_eq!(r.reason(), "Opened before content release");
    let openings = h.admin.get("/admin/openings").await;
    let rows = openings.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["providerId"], "provider-a");
    assert_eq!(rows[0]["openingId"], "a-1");
    assert_eq!(rows[0]["firstOpen"], true);
    assert!(ts_ok(&rows[0]["openedAt"]) && ts_ok(&rows[0]["receivedAt"]));
}

#[tokio::test]
async fn two_providers_race_for_the_first_open() {
    let h = start_sandbox().await;
    let a = Arc::new(h.provider(0));
    let b = Arc::new(h.provider(1));
    let ta = a.token().await;
    let tb = b.token().await;
    let aino_a = a.consent_id(&ta, AINO).await;
    let aino_b = b.consent_id(&tb, AINO).await;
    // Fresh messages, so every round starts unread.
    let mut ids = Vec::new();
    for i in 0..10 {
        let (id, _) = h
            .admin
            .new_message(json!({"endUserId": AINO, "title": format!("Race {i}"), "body": "b"}))
            .await;
        ids.push(id);
        a.get(&format!("/v1/consents/{aino_a}/messages/{id}"), &ta)
            .await
            .expect(200);
        b.get(&format!("/v1/consents/{aino_b}/messages/{id}"), &tb)
            .await
            .expect(200);
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for id in &ids {
        let mut tasks = Vec::new();
        for k in 0..4 {
            let (p, t, c) = if k % 2 == 0 {
                (a.clone(), ta.clone(), aino_a.clone())
            } else {
                (b.clone(), tb.clone(), aino_b.clone())
            };
            let body = json!({"openingId": format!("race-{id}-{k}"), "openedAt": now});
            let path = format!("/v1/consents/{c}/messages/{id}/openings");
            tasks.push(tokio::spawn(async move {
                p.post_json(&path, &t, &body).await.expect(201).json()
            }));
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        let firsts = answers.iter().filter(|a| a["firstOpen"] == true).count();
        assert_eq!(firsts, 1, "exactly one first open for message {id}");
        let read: std::collections::HashSet<String> = answers
            .iter()
            .map(|a| a["readAt"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(read.len(), 1, "every answer has the same readAt");
    }
    let openings = h.admin.get("/admin/openings").await;
    for id in &ids {
        let firsts = openings
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["messageId"] == *id && o["firstOpen"] == true)
            .count();
        assert_eq!(firsts, 1);
    }
}

#[tokio::test]
async fn events_feed_with_continuation() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let b = h.provider(1);
    let ta = a.token().await;
    let tb = b.token().await;
    let (events, token_a) = drain_events(&a, &ta, None).await;
    assert!(events.is_empty(), "the seed emits no events");
    let (_, token_b) = drain_events(&b, &tb, None).await;

    // Created (to both: Aino has active consents with both).
    let (id, _) = h
        .admin
        .new_message(json!({
            "endUserId": AINO, "title": "Uusi viesti", "body": "Hei", "bodyFormat": "Markdown",
            "messageServiceType": "Verifiable", "senderName": "Kela",
            "attachments": [{"name": "a.pdf", "mediaType": "application/pdf", "size": 10}]
        }))
        .await;
    // Liisa has no consent: nobody hears of her mail.
    h.admin
        .new_message(json!({"endUserId": LIISA, "title": "Hidden", "body": "x"}))
        .await;
    let aino_a = a.consent_id(&ta, AINO).await;
    let aino_b = b.consent_id(&tb, AINO).await;
    // Receipt confirmed through provider-b, read through provider-a.
    b.post_json(
        &format!("/v1/consents/{aino_b}/messages/{id}/receipt-confirmations"),
        &tb,
        &json!({}),
    )
    .await
    .expect(201);
    a.get(&format!("/v1/consents/{aino_a}/messages/{id}"), &ta)
        .await
        .expect(200);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    a.post_json(
        &format!("/v1/consents/{aino_a}/messages/{id}/openings"),
        &ta,
        &json!({"openingId": "ev-1", "openedAt": now}),
    )
    .await
    .expect(201);
    // Consent granted to Liisa, revoked from Aino (provider-a).
    h.admin
        .post("/admin/consents/grant", json!({"endUserId": LIISA}))
        .await
        .expect(200);
    let revoked = h
        .admin
        .post(
            "/admin/consents/revoke",
            json!({"endUserId": AINO, "providerId": "provider-a"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(revoked["state"], "Revoked");

    let (events, token_a2) = drain_events(&a, &ta, Some(&token_a)).await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "Electronic message created",
            "Receipt confirmed",
            "Electronic message read",
            "Consent granted",
            "Consent revoked"
        ]
    );
    assert_eq!(events[0]["metadata"]["consentId"], aino_a);
    assert_eq!(events[0]["metadata"]["messageId"], id);
    assert!(events[3]["metadata"].get("messageId").is_none());
    assert_eq!(events[4]["metadata"]["consentId"], aino_a);
    for e in &events {
        assert!(ts_ok(&e["eventTime"]));
        assert!(!e["eventId"].as_str().unwrap().is_empty());
    }
    let unique: std::collections::HashSet<&str> = events
        .iter()
        .map(|e| e["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(unique.len(), events.len());

    let (events_b, _) = drain_events(&b, &tb, Some(&token_b)).await;
    let types_b: Vec<&str> = events_b
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types_b,
        [
            "Electronic message created",
            "Receipt confirmed",
            "Electronic message read"
        ]
    );
    assert_eq!(events_b[0]["metadata"]["consentId"], aino_b);

    // Nothing new: empty list, a token to continue from.
    let page = a
        .get(&format!("/v1/events?continuationToken={token_a2}"), &ta)
        .await
        .expect(200)
        .json();
    assert_eq!(page["events"], json!([]));
    assert!(page["continuationToken"].is_string());
    // With Aino's consent revoked, provider-a hears nothing of her new mail.
    h.admin
        .new_message(json!({"endUserId": AINO, "title": "After revoke", "body": "x"}))
        .await;
    let (after, _) = drain_events(&a, &ta, Some(&token_a2)).await;
    assert!(after.is_empty());
    let (after_b, _) = drain_events(&b, &tb, None).await;
    assert_eq!(after_b.len(), 4, "provider-b still hears");

    // Bad and foreign tokens.
    for bad in ["garbage", "a.b", token_b.as_str()] {
        a.get(&format!("/v1/events?continuationToken={bad}"), &ta)
            .await
            .expect(400);
    }
}

#[tokio::test]
async fn events_pages_hold_at_most_1000() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let t = a.token().await;
    // Each grant/revoke pair is two events for provider-a.
    for _ in 0..520 {
        h.admin
            .post("/admin/consents/revoke", json!({"endUserId": EEVA}))
            .await
            .expect(200);
        h.admin
            .post("/admin/consents/grant", json!({"endUserId": EEVA}))
            .await
            .expect(200);
    }
    let first = a.get("/v1/events", &t).await.expect(200).json();
    assert_eq!(first["events"].as_array().unwrap().len(), 1000);
    let token = first["continuationToken"].as_str().unwrap();
    let second = a
        .get(&format!("/v1/events?continuationToken={token}"), &t)
        .await
        .expect(200)
        .json();
    assert_eq!(second["events"].as_array().unwrap().len(), 40);
}

#[tokio::test]
async fn revoked_consent_forbids_every_message_call() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let t = a.token().await;
    let aino = a.consent_id(&t, AINO).await;
    let msgs = all_messages(&a, &t, &aino, 100).await;
    let tax = by_title(&msgs, "Verotuspäätös 2025")["messageId"]
        .as_i64()
        .unwrap();
    let d = a
        .get(&format!("/v1/consents/{aino}/messages/{tax}"), &t)
        .await
        .json();
    let att = d["attachments"][0]["attachmentId"].as_i64().unwrap();
    let read_before = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    h.admin
        .post("/admin/consents/revoke", json!({"endUserId": AINO}))
        .await
        .expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for r in [
        a.get(&format!("/v1/consents/{aino}/messages"), &t).await,
        a.get(&format!("/v1/consents/{aino}/messages/{tax}"), &t)
            .await,
        a.get(
            &format!("/v1/consents/{aino}/messages/{tax}/attachments/{att}"),
            &t,
        )
        .await,
    ] {
        assert_eq!(r.expect(403).reason(), "Consent revoked");
    }
    // An opening made after the revocation is refused for good; one made while the consent was
    // active still counts, revoked since or not.
    let r = a
        .post_json(
            &format!("/v1/consents/{aino}/messages/{tax}/openings"),
            &t,
            &json!({"openingId": "r-1", "openedAt": now}),
        )
        .await
        .expect(403);
    assert_eq!(r.reason(), "Opened outside consent");
    let accepted = a
        .post_json(
            &format!("/v1/consents/{aino}/messages/{tax}/openings"),
            &t,
            &json!({"openingId": "r-2", "openedAt": read_before}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(accepted["openedAt"], read_before.as_str());
    let v = a
        .post_json("/v1/consents/lookup", &t, &json!({"endUserId": AINO}))
        .await
        .expect(200)
        .json();
    assert_eq!(v["state"], "Revoked");
    assert_eq!(v["consentId"], aino);
    // Granting again restores access under the same consentId.
    h.admin
        .post("/admin/consents/grant", json!({"endUserId": AINO}))
        .await
        .expect(200);
    a.get(&format!("/v1/consents/{aino}/messages"), &t)
        .await
        .expect(200);
}
