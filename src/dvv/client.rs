//! [`DvvClient`]: the contract's calls, each under one deadline, with token handling and retries.
//!
//! Every call is idempotent (reads by nature, openings by `openingId`, receipts by 409), so each
//! is retried after a 5xx or network error with jittered backoff while the deadline allows; a 401
//! invalidates the access token and is retried once with a renewed one. Identity codes travel only
//! in the consent lookup's POST body; logs carry the operation, consent and message ids, never
//! identity codes, tokens or content.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCEPT, ACCEPT_RANGES, AUTHORIZATION, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, RANGE, USER_AGENT,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::Full;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;

use super::assertion::AssertionSigner;
use super::body::IdleTimeout;
use super::contract::{
    ConsentLookup, ConsentRecord, EventPage, MessageDetail, MessagePage, OpeningAnswer,
    OpeningReport, ReceiptAnswer, ReplyPolicy, ReplyReceipt, StatementPage, Timestamp,
    TokenResponse,
};
use super::error::{DvvError, DvvSetupError};
use super::retry::{jitter, RetryPolicy};
use super::token::{AccessToken, FreshToken, TokenCache, TokenFuture, TokenSource};
use super::transport::{self, error_from, read_json, trace_id, HttpClient, Lane};
use super::upload::UploadBody;
use crate::config::DvvConfig;

/// A value from DVV with the `traceId` of the response that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream<T> {
    /// The value.
    pub value: T,
    /// DVV's trace id, echoed to the operator and logged for support cases.
    pub trace_id: Option<String>,
}

/// The body of an attachment as DVV streams it: frames pass through as they arrive, never
/// buffered whole; a stall longer than `dvv.body_idle_timeout_ms` ends it with
/// [`DvvError::BodyStalled`].
pub type AttachmentBody = BoxBody<Bytes, DvvError>;

/// An attachment response: status, the headers worth passing on, and the streamed body.
pub struct AttachmentStream {
    /// 200 (whole file) or 206 (the requested range).
    pub status: StatusCode,
    /// Only `Content-Type`, `Content-Length`, `Content-Disposition`, `Content-Range` and
    /// `Accept-Ranges`.
    pub headers: HeaderMap,
    /// The bytes, streamed.
    pub body: AttachmentBody,
}

impl std::fmt::Debug for AttachmentStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentStream")
            .field("status", &self.status)
            .field("content_length", &self.headers.get(CONTENT_LENGTH))
            .finish_non_exhaustive()
    }
}

/// Headers of an attachment response passed on to the operator.
const ATTACHMENT_HEADERS: [http::HeaderName; 5] = [
    CONTENT_TYPE,
    CONTENT_LENGTH,
    CONTENT_DISPOSITION,
    CONTENT_RANGE,
    ACCEPT_RANGES,
];

const USER_AGENT_VALUE: &str = concat!("ikkuna/", env!("CARGO_PKG_VERSION"));

/// The header carrying a reply's idempotency key.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The client of DVV's viewing-connection API. Cheap to clone: clones share the connection pool
/// and the access token.
#[derive(Clone, Debug)]
pub struct DvvClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Citizen-facing JSON calls (see [`Lane`]).
    interactive: HttpClient,
    /// The events feed and opening reports.
    background: HttpClient,
    /// Attachment bodies, one HTTP/1.1 connection each.
    bulk: HttpClient,
    /// Reply uploads: like `bulk` (HTTP/1.1, one connection each, the same slots), with a
    /// streamed request body.
    upload: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        UploadBody,
    >,
    /// One permit per attachment stream in flight (`dvv.max_attachment_streams`).
    bulk_slots: Arc<tokio::sync::Semaphore>,
    base: Url,
    tokens: TokenCache,
    policy: RetryPolicy,
    call_timeout: Duration,
    body_idle_timeout: Duration,
}

/// A request body: JSON bytes or none.
enum Payload {
    /// A GET answered by JSON.
    Empty,
    /// A GET answered by a file.
    Attachment,
    /// A POST of JSON.
    Json(Bytes),
}

impl DvvClient {
    /// Builds the client from `[dvv]`: reads the CA, client certificate and keys, and proves the
    /// assertion key can sign. Makes no network call (see [`Self::ensure_token`]).
    pub fn new(cfg: &DvvConfig) -> Result<Self, DvvSetupError> {
        let background = transport::http_client(cfg, Lane::Background)?;
        let token_url =
            endpoint(&cfg.base_url, &["v1", "token"]).map_err(|_| DvvSetupError::Material {
                field: "dvv.base_url",
                reason: "cannot hold paths".to_owned(),
            })?;
        let signer = AssertionSigner::new(cfg, token_url.as_str())?;
        let source = HttpTokenSource {
            http: background.clone(),
            signer,
            token_url,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                interactive: transport::http_client(cfg, Lane::Interactive)?,
                background,
                bulk: transport::http_client(cfg, Lane::Bulk)?,
                upload: transport::client_with_body(cfg, Lane::Bulk)?,
                bulk_slots: Arc::new(tokio::sync::Semaphore::new(cfg.max_attachment_streams)),
                base: cfg.base_url.clone(),
                tokens: TokenCache::new(Box::new(source), cfg.token_renew_before),
                policy: RetryPolicy::new(cfg.max_retries),
                call_timeout: cfg.call_timeout,
                body_idle_timeout: cfg.body_idle_timeout,
            }),
        })
    }

    /// The citizen's consent for this provider; `Ok(None)` when DVV has none (404). The identity
    /// code is sent only in the POST body.
    pub async fn lookup_consent(
        &self,
        end_user: &ikkuna_hetu::IdentityCode,
    ) -> Result<Upstream<Option<ConsentRecord>>, DvvError> {
        let url = self.url(&["v1", "consents", "lookup"])?;
        let body = json_bytes(&ConsentLookup {
            end_user_id: end_user.reveal(),
        })?;
        let span = tracing::debug_span!("dvv", op = "lookup_consent");
        self.run("lookup_consent", span, |token| {
            let (url, body) = (url.clone(), body.clone());
            async move {
                let response = self
                    .send(
                        Lane::Interactive,
                        Method::POST,
                        url,
                        Payload::Json(body),
                        &token,
                        None,
                    )
                    .await?;
                match response.status() {
                    StatusCode::OK => json(response).await.map(|u| u.map(Some)),
                    StatusCode::NOT_FOUND => Ok(Upstream {
                        value: None,
                        trace_id: trace_id(response.headers()),
                    }),
                    _ => Err(error_from(response).await),
                }
            }
        })
        .await
    }

    /// One page of the citizen's inbox, newest first. `limit` is 1..=100 (DVV's default 20).
    pub async fn list_messages(
        &self,
        consent_id: &str,
        continuation: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Upstream<MessagePage>, DvvError> {
        let url = self.inbox_url(consent_id, continuation, limit)?;
        let span = tracing::debug_span!("dvv", op = "list_messages", consent_id);
        self.get_json("list_messages", Lane::Interactive, span, url)
            .await
    }

    /// The inbox page's URL.
    fn inbox_url(
        &self,
        consent_id: &str,
        continuation: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Url, DvvError> {
        let mut url = self.url(&["v1", "consents", consent_id, "messages"])?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(token) = continuation {
                query.append_pair("continuationToken", token);
            }
            if let Some(limit) = limit {
                query.append_pair("limit", &limit.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }

    /// One message. For an unconfirmed Verifiable message DVV withholds the body and attachments.
    pub async fn get_message(
        &self,
        consent_id: &str,
        message_id: i64,
    ) -> Result<Upstream<MessageDetail>, DvvError> {
        let id = message_id.to_string();
        let url = self.url(&["v1", "consents", consent_id, "messages", &id])?;
        let span = tracing::debug_span!("dvv", op = "get_message", consent_id, message_id);
        self.get_json("get_message", Lane::Interactive, span, url)
            .await
    }

    /// An attachment, streamed. `range` (the operator's `Range` header) is passed through, so
    /// the answer is 200 or 206; an unsatisfiable range is [`DvvError::RangeNotSatisfiable`].
    /// The deadline covers the response head; the body is governed by the idle timeout.
    pub async fn get_attachment(
        &self,
        consent_id: &str,
        message_id: i64,
        attachment_id: i64,
        range: Option<&HeaderValue>,
    ) -> Result<Upstream<AttachmentStream>, DvvError> {
        let (message, attachment) = (message_id.to_string(), attachment_id.to_string());
        let url = self.url(&[
            "v1",
            "consents",
            consent_id,
            "messages",
            &message,
            "attachments",
            &attachment,
        ])?;
        let span = tracing::debug_span!(
            "dvv",
            op = "get_attachment",
            consent_id,
            message_id,
            attachment_id
        );
        let idle = self.inner.body_idle_timeout;
        // The bulkhead's slot is taken before DVV is asked and travels with the body: it is
        // given back when the stream ends, fails, or is dropped (the client went away or was cut).
        let slot = Arc::new(
            Arc::clone(&self.inner.bulk_slots)
                .try_acquire_owned()
                .map_err(|_| DvvError::StreamsExhausted)?,
        );
        self.run("get_attachment", span, |token| {
            let (url, slot) = (url.clone(), Arc::clone(&slot));
            async move {
                let response = self
                    .send(
                        Lane::Bulk,
                        Method::GET,
                        url,
                        Payload::Attachment,
                        &token,
                        range,
                    )
                    .await?;
                match response.status() {
                    status @ (StatusCode::OK | StatusCode::PARTIAL_CONTENT) => {
                        Ok(attachment_stream(status, response, idle, slot))
                    }
                    _ => Err(error_from(response).await),
                }
            }
        })
        .await
    }

    /// Reports an opening. 201 and 409 (this `openingId` was reported before: DVV repeats the
    /// original answer, marked `repeated`) are both success, so a retry never double-reports.
    pub async fn report_opening(
        &self,
        consent_id: &str,
        message_id: i64,
        opening: &OpeningReport,
    ) -> Result<Upstream<OpeningAnswer>, DvvError> {
        if !opening.has_valid_id() {
            return Err(DvvError::BadRequest {
                status: StatusCode::BAD_REQUEST,
                reason: "openingId must be 1-64 characters of [A-Za-z0-9-]".to_owned(),
                trace_id: None,
            });
        }
        let id = message_id.to_string();
        let url = self.url(&["v1", "consents", consent_id, "messages", &id, "openings"])?;
        let body = json_bytes(opening)?;
        let span = tracing::debug_span!("dvv", op = "report_opening", consent_id, message_id);
        let answer = self
            .post_idempotent::<OpeningAnswer>("report_opening", Lane::Background, span, url, body)
            .await?;
        Ok(answer.map(|(mut value, repeated)| {
            value.repeated = repeated;
            value
        }))
    }

    /// Confirms receipt of a Verifiable message on the citizen's behalf. 201 and 409 (already
    /// confirmed: the original answer, marked `repeated`) are both success.
    pub async fn confirm_receipt(
        &self,
        consent_id: &str,
        message_id: i64,
    ) -> Result<Upstream<ReceiptAnswer>, DvvError> {
        let id = message_id.to_string();
        let url = self.url(&[
            "v1",
            "consents",
            consent_id,
            "messages",
            &id,
            "receipt-confirmations",
        ])?;
        let span = tracing::debug_span!("dvv", op = "confirm_receipt", consent_id, message_id);
        let answer = self
            .post_idempotent::<ReceiptAnswer>(
                "confirm_receipt",
                Lane::Interactive,
                span,
                url,
                Bytes::from_static(b"{}"),
            )
            .await?;
        Ok(answer.map(|(mut value, repeated)| {
            value.repeated = repeated;
            value
        }))
    }

    /// Whether the citizen may reply to the message, DVV's limits, and the reply already
    /// received under `idempotency_key`. Releases no content and is not an opening.
    pub async fn reply_policy(
        &self,
        consent_id: &str,
        message_id: i64,
        idempotency_key: &str,
    ) -> Result<Upstream<ReplyPolicy>, DvvError> {
        let id = message_id.to_string();
        let url = self.url(&[
            "v1",
            "consents",
            consent_id,
            "messages",
            &id,
            "reply-policy",
        ])?;
        let key = HeaderValue::from_str(idempotency_key).map_err(|_| DvvError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            reason: "Idempotency-Key is not a header value".to_owned(),
            trace_id: None,
        })?;
        let span = tracing::debug_span!("dvv", op = "reply_policy", consent_id, message_id);
        self.run("reply_policy", span, |token| {
            let (url, key) = (url.clone(), key.clone());
            async move {
                let request = Request::builder()
                    .method(Method::GET)
                    .uri(url.as_str())
                    .header(AUTHORIZATION, token.bearer()?)
                    .header(ACCEPT, "application/json")
                    .header(USER_AGENT, USER_AGENT_VALUE)
                    .header(IDEMPOTENCY_KEY, key)
                    .body(Full::new(Bytes::new()))
                    .map_err(|_| DvvError::InvalidResponse {
                        what: "cannot build the request".to_owned(),
                        trace_id: None,
                    })?;
                let response = self
                    .inner
                    .interactive
                    .request(request)
                    .await
                    .map_err(|error| transport::unavailable(&error))?;
                match response.status() {
                    StatusCode::OK => json(response).await,
                    _ => Err(error_from(response).await),
                }
            }
        })
        .await
    }

    /// Sends a citizen's reply whose `multipart/form-data` body (of `content_type`) is written
    /// into `body` while this call runs. Not retried: the body is read once. The slot of the
    /// bulk lane is held for the upload; the answer must come within `dvv.call_timeout_ms` of
    /// the call's start or, for a long upload, of the body's end (the caller bounds the body
    /// itself by idle timeouts). 201 and 409 (the key was used: the original receipt, marked
    /// `repeated`) are both answers.
    pub async fn send_reply(
        &self,
        consent_id: &str,
        message_id: i64,
        idempotency_key: &str,
        content_type: &str,
        body: UploadBody,
    ) -> Result<Upstream<ReplyReceipt>, DvvError> {
        let started = Instant::now();
        let id = message_id.to_string();
        let url = self.url(&["v1", "consents", consent_id, "messages", &id, "replies"])?;
        let _slot = Arc::clone(&self.inner.bulk_slots)
            .try_acquire_owned()
            .map_err(|_| DvvError::StreamsExhausted)?;
        let token =
            match tokio::time::timeout(self.inner.call_timeout, self.inner.tokens.get()).await {
                Ok(token) => token?,
                Err(_) => return Err(DvvError::Timeout { trace_id: None }),
            };
        let request = Request::builder()
            .method(Method::POST)
            .uri(url.as_str())
            .header(AUTHORIZATION, token.bearer()?)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header(CONTENT_TYPE, content_type)
            .header(IDEMPOTENCY_KEY, idempotency_key)
            .body(body)
            .map_err(|_| DvvError::InvalidResponse {
                what: "cannot build the request".to_owned(),
                trace_id: None,
            })?;
        let span = tracing::debug_span!("dvv", op = "send_reply", consent_id, message_id);
        let result = async {
            let response = self
                .inner
                .upload
                .request(request)
                .await
                .map_err(|error| transport::unavailable(&error))?;
            match response.status() {
                StatusCode::CREATED | StatusCode::OK => json::<ReplyReceipt>(response).await,
                StatusCode::CONFLICT => json::<ReplyReceipt>(response).await.map(|u| {
                    u.map(|mut receipt| {
                        receipt.repeated = true;
                        receipt
                    })
                }),
                _ => Err(error_from(response).await),
            }
        }
        .instrument(span)
        .await;
        crate::telemetry::metrics::with(|m| {
            let outcome = result.as_ref().map_or_else(|e| e.kind(), |_| "ok");
            m.observe_dvv("send_reply", outcome, started.elapsed());
        });
        result
    }

    /// This provider's event feed after `continuation` (from the start of retention without).
    pub async fn events(
        &self,
        continuation: Option<&str>,
    ) -> Result<Upstream<EventPage>, DvvError> {
        let mut url = self.url(&["v1", "events"])?;
        if let Some(token) = continuation {
            url.query_pairs_mut()
                .append_pair("continuationToken", token);
        }
        let span = tracing::debug_span!("dvv", op = "events");
        self.get_json("events", Lane::Background, span, url).await
    }

    /// One page of this provider's statement: its openings whose reported `openedAt` lies in
    /// `[from, to)`, with DVV's verdicts. Pass the returned token back with the same period.
    pub async fn statement(
        &self,
        from: Timestamp,
        to: Timestamp,
        continuation: Option<&str>,
    ) -> Result<Upstream<StatementPage>, DvvError> {
        let mut url = self.url(&["v1", "statement"])?;
        {
            let mut query = url.query_pairs_mut();
            let millis = |t: Timestamp| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            query.append_pair("from", &millis(from));
            query.append_pair("to", &millis(to));
            query.append_pair("limit", "1000");
            if let Some(token) = continuation {
                query.append_pair("continuationToken", token);
            }
        }
        let span = tracing::debug_span!("dvv", op = "statement");
        self.get_json("statement", Lane::Background, span, url)
            .await
    }

    /// Makes sure a valid access token is at hand (fetching one if needed), for `/readyz`: it
    /// proves DVV is reachable and accepts this operator's TLS certificate and client assertion.
    pub async fn ensure_token(&self) -> Result<(), DvvError> {
        let deadline = Instant::now() + self.inner.call_timeout;
        match tokio::time::timeout_at(deadline, self.inner.tokens.get()).await {
            Ok(token) => token.map(drop),
            Err(_) => Err(DvvError::Timeout { trace_id: None }),
        }
    }

    // ---- the call machinery ----

    fn url(&self, segments: &[&str]) -> Result<Url, DvvError> {
        endpoint(&self.inner.base, segments).map_err(|_| DvvError::InvalidResponse {
            what: "base URL cannot hold paths".to_owned(),
            trace_id: None,
        })
    }

    /// A GET answered by JSON.
    async fn get_json<T: DeserializeOwned>(
        &self,
        op: &'static str,
        lane: Lane,
        span: tracing::Span,
        url: Url,
    ) -> Result<Upstream<T>, DvvError> {
        self.run(op, span, |token| {
            let url = url.clone();
            async move {
                let response = self
                    .send(lane, Method::GET, url, Payload::Empty, &token, None)
                    .await?;
                match response.status() {
                    StatusCode::OK => json(response).await,
                    _ => Err(error_from(response).await),
                }
            }
        })
        .await
    }

    /// A POST whose repetition DVV answers with 409 and the original body: both are success;
    /// the flag says whether it was a repetition.
    async fn post_idempotent<T: DeserializeOwned>(
        &self,
        op: &'static str,
        lane: Lane,
        span: tracing::Span,
        url: Url,
        body: Bytes,
    ) -> Result<Upstream<(T, bool)>, DvvError> {
        self.run(op, span, |token| {
            let (url, body) = (url.clone(), body.clone());
            async move {
                let response = self
                    .send(lane, Method::POST, url, Payload::Json(body), &token, None)
                    .await?;
                match response.status() {
                    StatusCode::OK | StatusCode::CREATED => {
                        json(response).await.map(|u| u.map(|v| (v, false)))
                    }
                    StatusCode::CONFLICT => json(response).await.map(|u| u.map(|v| (v, true))),
                    _ => Err(error_from(response).await),
                }
            }
        })
        .await
    }

    /// Runs one logical call: attempts under the call deadline, retried after retryable
    /// failures while the budget allows, and once after a 401 with a renewed token.
    async fn run<'a, T, F, Fut>(
        &'a self,
        op: &'static str,
        span: tracing::Span,
        attempt: F,
    ) -> Result<Upstream<T>, DvvError>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<Upstream<T>, DvvError>> + 'a,
    {
        let started = Instant::now();
        let deadline = started + self.inner.call_timeout;
        let work = async {
            let mut retries = 0u32;
            let mut renewed = false;
            loop {
                let result = match self.inner.tokens.get().await {
                    Ok(token) => match attempt(token.clone()).await {
                        Err(DvvError::Unauthorized { trace_id }) if !renewed => {
                            tracing::info!(trace_id, "dvv refused the access token; renewing once");
                            renewed = true;
                            self.inner.tokens.invalidate(&token);
                            continue;
                        }
                        result => result,
                    },
                    Err(error) => Err(error),
                };
                let error = match result {
                    Ok(value) => return Ok(value),
                    Err(error) if error.retry_within_call() => error,
                    Err(error) => return Err(error),
                };
                retries += 1;
                let delay = self.inner.policy.backoff(retries, jitter());
                let remaining = deadline.saturating_duration_since(Instant::now());
                if !self.inner.policy.allows(retries, delay, remaining) {
                    return Err(error);
                }
                tracing::debug!(
                    retry = retries,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    kind = error.kind(),
                    trace_id = error.trace_id(),
                    "dvv call failed; retrying"
                );
                tokio::time::sleep(delay).await;
            }
        };
        let result = match tokio::time::timeout_at(deadline, work)
            .instrument(span.clone())
            .await
        {
            Ok(result) => result,
            Err(_) => Err(DvvError::Timeout { trace_id: None }),
        };
        crate::telemetry::metrics::with(|m| {
            let outcome = result.as_ref().map_or_else(|e| e.kind(), |_| "ok");
            m.observe_dvv(op, outcome, started.elapsed());
        });
        if let Err(error) = &result {
            span.in_scope(|| {
                tracing::debug!(kind = error.kind(), trace_id = error.trace_id(), error = %error, "dvv call failed");
            });
        }
        result
    }

    /// Sends one request with the bearer token.
    async fn send(
        &self,
        lane: Lane,
        method: Method,
        url: Url,
        payload: Payload,
        token: &AccessToken,
        range: Option<&HeaderValue>,
    ) -> Result<Response<Incoming>, DvvError> {
        let accept = match payload {
            Payload::Attachment => "*/*",
            Payload::Empty | Payload::Json(_) => "application/json",
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(url.as_str())
            .header(AUTHORIZATION, token.bearer()?)
            .header(ACCEPT, accept)
            .header(USER_AGENT, USER_AGENT_VALUE);
        builder = match range {
            Some(range) => builder.header(RANGE, range.clone()),
            None => builder,
        };
        let body = match payload {
            Payload::Empty | Payload::Attachment => Full::new(Bytes::new()),
            Payload::Json(bytes) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Full::new(bytes)
            }
        };
        let request = builder.body(body).map_err(|_| DvvError::InvalidResponse {
            what: "cannot build the request".to_owned(),
            trace_id: None,
        })?;
        let http = match lane {
            Lane::Interactive => &self.inner.interactive,
            Lane::Background => &self.inner.background,
            Lane::Bulk => &self.inner.bulk,
        };
        http.request(request)
            .instrument(tracing::trace_span!("dvv_send"))
            .await
            .map_err(|error| transport::unavailable(&error))
    }
}

/// The token endpoint as a [`TokenSource`]: a fresh client assertion per request.
struct HttpTokenSource {
    http: HttpClient,
    signer: AssertionSigner,
    token_url: Url,
}

impl std::fmt::Debug for HttpTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTokenSource")
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

impl TokenSource for HttpTokenSource {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let token_error =
                |status: Option<StatusCode>, reason: String, trace_id| DvvError::Token {
                    status,
                    reason,
                    trace_id,
                };
            let assertion = self.signer.mint()?;
            let form = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .append_pair("client_assertion", &assertion)
                .finish();
            let request = Request::builder()
                .method(Method::POST)
                .uri(self.token_url.as_str())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(ACCEPT, "application/json")
                .header(USER_AGENT, USER_AGENT_VALUE)
                .body(Full::new(Bytes::from(form)))
                .map_err(|_| {
                    token_error(None, "cannot build the token request".to_owned(), None)
                })?;
            let response = self.http.request(request).await.map_err(|error| {
                match transport::unavailable(&error) {
                    DvvError::Unavailable { cause, trace_id } => DvvError::Unavailable {
                        cause: format!("token endpoint: {cause}"),
                        trace_id,
                    },
                    other => other,
                }
            })?;
            let status = response.status();
            let trace = trace_id(response.headers());
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                return Err(error_from(response).await);
            }
            if status != StatusCode::OK {
                let reason = transport::error_reason(response).await;
                return Err(token_error(Some(status), reason, trace));
            }
            let answer: TokenResponse = read_json(response, &trace).await.map_err(|error| {
                token_error(
                    Some(status),
                    format!("unusable token response: {error}"),
                    trace.clone(),
                )
            })?;
            if !answer.token_type.eq_ignore_ascii_case("bearer") {
                return Err(token_error(
                    Some(status),
                    "token_type is not Bearer".to_owned(),
                    trace,
                ));
            }
            if answer.expires_in == 0 || answer.access_token.is_empty() {
                return Err(token_error(
                    Some(status),
                    "token is empty or already expired".to_owned(),
                    trace,
                ));
            }
            Ok(FreshToken {
                token: AccessToken::new(answer.access_token),
                lifetime: Duration::from_secs(answer.expires_in),
            })
        })
    }
}

/// `base` with `segments` appended, each percent-encoded as one path segment (so an opaque
/// consent id can never change the path's shape).
fn endpoint(base: &Url, segments: &[&str]) -> Result<Url, ()> {
    let mut url = base.clone();
    url.path_segments_mut()?.pop_if_empty().extend(segments);
    Ok(url)
}

fn json_bytes<T: serde::Serialize>(value: &T) -> Result<Bytes, DvvError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|_| DvvError::InvalidResponse {
            what: "cannot encode the request".to_owned(),
            trace_id: None,
        })
}

/// A successful JSON response as a value with its trace id.
async fn json<T: DeserializeOwned>(response: Response<Incoming>) -> Result<Upstream<T>, DvvError> {
    let trace_id = trace_id(response.headers());
    let value = read_json(response, &trace_id).await?;
    Ok(Upstream { value, trace_id })
}

fn attachment_stream(
    status: StatusCode,
    response: Response<Incoming>,
    idle: Duration,
    slot: Arc<tokio::sync::OwnedSemaphorePermit>,
) -> Upstream<AttachmentStream> {
    let trace_id = trace_id(response.headers());
    let (parts, body) = response.into_parts();
    let mut headers = HeaderMap::new();
    for name in ATTACHMENT_HEADERS {
        if let Some(value) = parts.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    let body = BoxBody::new(super::body::Holding::new(
        IdleTimeout::new(body, idle, trace_id.clone()),
        slot,
    ));
    Upstream {
        value: AttachmentStream {
            status,
            headers,
            body,
        },
        trace_id,
    }
}

impl<T> Upstream<T> {
    /// The same trace id with a transformed value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Upstream<U> {
        Upstream {
            value: f(self.value),
            trace_id: self.trace_id,
        }
    }
}

mod forward;
#[cfg(test)]
mod tests;
