//! Replies end to end (issue 19): the citizen's reply streamed from the operator's client through
//! the gateway binary to the sandbox DVV over mutual TLS, and back as a thread; refusals before
//! the upload is read; limits mid-stream; DVV down, slow and cutting the upload; the client going
//! away; a retry after SIGKILL; and the gateway's memory while a 100 MiB file passes.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{rss_kib, Answer, Harness};
use futures_util::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

type Upload = UnsyncBoxBody<Bytes, std::io::Error>;
type UploadClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Upload>;

const BOUNDARY: &str = "test-boundary-7f3a";
const CHUNK: usize = 64 * 1024;

fn upload_client(h: &Harness) -> UploadClient {
    let ca = std::path::Path::new(h.info["caCert"].as_str().expect("caCert"));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(common::tls_client_config(ca))
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// One piece of a reply as the test sends it.
enum Piece {
    Bytes(Bytes),
    /// `n` bytes of a repeating pattern, generated chunk by chunk (never held whole).
    Pattern(u64),
    /// The client breaks off here.
    Fail,
    /// The client stops sending here and never goes on.
    Hang,
}

fn head(name: &str, file: Option<(&str, &str)>) -> Piece {
    let text = match file {
        Some((file_name, media_type)) => format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: {media_type}\r\n\r\n"
        ),
        None => format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
    };
    Piece::Bytes(Bytes::from(text))
}

fn crlf() -> Piece {
    Piece::Bytes(Bytes::from_static(b"\r\n"))
}

fn end() -> Piece {
    Piece::Bytes(Bytes::from(format!("--{BOUNDARY}--\r\n")))
}

/// A reply of `text` and one file of `size` pattern bytes.
fn reply(text: &str, file: Option<(&str, &str, u64)>) -> Vec<Piece> {
    let mut pieces = vec![
        head("body", None),
        Piece::Bytes(Bytes::from(text.to_owned())),
        crlf(),
    ];
    if let Some((name, media_type, size)) = file {
        pieces.push(head("file", Some((name, media_type))));
        pieces.push(Piece::Pattern(size));
        pieces.push(crlf());
    }
    pieces.push(end());
    pieces
}

fn pattern_chunk() -> Bytes {
    Bytes::from((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

/// SHA-256 of `size` pattern bytes, as the file's digest must come out.
fn pattern_sha256(size: u64) -> String {
    let chunk = pattern_chunk();
    let mut hash = Sha256::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        hash.update(&chunk[..n]);
        left -= n as u64;
    }
    hex::encode(hash.finalize())
}

fn declared_length(pieces: &[Piece]) -> u64 {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Bytes(b) => b.len() as u64,
            Piece::Pattern(n) => *n,
            Piece::Fail | Piece::Hang => 0,
        })
        .sum()
}

fn body_of(pieces: Vec<Piece>) -> Upload {
    let chunk = pattern_chunk();
    let stream = futures_util::stream::iter(pieces).flat_map(move |piece| {
        let items: Box<
            dyn futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + Unpin,
        > = match piece {
            Piece::Bytes(b) => Box::new(futures_util::stream::iter([Ok(Frame::data(b))])),
            Piece::Pattern(size) => {
                let chunk = chunk.clone();
                let count = size.div_ceil(CHUNK as u64);
                Box::new(futures_util::stream::iter((0..count).map(move |i| {
                    let n = (size - i * CHUNK as u64).min(CHUNK as u64) as usize;
                    Ok(Frame::data(chunk.slice(..n)))
                })))
            }
            Piece::Fail => Box::new(futures_util::stream::iter([Err(std::io::Error::other(
                "the client gave up",
            ))])),
            Piece::Hang => Box::new(futures_util::stream::pending()),
        };
        items
    });
    BodyExt::boxed_unsync(StreamBody::new(stream))
}

/// POSTs a reply; `length` sends a `Content-Length` (else chunked).
async fn post_reply(
    h: &Harness,
    client: &UploadClient,
    message_id: i64,
    token: &str,
    key: &str,
    pieces: Vec<Piece>,
    length: Option<u64>,
) -> Result<Answer, String> {
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!(
            "{}/v1/messages/{message_id}/replies",
            h.gateway_url()
        ))
        .header("authorization", format!("Bearer {token}"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .header("idempotency-key", key);
    if let Some(n) = length {
        req = req.header("content-length", n);
    }
    let req = req.body(body_of(pieces)).expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(120), client.request(req))
        .await
        .map_err(|_| "no answer in 120 s".to_owned())?
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// A new message for `citizen` whose sender accepts replies (or not).
async fn message(h: &Harness, citizen: &str, replies: bool) -> i64 {
    let created = h
        .sandbox_admin(
            "POST",
            "/admin/messages",
            Some(json!({
                "endUserId": citizen,
                "title": "Lisäselvityspyyntö",
                "body": "Lähetä meille tiliote.",
                "replyAllowedBy": if replies { "Anyone" } else { "No one" },
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json());
    created.json()["messageId"].as_i64().expect("messageId")
}

/// The replies DVV recorded.
async fn dvv_replies(h: &Harness) -> Vec<Value> {
    common::list_of(
        h.sandbox_admin("GET", "/admin/replies", None).await.json(),
        "replies",
    )
}

/// POSTs to the replies path the gateway made at DVV.
async fn dvv_reply_posts(h: &Harness) -> usize {
    h.dvv_calls("provider-a")
        .await
        .iter()
        .filter(|c| {
            c["method"] == "POST" && c["path"].as_str().is_some_and(|p| p.ends_with("/replies"))
        })
        .count()
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn inbox_entry(page: &Value, message_id: i64) -> Value {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["messageId"] == message_id)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_reply_with_a_file_reaches_dvv_audited_once_and_comes_back_as_a_thread() {
    let h = Harness::start(common::NO_LIMITS).await;
    let client = upload_client(&h);
    let citizen = h.citizen("Active");
    let token = h.token(&citizen);
    let message_id = message(&h, &citizen, true).await;
    let openings_before = h.dvv_openings().await.len();
    let text = "Hei, tiliote liitteenä. Terveisin Maija";
    let size = 300 * 1024 + 7;
    let pieces = reply(text, Some(("tiliote.pdf", "application/pdf", size)));
    let length = declared_length(&pieces);
    let a = post_reply(
        &h,
        &client,
        message_id,
        &token,
        "key-1",
        pieces,
        Some(length),
    )
    .await
    .expect("answer");
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let receipt = a.json();
    let reply_id = receipt["replyId"].as_i64().expect("replyId");
    assert_eq!(receipt["messageId"], message_id);
    assert_eq!(receipt["bodyLength"], text.chars().count());
    assert_eq!(receipt["attachments"][0]["size"], size);
    assert_eq!(receipt["attachments"][0]["sha256"], pattern_sha256(size));
    assert!(
        receipt.get("body").is_none(),
        "the receipt does not echo the text"
    );

    // The same key again: 409 with the original, and still one reply at DVV.
    let again = post_reply(
        &h,
        &client,
        message_id,
        &token,
        "key-1",
        reply(text, Some(("tiliote.pdf", "application/pdf", size))),
        None,
    )
    .await
    .expect("answer");
    assert_eq!(
        again.status,
        409,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    assert_eq!(again.json()["replyId"], reply_id);
    assert!(
        again.json()["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "a 409 in the house style carries a reason"
    );
    assert_eq!(dvv_replies(&h).await.len(), 1);
    assert_eq!(
        dvv_reply_posts(&h).await,
        1,
        "the repeat was answered unread"
    );

    // The thread: the reply under its message when the inbox is listed, with its text in the
    // message detail; then the authority's answer as a new message in reply to it.
    let page = h.call("GET", "/v1/messages?limit=100", Some(&token)).await;
    assert_eq!(page.status, 200);
    let entry = inbox_entry(&page.json(), message_id);
    assert_eq!(entry["replyAllowedBy"], "Anyone");
    assert_eq!(entry["replies"][0]["replyId"], reply_id);
    assert!(entry["replies"][0].get("body").is_none());
    let detail = h
        .call("GET", &format!("/v1/messages/{message_id}"), Some(&token))
        .await;
    assert_eq!(detail.json()["replies"][0]["body"], text);
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let page = h
            .call("GET", "/v1/messages?limit=100", Some(&token))
            .await
            .json();
        let found = page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .find(|m| m["inReplyToMessageId"] == reply_id)
            .cloned();
        if let Some(answer) = found {
            break answer;
        }
        assert!(Instant::now() < deadline, "no answer to the reply arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(answer["title"].as_str().expect("title").starts_with("Re: "));

    // A reply is not an opening: only the detail read above reported one.
    assert_eq!(h.dvv_openings().await.len(), openings_before + 1);

    // The audit trail: one line per reply call, action `reply`, the ids, sizes and hashes of
    // each part, never the text.
    let records = h.audit_records();
    let replies: Vec<&Value> = records.iter().filter(|r| r["action"] == "reply").collect();
    assert_eq!(replies.len(), 2, "{replies:?}");
    let first = replies[0];
    assert_eq!(first["messageId"], message_id);
    assert_eq!(first["status"], 201);
    assert_eq!(first["outcome"], "ok");
    assert_eq!(first["reply"]["replyId"], reply_id);
    assert_eq!(first["reply"]["parts"][0]["kind"], "text");
    assert_eq!(first["reply"]["parts"][0]["size"], text.len());
    assert_eq!(
        first["reply"]["parts"][0]["sha256"],
        hex::encode(Sha256::digest(text.as_bytes()))
    );
    assert_eq!(first["reply"]["parts"][1]["sha256"], pattern_sha256(size));
    assert_eq!(replies[1]["status"], 409);
    assert_eq!(replies[1]["reply"]["replyId"], reply_id);
    let trail = std::fs::read_to_string(h.audit_log()).expect("audit");
    assert!(!trail.contains("tiliote") && !trail.contains("Maija"));
    assert!(
        !h.log_text().contains("Maija"),
        "no reply text in the gateway's log"
    );
}

#[tokio::test]
async fn refusals_come_before_a_byte_of_the_upload_is_read() {
    let h = Harness::start(common::NO_LIMITS).await;
    let client = upload_client(&h);
    let citizen = h.citizen("Active");
    let token = h.token(&citizen);
    // Each upload below sends its head and then hangs: only an answer given unread can arrive.
    let hanging = || vec![head("body", None), Piece::Hang];

    let closed = message(&h, &citizen, false).await;
    let a = post_reply(&h, &client, closed, &token, "k-a", hanging(), Some(1000))
        .await
        .expect("answered without the body");
    assert_eq!(a.status, 403, "{}", String::from_utf8_lossy(&a.body));
    assert!(a.json()["reason"]
        .as_str()
        .unwrap()
        .starts_with("Replies not allowed"));

    let open = message(&h, &citizen, true).await;
    let a = post_reply(&h, &client, open, &token, "k-b", hanging(), Some(1 << 40))
        .await
        .expect("answered without the body");
    assert_eq!(a.status, 413, "{}", String::from_utf8_lossy(&a.body));

    let a = post_reply(&h, &client, open, &token, "bad key!", hanging(), Some(10))
        .await
        .expect("answered without the body");
    assert_eq!(a.status, 400);

    let revoked = h.citizen("Revoked");
    let a = post_reply(
        &h,
        &client,
        open,
        &h.token(&revoked),
        "k-c",
        hanging(),
        Some(10),
    )
    .await
    .expect("answered without the body");
    assert_eq!(a.status, 403);
    assert!(a.json()["consentServiceUrl"].is_string());

    assert_eq!(dvv_reply_posts(&h).await, 0, "nothing was sent to DVV");
    let audited = h
        .audit_records()
        .into_iter()
        .filter(|r| r["action"] == "reply")
        .count();
    assert_eq!(audited, 4, "every refusal is audited");
}

#[tokio::test]
async fn limits_and_types_broken_mid_stream_leave_nothing_at_dvv() {
    let h = Harness::start(common::NO_LIMITS).await;
    let client = upload_client(&h);
    let citizen = h.citizen("Active");
    let token = h.token(&citizen);
    let open = message(&h, &citizen, true).await;
    // 10 MiB + 1: DVV's limit on one file, broken after the upload began (chunked: no length).
    let too_big = reply(
        "liite",
        Some(("iso.pdf", "application/pdf", 10 * 1024 * 1024 + 1)),
    );
    let a = post_reply(&h, &client, open, &token, "k-1", too_big, None)
        .await
        .expect("answer");
    assert_eq!(a.status, 413, "{}", String::from_utf8_lossy(&a.body));
    let exe = reply("ohjelma", Some(("a.exe", "application/x-msdownload", 10)));
    let a = post_reply(&h, &client, open, &token, "k-2", exe, None)
        .await
        .expect("answer");
    assert_eq!(a.status, 415, "{}", String::from_utf8_lossy(&a.body));
    assert!(
        dvv_replies(&h).await.is_empty(),
        "DVV dropped the partial replies"
    );
    // The key of a refused upload is still free.
    let ok = reply("nyt oikein", Some(("a.pdf", "application/pdf", 10)));
    let a = post_reply(&h, &client, open, &token, "k-1", ok, None)
        .await
        .expect("answer");
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(dvv_replies(&h).await.len(), 1);
}

#[tokio::test]
async fn dvv_cutting_failing_slow_or_down_is_a_clear_error_and_never_two_replies() {
    let mut h = Harness::start(&[
        ("IKKUNA_DVV_BODY_IDLE_TIMEOUT_MS", "1500"),
        ("IKKUNA_DVV_CALL_TIMEOUT_MS", "3000"),
        ("IKKUNA_LIMITS_CITIZEN_PER_MINUTE", "1000000"),
        ("IKKUNA_LIMITS_CITIZEN_BURST", "100000"),
    ])
    .await;
    let client = upload_client(&h);
    let citizen = h.citizen("Active");
    let token = h.token(&citizen);
    let open = message(&h, &citizen, true).await;
    let consent = h.call("GET", "/v1/consent", Some(&token)).await.json();
    let consent_id = consent["consentId"].as_str().expect("consentId").to_owned();
    // Faults hit the upload only (not the consent lookup, also a POST under /v1/consents/).
    let replies_path = format!("/v1/consents/{consent_id}/messages/{open}/replies");
    let file = || reply("tässä", Some(("a.pdf", "application/pdf", 2 * 1024 * 1024)));
    let fault = |plan: Value| async {
        let set = h.sandbox_admin("POST", "/admin/faults", Some(plan)).await;
        assert_eq!(set.status, 200, "{:?}", set.json());
    };

    // DVV breaks the upload off part-way.
    fault(json!({"durationMs": 60000, "cutUploadRate": 1.0, "paths": replies_path, "methods": ["POST"]})).await;
    let a = post_reply(&h, &client, open, &token, "k-cut", file(), None)
        .await
        .expect("answer");
    assert_eq!(a.status, 502, "{}", String::from_utf8_lossy(&a.body));
    assert!(dvv_replies(&h).await.is_empty());

    // DVV records the reply but the answer is lost: the retry learns the original (409).
    fault(json!({"durationMs": 60000, "loseAnswerRate": 1.0, "paths": replies_path, "methods": ["POST"]})).await;
    match post_reply(&h, &client, open, &token, "k-lost", file(), None).await {
        Ok(a) => assert!(a.status >= 500, "{}", a.status),
        // On a loaded machine the gateway's 502 (and its close) can overtake the last chunks of
        // the client's write: the client then sees a broken pipe instead of the answer. What
        // this step proves is the retry below: one reply at DVV, answered with the original.
        Err(e) => assert!(e.contains("BodyWrite") || e.contains("Broken pipe"), "{e}"),
    }
    h.sandbox_admin("DELETE", "/admin/faults", None).await;
    let a = post_reply(&h, &client, open, &token, "k-lost", file(), None)
        .await
        .expect("answer");
    assert_eq!(a.status, 409, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(dvv_replies(&h).await.len(), 1, "exactly one reply at DVV");

    // DVV slow: the gateway gives up within its bounds (the upload's idle timeout, or the
    // answer's deadline once the body is sent) with a clear 504. Whether or not the slow DVV
    // went on to record it, the retry with the same key leaves exactly one reply.
    fault(
        json!({"durationMs": 60000, "latencyMs": 6000, "paths": replies_path, "methods": ["POST"]}),
    )
    .await;
    let started = Instant::now();
    let a = post_reply(&h, &client, open, &token, "k-slow", file(), None)
        .await
        .expect("answer");
    assert_eq!(a.status, 504, "{}", String::from_utf8_lossy(&a.body));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(7)).await; // the delayed request has reached DVV
    h.sandbox_admin("DELETE", "/admin/faults", None).await;
    let a = post_reply(&h, &client, open, &token, "k-slow", file(), None)
        .await
        .expect("answer");
    assert!(a.status == 201 || a.status == 409, "{}", a.status);
    assert_eq!(dvv_replies(&h).await.len(), 2, "one reply per key at DVV");

    // DVV down.
    h.stop_sandbox().await;
    let a = post_reply(&h, &client, open, &token, "k-down", file(), None)
        .await
        .expect("answer");
    assert!(
        a.status == 502 || a.status == 503 || a.status == 504,
        "{}",
        a.status
    );
    assert!(a.json()["reason"].is_string());
}

#[tokio::test]
async fn a_client_that_goes_away_or_a_killed_gateway_leaves_at_most_the_retried_reply() {
    let mut h = Harness::start(common::NO_LIMITS).await;
    let client = upload_client(&h);
    let citizen = h.citizen("Active");
    let token = h.token(&citizen);
    let open = message(&h, &citizen, true).await;

    // The client breaks off mid-file.
    let mut broken = vec![
        head("body", None),
        Piece::Bytes(Bytes::from_static(b"kesken")),
        crlf(),
        head("file", Some(("a.pdf", "application/pdf"))),
        Piece::Pattern(1024 * 1024),
        Piece::Fail,
    ];
    let _ = post_reply(
        &h,
        &client,
        open,
        &token,
        "k-gone",
        std::mem::take(&mut broken),
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        dvv_replies(&h).await.is_empty(),
        "the partial reply was dropped"
    );

    // The gateway is killed mid-upload; the retry with the same key lands exactly once.
    let hanging = vec![
        head("body", None),
        Piece::Bytes(Bytes::from_static(b"uudestaan")),
        crlf(),
        head("file", Some(("a.pdf", "application/pdf"))),
        Piece::Pattern(512 * 1024),
        Piece::Hang,
    ];
    let upload = {
        let client = client.clone();
        let (url, token) = (h.gateway_url(), token.clone());
        tokio::spawn(async move {
            let req = http::Request::builder()
                .method("POST")
                .uri(format!("{url}/v1/messages/{open}/replies"))
                .header("authorization", format!("Bearer {token}"))
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .header("idempotency-key", "k-crash")
                .body(body_of(hanging))
                .expect("request");
            client.request(req).await.map(|r| r.status())
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.kill_gateway().await;
    let outcome = tokio::time::timeout(Duration::from_secs(30), upload)
        .await
        .expect("the client learns");
    assert!(
        !matches!(outcome, Ok(Ok(s)) if s.is_success()),
        "{outcome:?}"
    );
    h.start_gateway().await;
    let text = "uudestaan";
    let a = post_reply(
        &h,
        &client,
        open,
        &token,
        "k-crash",
        reply(text, Some(("a.pdf", "application/pdf", 512 * 1024))),
        None,
    )
    .await
    .expect("answer");
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    let again = post_reply(
        &h,
        &client,
        open,
        &token,
        "k-crash",
        reply(text, None),
        None,
    )
    .await
    .expect("answer");
    assert_eq!(again.status, 409);
    assert_eq!(dvv_replies(&h).await.len(), 1, "exactly one reply at DVV");
}

/// The measurement of the issue: a reply with a text and a 100 MiB file, chunked, through the
/// gateway to the sandbox; the gateway's peak RSS may grow by less than 16 MiB (a bound on
/// memory, not a timing: the time is printed).
#[tokio::test]
async fn a_100_mib_attachment_passes_with_the_gateway_memory_flat() {
    let mut h = Harness::with_sandbox_options(|o| {
        o.reply_limits.max_file_bytes = 128 * 1024 * 1024;
        o.reply_limits.max_total_bytes = 128 * 1024 * 1024;
    })
    .await;
    h.gateway_env = common::NO_LIMITS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    h.start_gateway().await;
    let client = upload_client(&h);
    let citizen = h.citizen("Active");
    let token = h.token(&citizen);
    let open = message(&h, &citizen, true).await;
    // Warm up the paths (TLS sessions, token, pools) before the baseline.
    let warm = post_reply(
        &h,
        &client,
        open,
        &token,
        "warm",
        reply("lämmittely", None),
        None,
    )
    .await
    .expect("answer");
    assert_eq!(warm.status, 201);
    let pid = h.gateway_pid();
    let (_, peak_before) = rss_kib(pid);
    let size = 100 * 1024 * 1024;
    let started = Instant::now();
    let a = post_reply(
        &h,
        &client,
        open,
        &token,
        "big",
        reply(
            "Pyydetty aineisto liitteenä.",
            Some(("aineisto.pdf", "application/pdf", size)),
        ),
        None,
    )
    .await
    .expect("answer");
    let elapsed = started.elapsed();
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["attachments"][0]["sha256"], pattern_sha256(size));
    let (_, peak_after) = rss_kib(pid);
    let growth_kib = peak_after.saturating_sub(peak_before);
    println!(
        "100 MiB reply: {:.1} s, gateway peak RSS {} KiB -> {} KiB (growth {} KiB)",
        elapsed.as_secs_f64(),
        peak_before,
        peak_after,
        growth_kib
    );
    assert!(
        growth_kib < 16 * 1024,
        "gateway peak RSS grew by {growth_kib} KiB"
    );
    // Never a temporary file: everything on disk under the test's directory (the gateway's
    // store and audit trail, the sandbox's journal) stays far below the file's size.
    assert!(
        dir_bytes(h.dir.path()) < 8 * 1024 * 1024,
        "{} bytes on disk",
        dir_bytes(h.dir.path())
    );
    let recorded = dvv_replies(&h).await;
    assert_eq!(recorded.last().unwrap()["files"][0]["size"], size);
}
