//! A stand-in for an operator's backend: what a digital-mailbox operator builds beside Ikkuna.
//!
//! It signs a sandbox citizen in (a *pretend* strong identification, clearly labelled), mints the
//! citizen assertion with the operator's own key the way a real identity service would, calls
//! Ikkuna's operator API (`docs/operator-api.yaml`), receives and verifies Ikkuna's signed
//! webhooks, and serves a small accessible inbox: consent state with the link to DVV's consent
//! service, the message list with unread and attachment markers, a message view (Markdown bodies
//! rendered without raw HTML, scripts or remote images), the receipt step for `Verifiable`
//! messages, and attachment download. Dates and sizes are shown as Finnish users read them
//! (`12.11.2026 klo 11.30` in Finnish time, `148 kt`, `2,5 Gt`). It shows only what Ikkuna
//! returns and stores no mail: sessions and the ids of recent webhooks live in memory only.
//!
//! Run it against the sandbox with one command, from the same build as the gateway:
//!
//! ```sh
//! cargo run -- sandbox --open               # sandbox, gateway, this inbox and its webhook receiver
//! # then open http://127.0.0.1:8088/
//! ```
//!
//! `ikkuna sandbox --open` compiles this file into the `ikkuna` binary and starts it with
//! [`start`]; it also writes a webhook secret and points the gateway's webhooks at the receiver.
//! It also builds on its own (`cargo run --example operator_backend -- --data-dir data/sandbox
//! [--webhook-secret-file FILE]`), but that builds the test dependencies first.
//!
//! `tests/browser.rs` includes this file as a module and starts it in-process with [`start`], then
//! drives the inbox in headless Chromium.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use hmac::{Hmac, Mac as _};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use serde_json::Value;

/// Command line of the example.
#[derive(Parser, Debug)]
#[command(about = "A stand-in operator backend with a small inbox page, for the Ikkuna sandbox")]
pub struct Args {
    /// The sandbox data directory (holds sandbox.json).
    #[arg(long, default_value = "data/sandbox")]
    pub data_dir: PathBuf,
    /// Where the inbox page listens (plain HTTP: keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub listen: SocketAddr,
    /// Where the HTTPS webhook receiver listens (path `/webhooks`).
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub webhook_listen: SocketAddr,
    /// The webhook secret shared with the gateway (`webhooks.secret_file`); no receiver without it.
    #[arg(long)]
    pub webhook_secret_file: Option<PathBuf>,
}

/// What the example reads from the sandbox's `sandbox.json`.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct SandboxInfo {
    gateway_url: String,
    /// The sandbox admin listener (plain HTTP), which also serves the consent-service page.
    admin_url: String,
    ca_cert: PathBuf,
    operator_signing_key: PathBuf,
    operator_jwks: PathBuf,
    operator_issuer: String,
    gateway_audience: String,
    gateway_cert: PathBuf,
    gateway_key: PathBuf,
    citizens: Vec<SandboxCitizen>,
}

/// A seeded, fictional citizen.
#[derive(Deserialize, Debug, Clone)]
struct SandboxCitizen {
    id: String,
    name: String,
}

/// The operator's identity service, reduced to what the example needs: a key to sign with.
struct IdentityService {
    key: jsonwebtoken::EncodingKey,
    kid: String,
    issuer: String,
    audience: String,
}

impl IdentityService {
    fn load(info: &SandboxInfo) -> anyhow::Result<Self> {
        let pem = std::fs::read(&info.operator_signing_key).context("reading the operator key")?;
        let key =
            jsonwebtoken::EncodingKey::from_ec_pem(&pem).context("parsing the operator key")?;
        let jwks: Value = serde_json::from_slice(
            &std::fs::read(&info.operator_jwks).context("reading the operator JWKS")?,
        )?;
        let kid = jwks["keys"][0]["kid"]
            .as_str()
            .context("the operator JWKS has no kid")?
            .to_owned();
        Ok(Self {
            key,
            kid,
            issuer: info.operator_issuer.clone(),
            audience: info.gateway_audience.clone(),
        })
    }

    /// A two-minute assertion for a citizen identified at high assurance.
    fn assertion(&self, citizen_id: &str) -> anyhow::Result<String> {
        let now = unix_now();
        let claims = serde_json::json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": citizen_id,
            "acr": "http://ftn.ficora.fi/2017/loa3",
            "iat": now,
            "nbf": now,
            "exp": now + 120,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.key)?)
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// One verified webhook, ids only.
#[derive(Debug, Clone)]
struct SeenEvent {
    kind: String,
    consent_id: String,
    message_id: Option<i64>,
    time: String,
    /// The notification hint of `message.created` and `message.reminder`: what may be shown.
    notification: Option<Value>,
}

struct AppState {
    gateway: String,
    /// The sandbox admin origin over plain HTTP (see [`consent_link`]).
    sandbox_admin: String,
    client: HttpsClient,
    identity: IdentityService,
    citizens: Vec<SandboxCitizen>,
    /// Session cookie → citizen id. In memory only; a restart signs everyone out.
    sessions: Mutex<HashMap<String, String>>,
    /// The last verified webhooks (ids, types, times), newest first.
    events: Mutex<VecDeque<SeenEvent>>,
    webhook_secret: Option<Vec<u8>>,
}

type Shared = Arc<AppState>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let running = start(Args::parse()).await?;
    if let Some(hooks) = running.webhooks {
        println!("webhook receiver: https://{hooks}/webhooks");
    }
    println!("inbox: http://{}/", running.inbox);
    running.served.await?
}

/// The example's listeners once bound (ports resolved, so `127.0.0.1:0` works), serving in the
/// background; the browser test (`tests/browser.rs`) starts the example in-process through it.
pub struct Running {
    /// Where the inbox page answers.
    pub inbox: SocketAddr,
    /// Where the webhook receiver answers, when a webhook secret was given.
    pub webhooks: Option<SocketAddr>,
    /// The inbox server; it ends only on an error.
    pub served: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Reads the sandbox's `sandbox.json`, binds the listeners and serves them in the background.
pub async fn start(args: Args) -> anyhow::Result<Running> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let info: SandboxInfo = serde_json::from_slice(
        &std::fs::read(args.data_dir.join("sandbox.json"))
            .context("reading sandbox.json: start `ikkuna sandbox` first")?,
    )?;
    let webhook_secret = match &args.webhook_secret_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .context("reading the webhook secret")?
                .trim()
                .as_bytes()
                .to_vec(),
        ),
        None => None,
    };
    let state = Arc::new(AppState {
        gateway: info.gateway_url.trim_end_matches('/').to_owned(),
        sandbox_admin: info.admin_url.trim_end_matches('/').to_owned(),
        client: https_client(&info.ca_cert)?,
        identity: IdentityService::load(&info)?,
        citizens: info.citizens.clone(),
        sessions: Mutex::new(HashMap::new()),
        events: Mutex::new(VecDeque::new()),
        webhook_secret,
    });

    let mut webhooks = None;
    if state.webhook_secret.is_some() {
        let tls = webhook_tls(&info.gateway_cert, &info.gateway_key)?;
        let hooks = Router::new()
            .route("/webhooks", post(receive_webhook))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(args.webhook_listen).await?;
        webhooks = Some(listener.local_addr()?);
        tokio::spawn(serve_tls(listener, tls, hooks));
    }

    let app = Router::new()
        .route("/", get(sign_in_page))
        .route("/signin", post(sign_in))
        .route("/signout", post(sign_out))
        .route("/inbox", get(inbox))
        .route("/messages/{id}", get(message))
        .route("/messages/{id}/receipt", post(confirm_receipt))
        .route("/messages/{id}/attachments/{aid}", get(attachment))
        .route("/messages/{id}/replies", post(send_reply))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let inbox = listener.local_addr()?;
    let served = tokio::spawn(async move {
        axum::serve(listener, app).await?;
        Ok(())
    });
    Ok(Running {
        inbox,
        webhooks,
        served,
    })
}

// ---------------------------------------------------------------------------------------------
// Calling Ikkuna

fn https_client(ca: &Path) -> anyhow::Result<HttpsClient> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).context("reading the sandbox CA")? {
        roots.add(cert?)?;
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// Ikkuna's answer: status, the headers worth keeping, and the body (still streaming).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: hyper::body::Incoming,
}

impl Answer {
    async fn json(self) -> Value {
        match tokio::time::timeout(Duration::from_secs(30), self.body.collect()).await {
            Ok(Ok(body)) => serde_json::from_slice(&body.to_bytes()).unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }
}

/// One call to Ikkuna for a citizen, with a fresh assertion.
async fn call(
    state: &AppState,
    citizen: &str,
    method: Method,
    path: &str,
    range: Option<&HeaderValue>,
) -> Result<Answer, Response> {
    let assertion = state
        .identity
        .assertion(citizen)
        .map_err(|_| failure("Could not sign the citizen assertion"))?;
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{}{}", state.gateway, path))
        .header(header::AUTHORIZATION, format!("Bearer {assertion}"));
    if let Some(range) = range {
        request = request.header(header::RANGE, range);
    }
    let request = request
        .body(Body::empty())
        .map_err(|_| failure("Could not build the request"))?;
    let response = tokio::time::timeout(Duration::from_secs(30), state.client.request(request))
        .await
        .map_err(|_| failure("Ikkuna did not answer in time"))?
        .map_err(|_| failure("Ikkuna could not be reached"))?;
    let (parts, body) = response.into_parts();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

// ---------------------------------------------------------------------------------------------
// Pages

async fn sign_in_page(State(state): State<Shared>) -> Html<String> {
    let mut options = String::new();
    for c in &state.citizens {
        options.push_str(&format!(
            r#"<li><button type="submit" name="citizen" value="{id}">{name}</button></li>"#,
            id = esc(&c.id),
            name = esc(&c.name)
        ));
    }
    page(
        "Sign in",
        &format!(
            r#"<h1>Sign in</h1>
<p class="notice" role="note"><strong>Pretend identification, sandbox only.</strong> A real
operator signs citizens in with strong electronic identification (substantial or high assurance)
here. This sandbox lets you pick a fictional citizen instead.</p>
<form method="post" action="/signin"><fieldset><legend>Fictional citizens</legend>
<ul class="plain">{options}</ul></fieldset></form>"#
        ),
    )
}

async fn sign_in(State(state): State<Shared>, body: Bytes) -> Response {
    let citizen = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "citizen")
        .map(|(_, v)| v.into_owned());
    let Some(citizen) = citizen.filter(|c| state.citizens.iter().any(|s| &s.id == c)) else {
        return (StatusCode::BAD_REQUEST, "Unknown citizen").into_response();
    };
    let session = uuid::Uuid::new_v4().simple().to_string();
    if let Ok(mut sessions) = state.sessions.lock() {
        sessions.insert(session.clone(), citizen);
    }
    let mut response = Redirect::to("/inbox").into_response();
    if let Ok(cookie) =
        HeaderValue::from_str(&format!("sid={session}; HttpOnly; SameSite=Strict; Path=/"))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

async fn sign_out(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let (Some(sid), Ok(mut sessions)) = (session_id(&headers), state.sessions.lock()) {
        sessions.remove(&sid);
    }
    Redirect::to("/").into_response()
}

#[derive(Deserialize)]
struct InboxQuery {
    next: Option<String>,
}

async fn inbox(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<InboxQuery>,
) -> Result<Response, Response> {
    let citizen = signed_in(&state, &headers).map_err(IntoResponse::into_response)?;
    let consent = call(&state, &citizen, Method::GET, "/v1/consent", None).await?;
    let status = consent.status;
    let consent = consent.json().await;
    if status != StatusCode::OK {
        return Err(ikkuna_error(&state, status, &consent));
    }
    let link = consent_link(
        &state.sandbox_admin,
        consent["consentServiceUrl"].as_str().unwrap_or("#"),
    );
    if consent["state"] != "Active" {
        let why = if consent["state"] == "Revoked" {
            "You have withdrawn this service's right to show your authority mail."
        } else {
            "You have not yet allowed this service to show your authority mail."
        };
        return Ok(page(
            "Inbox",
            &format!(
                r#"<h1>Authority mail</h1><p id="consent-state" data-state="{state}">{why}
You can give your consent in {link}; then come back and <a href="/inbox">refresh</a>.</p>{out}"#,
                state = esc(consent["state"].as_str().unwrap_or("")),
                out = SIGN_OUT
            ),
        )
        .into_response());
    }
    let consent_id = consent["consentId"].as_str().unwrap_or("").to_owned();

    let mut path = "/v1/messages?limit=20".to_owned();
    if let Some(next) = query.next.as_deref().filter(|n| !n.is_empty()) {
        path.push_str("&continuationToken=");
        path.push_str(&url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>());
    }
    let answer = call(&state, &citizen, Method::GET, &path, None).await?;
    let status = answer.status;
    let list = answer.json().await;
    if status != StatusCode::OK {
        return Err(ikkuna_error(&state, status, &list));
    }
    let mut items = String::new();
    let mut unread = 0;
    for m in list["messages"].as_array().into_iter().flatten() {
        let id = m["messageId"].as_i64().unwrap_or(0);
        let is_unread = m["readAt"].is_null();
        unread += usize::from(is_unread);
        // The state is words (visible "Unread", and "Read" for screen readers), never colour only.
        let marker = if is_unread {
            r#"<strong class="unread">Unread</strong> "#
        } else {
            r#"<span class="visually-hidden">Read: </span>"#
        };
        let verifiable =
            if m["messageServiceType"] == "Verifiable" && m["receiptConfirmedAt"].is_null() {
                r#" <span class="tag">Receipt required</span>"#
            } else {
                ""
            };
        // Attachments are marked in words (no icon font is needed to read them).
        let attachments = match m["attachmentCount"].as_u64().unwrap_or(0) {
            0 => String::new(),
            1 => r#" <span class="tag attachments" data-attachments="1">1 attachment</span>"#
                .to_owned(),
            n => format!(
                r#" <span class="tag attachments" data-attachments="{n}">{n} attachments</span>"#
            ),
        };
        items.push_str(&format!(
            r#"<li class="message" data-message-id="{id}" data-unread="{is_unread}">{marker}<a href="/messages/{id}">{title}</a>{verifiable}{attachments}
<br><span class="meta">{sender} · {created}</span></li>"#,
            title = esc(m["title"].as_str().unwrap_or("")),
            sender = esc(m["senderName"].as_str().unwrap_or("")),
            created = fi_time(m["createdAt"].as_str().unwrap_or("")),
        ));
    }
    if items.is_empty() {
        items.push_str("<li>No messages.</li>");
    }
    let next = match list["continuationToken"].as_str() {
        Some(token) => format!(
            r#"<p><a href="/inbox?next={}">Older messages</a></p>"#,
            url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
        ),
        None => String::new(),
    };
    Ok(page(
        "Inbox",
        &format!(
            r#"<h1>Authority mail <span id="unread-count" class="badge">{unread} unread</span></h1>
<p id="consent-state" data-state="Active">You have allowed this service to show your authority mail. You can withdraw it in {link}.</p>
<p><a href="/inbox">Refresh</a></p>
<h2 id="messages-heading">Messages</h2>
<ul class="plain" id="messages" aria-labelledby="messages-heading">{items}</ul>{next}{events}{out}"#,
            events = notification_feed(&state, &consent_id) + &events_section(&state, &consent_id),
            out = SIGN_OUT
        ),
    )
    .into_response())
}

async fn message(
    State(state): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<i64>,
) -> Result<Response, Response> {
    let citizen = signed_in(&state, &headers).map_err(IntoResponse::into_response)?;
    let answer = call(
        &state,
        &citizen,
        Method::GET,
        &format!("/v1/messages/{id}"),
        None,
    )
    .await?;
    let status = answer.status;
    let m = answer.json().await;
    if status == StatusCode::CONFLICT && m["message"].is_object() {
        let s = &m["message"];
        return Ok(page(
            "Confirm receipt",
            &format!(
                r#"<p><a href="/inbox">Back to the inbox</a></p>
<h1>{title}</h1><p class="meta">{sender} · {created}</p>
<p id="receipt-required">This message is delivered with proof of receipt. Its content is shown once you
confirm that you have received it; the sender is told when you did.</p>
<form method="post" action="/messages/{id}/receipt"><button type="submit">Confirm receipt and open</button></form>"#,
                title = esc(s["title"].as_str().unwrap_or("")),
                sender = esc(s["senderName"].as_str().unwrap_or("")),
                created = fi_time(s["createdAt"].as_str().unwrap_or("")),
            ),
        )
        .into_response());
    }
    if status != StatusCode::OK {
        return Err(ikkuna_error(&state, status, &m));
    }
    let mut files = String::new();
    for a in m["attachments"].as_array().into_iter().flatten() {
        let size = a["size"].as_u64().unwrap_or(0);
        files.push_str(&format!(
            r#"<li><a class="attachment" href="/messages/{id}/attachments/{aid}" data-attachment-id="{aid}" data-size="{size}" download>{name}</a> <span class="meta">({media}, <span title="{size} B">{human}</span>)</span></li>"#,
            aid = a["attachmentId"].as_i64().unwrap_or(0),
            name = esc(a["name"].as_str().unwrap_or("attachment")),
            media = esc(a["mediaType"].as_str().unwrap_or("")),
            human = fi_size(size),
        ));
    }
    let files = if files.is_empty() {
        String::new()
    } else {
        format!(
            r#"<h2 id="attachments-heading">Attachments</h2><ul id="attachments" aria-labelledby="attachments-heading">{files}</ul>"#
        )
    };
    let receipt = match m["receiptConfirmedAt"].as_str() {
        Some(at) => format!(
            r#"<p id="receipt-confirmed" role="status">Receipt confirmed {}</p>"#,
            fi_time(at)
        ),
        None => String::new(),
    };
    let thread = thread_section(&state, &citizen, &m, id).await;
    Ok(page(
        "Message",
        &format!(
            r#"<p><a href="/inbox">Back to the inbox</a></p>
<h1>{title}</h1><p class="meta">{sender} · {created}</p>{receipt}
{body}{files}{thread}"#,
            title = esc(m["title"].as_str().unwrap_or("")),
            sender = esc(m["senderName"].as_str().unwrap_or("")),
            created = fi_time(m["createdAt"].as_str().unwrap_or("")),
            body = message_body(
                m["body"].as_str().unwrap_or(""),
                m["bodyFormat"].as_str() == Some("Markdown")
            ),
        ),
    )
    .into_response())
}

async fn confirm_receipt(
    State(state): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<i64>,
) -> Result<Response, Response> {
    let citizen = signed_in(&state, &headers).map_err(IntoResponse::into_response)?;
    let answer = call(
        &state,
        &citizen,
        Method::POST,
        &format!("/v1/messages/{id}/receipt"),
        None,
    )
    .await?;
    let status = answer.status;
    let body = answer.json().await;
    if status != StatusCode::OK {
        return Err(ikkuna_error(&state, status, &body));
    }
    Ok(Redirect::to(&format!("/messages/{id}")).into_response())
}

/// Streams the file from Ikkuna to the browser: nothing is buffered or kept.
async fn attachment(
    State(state): State<Shared>,
    headers: HeaderMap,
    UrlPath((id, aid)): UrlPath<(i64, i64)>,
) -> Result<Response, Response> {
    let citizen = signed_in(&state, &headers).map_err(IntoResponse::into_response)?;
    let answer = call(
        &state,
        &citizen,
        Method::GET,
        &format!("/v1/messages/{id}/attachments/{aid}"),
        headers.get(header::RANGE),
    )
    .await?;
    if !matches!(answer.status, StatusCode::OK | StatusCode::PARTIAL_CONTENT) {
        let status = answer.status;
        let body = answer.json().await;
        return Err(ikkuna_error(&state, status, &body));
    }
    let mut response = Response::new(Body::new(answer.body));
    *response.status_mut() = answer.status;
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_DISPOSITION,
        header::CONTENT_RANGE,
        header::ACCEPT_RANGES,
    ] {
        if let Some(value) = answer.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The thread under a message: the citizen's replies (text and files), the sender's answers
/// (new messages whose `inReplyToMessageId` is a reply), and, where the sender accepts replies, a
/// reply form (text and a file) posted straight through to Ikkuna. For an answer, a note saying
/// which reply it answers.
async fn thread_section(state: &AppState, citizen: &str, m: &Value, id: i64) -> String {
    let mut out = String::new();
    if m["inReplyToMessageId"].is_i64() {
        out.push_str(r#"<p id="answer-note" class="meta">This message answers your reply.</p>"#);
    }
    let replies = m["replies"].as_array().cloned().unwrap_or_default();
    // The answers are messages of the inbox that name one of these replies.
    let mut answers: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    if !replies.is_empty() {
        if let Ok(answer) = call(state, citizen, Method::GET, "/v1/messages?limit=100", None).await
        {
            let page = answer.json().await;
            for msg in page["messages"].as_array().into_iter().flatten() {
                if let (Some(reply), Some(answer_id)) = (
                    msg["inReplyToMessageId"].as_i64(),
                    msg["messageId"].as_i64(),
                ) {
                    let title = msg["title"].as_str().unwrap_or("").to_owned();
                    answers.entry(reply).or_default().push((answer_id, title));
                }
            }
        }
    }
    if !replies.is_empty() {
        out.push_str(r#"<h2 id="thread-heading">Your replies</h2><ol id="thread" aria-labelledby="thread-heading">"#);
        for r in &replies {
            let reply_id = r["replyId"].as_i64().unwrap_or(0);
            let mut files = String::new();
            for f in r["attachments"].as_array().into_iter().flatten() {
                files.push_str(&format!(
                    r#"<li class="reply-file">{name} <span class="meta">({media}, {size})</span></li>"#,
                    name = esc(f["name"].as_str().unwrap_or("")),
                    media = esc(f["mediaType"].as_str().unwrap_or("")),
                    size = fi_size(f["size"].as_u64().unwrap_or(0)),
                ));
            }
            if !files.is_empty() {
                files = format!(r#"<ul aria-label="Files of this reply">{files}</ul>"#);
            }
            let mut answered = String::new();
            for (answer_id, title) in answers.get(&reply_id).into_iter().flatten() {
                answered.push_str(&format!(
                    r#"<p class="answer">Answer: <a href="/messages/{answer_id}">{}</a></p>"#,
                    esc(title)
                ));
            }
            if answered.is_empty() {
                answered.push_str(r#"<p class="meta">No answer yet.</p>"#);
            }
            out.push_str(&format!(
                r#"<li class="reply" data-reply-id="{reply_id}"><p class="meta">Sent {sent}</p><p class="reply-text">{text}</p>{files}{answered}</li>"#,
                sent = fi_time(r["sentAt"].as_str().unwrap_or("")),
                text = esc(r["body"].as_str().unwrap_or("")),
            ));
        }
        out.push_str("</ol>");
    }
    if m["replyAllowedBy"] == "Anyone" {
        // A fresh key per rendering: submitting the same form twice sends the same key, so the
        // second submission is answered with the first reply (409), never a second reply.
        let key = uuid::Uuid::new_v4();
        out.push_str(&format!(
            r#"<h2 id="reply-heading">Reply</h2>
<form id="reply-form" method="post" action="/messages/{id}/replies?key={key}" enctype="multipart/form-data" aria-labelledby="reply-heading">
<p><label for="reply-body">Your reply</label><br><textarea id="reply-body" name="body" rows="5" cols="60" maxlength="40000" required></textarea></p>
<p><label for="reply-file">Attach a file (PDF, image, text or office document; at most 10 MiB unless DVV allows more)</label><br><input id="reply-file" type="file" name="file"></p>
<p><button type="submit">Send reply</button></p>
</form>"#
        ));
    }
    out
}

#[derive(Deserialize)]
struct ReplyQuery {
    key: String,
}

/// Passes the browser's form (multipart, as the browser encoded it) through to Ikkuna as it
/// arrives, with the page's idempotency key: nothing is buffered or kept here either.
async fn send_reply(
    State(state): State<Shared>,
    UrlPath(id): UrlPath<i64>,
    Query(query): Query<ReplyQuery>,
    request: Request<Body>,
) -> Result<Response, Response> {
    let citizen = signed_in(&state, request.headers()).map_err(IntoResponse::into_response)?;
    let assertion = state
        .identity
        .assertion(&citizen)
        .map_err(|_| failure("Could not sign the citizen assertion"))?;
    let (parts, body) = request.into_parts();
    let mut upstream = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/v1/messages/{id}/replies", state.gateway))
        .header(header::AUTHORIZATION, format!("Bearer {assertion}"))
        .header("idempotency-key", query.key.as_str());
    for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH] {
        if let Some(value) = parts.headers.get(&name) {
            upstream = upstream.header(name, value.clone());
        }
    }
    let upstream = upstream
        .body(body)
        .map_err(|_| failure("Could not build the request"))?;
    let response = tokio::time::timeout(Duration::from_secs(600), state.client.request(upstream))
        .await
        .map_err(|_| failure("Ikkuna did not answer in time"))?
        .map_err(|_| failure("Ikkuna could not be reached"))?;
    let (parts, body) = response.into_parts();
    let answer = Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    };
    let status = answer.status;
    let json = answer.json().await;
    if matches!(status, StatusCode::CREATED | StatusCode::CONFLICT) {
        return Ok(Redirect::to(&format!("/messages/{id}#thread")).into_response());
    }
    Err(ikkuna_error(&state, status, &json))
}

const SIGN_OUT: &str =
    r#"<form method="post" action="/signout"><button type="submit">Sign out</button></form>"#;

fn events_section(state: &AppState, consent_id: &str) -> String {
    if state.webhook_secret.is_none() {
        return String::new();
    }
    let Ok(events) = state.events.lock() else {
        return String::new();
    };
    let mut items = String::new();
    for e in events
        .iter()
        .filter(|e| e.consent_id == consent_id)
        .take(10)
    {
        let about = e
            .message_id
            .map(|m| format!(" (message {m})"))
            .unwrap_or_default();
        items.push_str(&format!(
            "<li>{} {}{about}</li>",
            fi_time(&e.time),
            esc(&e.kind)
        ));
    }
    if items.is_empty() {
        items.push_str("<li>None yet.</li>");
    }
    format!(r#"<h2>Recent events (verified webhooks)</h2><ul id="events">{items}</ul>"#)
}

/// The citizen's notification feed, built only from the webhooks' notification hints — what a
/// phone's lock screen would show: the sender only when the hint names one, the hint's texts,
/// never a title from the inbox. Finnish, with Swedish and English a click away.
fn notification_feed(state: &AppState, consent_id: &str) -> String {
    let Ok(events) = state.events.lock() else {
        return String::new();
    };
    let hints: Vec<&SeenEvent> = events
        .iter()
        .filter(|e| e.consent_id == consent_id && e.notification.is_some())
        .take(10)
        .collect();
    if state.webhook_secret.is_none() {
        return String::new();
    }
    notification_items(&hints)
}

/// The feed's HTML for `hints` (newest first).
fn notification_items(hints: &[&SeenEvent]) -> String {
    let mut items = String::new();
    for e in hints {
        let Some(hint) = &e.notification else {
            continue;
        };
        let text = |lang: &str, key: &str| esc(hint[lang][key].as_str().unwrap_or(""));
        let sender = hint["sender"]
            .as_str()
            .map(|s| format!(r#" <span class="sender">{}</span>"#, esc(s)))
            .unwrap_or_default();
        let label = if e.kind == "message.reminder" {
            "Reminder"
        } else {
            "New"
        };
        items.push_str(&format!(
            r#"<li class="notification"><span class="badge">{label}</span> <strong lang="fi">{}</strong>{sender} <span lang="fi">{}</span> <small>{}</small>
<details><summary>På svenska / In English</summary><p lang="sv"><strong>{}</strong> {}</p><p lang="en"><strong>{}</strong> {}</p></details></li>"#,
            text("fi", "title"),
            text("fi", "text"),
            fi_time(&e.time),
            text("sv", "title"),
            text("sv", "text"),
            text("en", "title"),
            text("en", "text"),
        ));
    }
    if items.is_empty() {
        items.push_str("<li>No notifications yet.</li>");
    }
    format!(
        r#"<h2 id="notifications-heading">Notifications</h2><ul class="plain" id="notifications" aria-labelledby="notifications-heading">{items}</ul>"#
    )
}

// ---------------------------------------------------------------------------------------------
// Webhooks

/// Verifies `Ikkuna-Signature` (`t=<unix>,v1=<hex HMAC-SHA256 over "<t>.<body>">`), refuses
/// timestamps more than 300 s off, and remembers the event's ids (never content: there is none).
async fn receive_webhook(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Some(secret) = state.webhook_secret.as_deref() else {
        return StatusCode::NOT_FOUND;
    };
    let signature = headers
        .get("ikkuna-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !signature_is_valid(secret, signature, &body, unix_now() as i64) {
        println!("webhook refused: bad or stale signature");
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let seen = SeenEvent {
        kind: event["type"].as_str().unwrap_or("").to_owned(),
        consent_id: event["consentId"].as_str().unwrap_or("").to_owned(),
        message_id: event["messageId"].as_i64(),
        time: event["time"].as_str().unwrap_or("").to_owned(),
        notification: event.get("notification").cloned(),
    };
    println!("webhook verified: {} {:?}", seen.kind, seen.message_id);
    if let Ok(mut events) = state.events.lock() {
        events.push_front(seen);
        events.truncate(100);
    }
    StatusCode::NO_CONTENT
}

fn signature_is_valid(secret: &[u8], header: &str, body: &[u8], now: i64) -> bool {
    let mut timestamp = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", tag)) => tags.extend(hex::decode(tag).ok()),
            _ => {}
        }
    }
    let Some(t) = timestamp.filter(|t| (now - t).abs() <= 300) else {
        return false;
    };
    tags.iter().any(|tag| {
        let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
            return false;
        };
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(tag).is_ok()
    })
}

fn webhook_tls(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let mut tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

async fn serve_tls(listener: tokio::net::TcpListener, tls: Arc<rustls::ServerConfig>, app: Router) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("sid=").map(str::to_owned))
}

/// The signed-in citizen, or the way back to the sign-in page.
fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<String, Redirect> {
    session_id(headers)
        .and_then(|sid| state.sessions.lock().ok()?.get(&sid).cloned())
        .ok_or_else(|| Redirect::to("/"))
}

/// Ikkuna's refusal as a page: its reason, the consent link and the link to Suomi.fi Messages
/// (where the mail can always be read) when there are.
fn ikkuna_error(state: &AppState, status: StatusCode, body: &Value) -> Response {
    let reason = body["reason"].as_str().unwrap_or("Unexpected answer");
    let mut link = body["consentServiceUrl"]
        .as_str()
        .map(|u| format!(" {}", consent_link(&state.sandbox_admin, u)))
        .unwrap_or_default();
    if let Some(fallback) = body["fallbackUrl"].as_str() {
        link.push_str(&format!(
            r#" <a id="fallback" href="{}">Read your mail in Suomi.fi Messages</a>"#,
            esc(fallback)
        ));
    }
    let mut response = page(
        "Error",
        &format!(
            r#"<h1>Not available</h1><p role="alert">{} ({}).{link}</p><p><a href="/inbox">Back to the inbox</a></p>"#,
            esc(reason),
            status.as_u16()
        ),
    )
    .into_response();
    *response.status_mut() = if status.is_server_error() {
        StatusCode::BAD_GATEWAY
    } else {
        status
    };
    response
}

fn failure(reason: &str) -> Response {
    let mut response = page(
        "Error",
        &format!(
            r#"<h1>Not available</h1><p role="alert">{}</p>"#,
            esc(reason)
        ),
    )
    .into_response();
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

fn page(title: &str, main: &str) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Operator inbox (sandbox)</title>
<style>
body {{ font: 1rem/1.5 system-ui, sans-serif; max-width: 46rem; margin: 0 auto; padding: 1rem; color: #111; background: #fff; }}
a {{ color: #0645ad; }} a:focus, button:focus {{ outline: 3px solid #f90; outline-offset: 2px; }}
.plain {{ list-style: none; padding: 0; }} .message {{ padding: .6rem 0; border-bottom: 1px solid #ccc; }}
.unread {{ background: #0a6b35; color: #fff; padding: 0 .4rem; border-radius: .3rem; }}
.visually-hidden {{ position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }}
.badge {{ font-size: .9rem; background: #222; color: #fff; padding: .1rem .5rem; border-radius: 1rem; }}
.tag {{ font-size: .85rem; border: 1px solid #555; padding: 0 .3rem; }} .meta {{ color: #444; font-size: .9rem; }}
.notice {{ border-left: 4px solid #c60; padding-left: .8rem; }} .body.text {{ white-space: pre-wrap; }}
button {{ font: inherit; padding: .3rem .8rem; margin: .2rem 0; }}
</style></head>
<body><header><p><strong>Operator inbox</strong> (sandbox stand-in; shows only what Ikkuna returns)</p></header>
<main>{main}</main></body></html>"#,
        title = esc(title)
    ))
}

// ---------------------------------------------------------------------------------------------
// Showing DVV's data to Finnish readers

/// The link to DVV's consent service. In the sandbox that page is on the sandbox admin listener,
/// whose HTTPS certificate comes from a throwaway CA no browser trusts; the same listener serves
/// it over plain HTTP, so the sandbox's link is given in that form. Any other link is kept as is.
fn consent_link(sandbox_admin: &str, url: &str) -> String {
    let href = match (
        url.strip_prefix("https://"),
        sandbox_admin.strip_prefix("http://"),
    ) {
        (Some(rest), Some(admin)) if rest.starts_with(&format!("{admin}/")) => {
            format!("http://{rest}")
        }
        _ => url.to_owned(),
    };
    format!(r#"<a href="{}">DVV's consent service</a>"#, esc(&href))
}

/// A message body: Markdown rendered (see [`markdown`]), text kept as written; both escaped.
fn message_body(body: &str, is_markdown: bool) -> String {
    if is_markdown {
        format!(
            r#"<div class="body markdown" id="message-body">{}</div>"#,
            markdown(body)
        )
    } else {
        format!(
            r#"<div class="body text" id="message-body">{}</div>"#,
            esc(body)
        )
    }
}

/// Markdown as HTML that cannot run or fetch anything: raw HTML is shown as text, links keep
/// only `https:`, `http:` and `mailto:` targets (others become plain text), images become their
/// alt text (no tracking pixels), and headings start at `h2` under the page's `h1`.
fn markdown(text: &str) -> String {
    use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
    let events: Vec<Event> =
        Parser::new_ext(text, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).collect();
    let top = events
        .iter()
        .filter_map(|e| match e {
            Event::Start(Tag::Heading { level, .. }) => Some(*level as usize),
            _ => None,
        })
        .min()
        .unwrap_or(1);
    let shift = |level: HeadingLevel| {
        let wanted = (level as usize + 2).saturating_sub(top).clamp(2, 6);
        HeadingLevel::try_from(wanted).unwrap_or(HeadingLevel::H6)
    };
    let safe = |url: &str| {
        let lower = url.trim().to_ascii_lowercase();
        ["https://", "http://", "mailto:"]
            .iter()
            .any(|scheme| lower.starts_with(scheme))
    };
    let mut dropped_link = false;
    let events = events.into_iter().filter_map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        Event::Start(Tag::Heading {
            level,
            id,
            classes,
            attrs,
        }) => Some(Event::Start(Tag::Heading {
            level: shift(level),
            id,
            classes,
            attrs,
        })),
        Event::End(TagEnd::Heading(level)) => Some(Event::End(TagEnd::Heading(shift(level)))),
        Event::Start(Tag::Link { ref dest_url, .. }) if !safe(dest_url) => {
            dropped_link = true;
            None
        }
        Event::End(TagEnd::Link) if dropped_link => {
            dropped_link = false;
            None
        }
        Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
        other => Some(other),
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// A DVV timestamp (RFC 3339, UTC) as Finns read it, in Finnish time: `12.11.2026 klo 11.30`,
/// inside a `<time>` element that keeps the exact instant. Anything unparsable is shown escaped.
fn fi_time(rfc3339: &str) -> String {
    use chrono::{Datelike as _, Timelike as _};
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return esc(rfc3339);
    };
    let local = finnish_time(at.with_timezone(&chrono::Utc));
    format!(
        r#"<time datetime="{}">{}.{}.{} klo {}.{:02}</time>"#,
        esc(rfc3339),
        local.day(),
        local.month(),
        local.year(),
        local.hour(),
        local.minute()
    )
}

/// Finnish local time: UTC+2, and UTC+3 in summer time, which in the EU runs from 01:00 UTC on
/// the last Sunday of March to 01:00 UTC on the last Sunday of October.
fn finnish_time(utc: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDateTime {
    use chrono::{Datelike as _, NaiveDate, TimeZone as _};
    let last_sunday_1am = |month: u32| {
        let last = NaiveDate::from_ymd_opt(utc.year(), month, 31).unwrap_or_default();
        let sunday = last - chrono::Days::new(u64::from(last.weekday().num_days_from_sunday()));
        chrono::Utc.from_utc_datetime(&sunday.and_hms_opt(1, 0, 0).unwrap_or_default())
    };
    let summer = utc >= last_sunday_1am(3) && utc < last_sunday_1am(10);
    let offset = chrono::Duration::hours(if summer { 3 } else { 2 });
    utc.naive_utc() + offset
}

/// A size as Finns read it: decimal comma, binary multiples named `kt`, `Mt`, `Gt` (kilo-,
/// mega-, gigatavu), bytes as `t`.
fn fi_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["t", "kt", "Mt", "Gt"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let number = if unit == 0 || value >= 10.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}").replace('.', ",")
    };
    format!("{number}\u{a0}{}", UNITS[unit])
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notification_feed_shows_the_hint_and_only_the_sender_it_names() {
        let hint = |sender: Option<&str>| {
            let mut h = serde_json::json!({
                "source": "neutral",
                "fi": {"title": "Uusi viesti", "text": "Sinulle on <b>viesti</b>."},
                "sv": {"title": "Nytt meddelande", "text": "Du har fått ett meddelande."},
                "en": {"title": "New message", "text": "You have received a new message."}
            });
            if let Some(s) = sender {
                h["sender"] = s.into();
            }
            h
        };
        let event = |kind: &str, sender: Option<&str>| SeenEvent {
            kind: kind.into(),
            consent_id: "c".into(),
            message_id: Some(1),
            time: "2026-11-22T07:30:00.000Z".into(),
            notification: Some(hint(sender)),
        };
        let (named, hidden) = (
            event("message.created", Some("Kela")),
            event("message.reminder", None),
        );
        let html = notification_items(&[&named, &hidden]);
        assert_eq!(html.matches(r#"class="sender""#).count(), 1, "{html}");
        assert!(html.contains(r#"<span class="sender">Kela</span>"#));
        assert!(html.contains("Reminder") && html.contains("New message"));
        assert!(
            html.contains("&lt;b&gt;viesti&lt;/b&gt;"),
            "escaped: {html}"
        );
        assert!(notification_items(&[]).contains("No notifications yet."));
    }

    #[test]
    fn markdown_is_rendered_without_anything_that_runs_or_fetches() {
        let html = markdown(
            "# Title\n\n**bold** <script>alert(1)</script> [ok](https://dvv.fi) \
             [bad](javascript:alert(1)) ![pixel](https://tracker.example/p.png)\n\n\
             <img src=x onerror=alert(1)>\n\n## Part",
        );
        assert!(
            html.contains("<h2>Title</h2>") && html.contains("<h3>Part</h3>"),
            "{html}"
        );
        assert!(html.contains("<strong>bold</strong>"), "{html}");
        assert!(
            html.contains(r#"<a href="https://dvv.fi">ok</a>"#),
            "{html}"
        );
        assert!(
            !html.contains("<script") && html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(
            !html.contains("<img") && !html.contains("javascript:"),
            "{html}"
        );
        assert!(
            html.contains("bad") && html.contains("pixel"),
            "text kept: {html}"
        );
    }

    #[test]
    fn dates_are_finnish_time_across_summer_time() {
        // 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC.
        for (utc, shown) in [
            ("2026-03-29T00:59:00.000Z", "29.3.2026 klo 2.59"),
            ("2026-03-29T01:00:00.000Z", "29.3.2026 klo 4.00"),
            ("2026-10-25T00:59:00.000Z", "25.10.2026 klo 3.59"),
            ("2026-10-25T01:00:00.000Z", "25.10.2026 klo 3.00"),
            ("2026-11-12T09:30:00.000Z", "12.11.2026 klo 11.30"),
        ] {
            let html = fi_time(utc);
            assert!(html.contains(&format!(">{shown}</time>")), "{utc}: {html}");
            assert!(html.contains(&format!(r#"datetime="{utc}""#)), "{html}");
        }
        assert_eq!(
            fi_time("<b>not a date</b>"),
            "&lt;b&gt;not a date&lt;/b&gt;"
        );
    }

    #[test]
    fn sizes_are_written_as_finns_read_them() {
        assert_eq!(fi_size(12), "12\u{a0}t");
        assert_eq!(fi_size(151_552), "148\u{a0}kt");
        assert_eq!(fi_size(1_572_864), "1,5\u{a0}Mt");
        assert_eq!(fi_size(1 << 30), "1\u{a0}Gt");
        assert_eq!(fi_size(2_684_354_560), "2,5\u{a0}Gt");
    }

    #[test]
    fn the_sandbox_consent_link_opens_in_a_browser_and_others_are_kept() {
        let admin = "http://127.0.0.1:41235";
        assert!(
            consent_link(admin, "https://127.0.0.1:41235/consent-service")
                .contains(r#"href="http://127.0.0.1:41235/consent-service""#)
        );
        assert!(consent_link(admin, "https://suostumus.dvv.fi/x")
            .contains(r#"href="https://suostumus.dvv.fi/x""#));
        assert!(
            consent_link(admin, "https://127.0.0.1:412350/consent-service")
                .contains(r#"href="https://127.0.0.1:412350/consent-service""#)
        );
    }
}
