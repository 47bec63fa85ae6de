//! The HTTP layer towards DVV: a pooled hyper-util client over hyper-rustls (mutual TLS from
//! [`super::tls`]), and the helpers that turn responses into values or typed errors.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::de::DeserializeOwned;

use super::contract::ErrorBody;
use super::error::{sanitise_reason, DvvError, DvvSetupError};
use super::tls;
use crate::config::DvvConfig;

/// The pooled HTTPS client (cheap to clone: the pool is shared).
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Largest JSON response accepted from DVV (a message with its body is the largest).
pub(crate) const JSON_LIMIT: usize = 8 * 1024 * 1024;
/// Largest error body read for its `reason`.
const ERROR_LIMIT: usize = 64 * 1024;
/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Which pool a call uses. Calls are split by how they hold a connection, so that one kind can
/// never starve another (the bulkheads described in SECURITY.md):
///
/// - attachment bodies are read at the pace of the operator's client, which may stop reading at
///   any moment; on a shared HTTP/2 connection their unread DATA would pin its connection-level
///   flow-control window and stall every other stream. They get HTTP/1.1 connections of their
///   own (one stream each), bounded by `dvv.max_attachment_streams`;
/// - the calls a citizen waits for (consent, inbox, message, receipt) share one HTTP/2 pool and
///   read their bounded JSON bodies at once;
/// - the gateway's own work (token renewal, the events feed, opening reports) has a pool of its
///   own, so no flood of citizen calls delays a revocation or a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Citizen-facing JSON calls.
    Interactive,
    /// Token, events feed, opening reports.
    Background,
    /// Attachment bodies: HTTP/1.1, one connection per stream.
    Bulk,
}

/// Per-stream HTTP/2 receive window on the JSON lanes: no single response can take the whole
/// connection window (which is four times larger).
const STREAM_WINDOW: u32 = 1024 * 1024;
/// Connection-level HTTP/2 receive window on the JSON lanes.
const CONNECTION_WINDOW: u32 = 4 * STREAM_WINDOW;
/// HTTP/2 keep-alive: a ping this often on a connection to DVV, and the connection is dropped
/// when a ping is not answered within [`PING_TIMEOUT`] (a dead path is found in seconds, not
/// when the kernel's TCP timers give up).
const PING_INTERVAL: Duration = Duration::from_secs(10);
/// See [`PING_INTERVAL`].
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the client of one [`Lane`]: TLS 1.2/1.3 with mutual TLS, https only, connect timeout
/// and pool size from `[dvv]`; HTTP/2 or HTTP/1.1 by ALPN on the JSON lanes, HTTP/1.1 only on
/// the bulk lane.
pub(crate) fn http_client(cfg: &DvvConfig, lane: Lane) -> Result<HttpClient, DvvSetupError> {
    client_with_body(cfg, lane)
}

/// A client of `lane` whose requests carry bodies of type `B` (uploads stream theirs).
pub(crate) fn client_with_body<B>(
    cfg: &DvvConfig,
    lane: Lane,
) -> Result<Client<HttpsConnector<HttpConnector>, B>, DvvSetupError>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tls = tls::client_config(cfg)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(cfg.connect_timeout));
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(30)));
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1();
    let https = match lane {
        Lane::Bulk => https.wrap_connector(http),
        Lane::Interactive | Lane::Background => https.enable_http2().wrap_connector(http),
    };
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(cfg.pool_idle_per_host);
    if lane != Lane::Bulk {
        builder
            .http2_initial_stream_window_size(STREAM_WINDOW)
            .http2_initial_connection_window_size(CONNECTION_WINDOW)
            .http2_keep_alive_interval(PING_INTERVAL)
            .http2_keep_alive_timeout(PING_TIMEOUT)
            .http2_keep_alive_while_idle(true);
    }
    Ok(builder.build(https))
}

/// A transport failure as a [`DvvError::Unavailable`], with the cause chain (no content: these
/// are connect, TLS and protocol errors).
pub(crate) fn unavailable(error: &(dyn std::error::Error + 'static)) -> DvvError {
    let mut cause = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        cause.push_str(": ");
        cause.push_str(&inner.to_string());
        source = inner.source();
    }
    DvvError::Unavailable {
        cause,
        trace_id: None,
    }
}

/// DVV's `traceId` header, if present and shaped like an id (it is echoed to operators and
/// logged, so anything else is dropped).
pub(crate) fn trace_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("traceid")?.to_str().ok()?;
    let ok = (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    ok.then(|| value.to_owned())
}

/// Reads a JSON body of at most [`JSON_LIMIT`] bytes into `T`. Parse errors name the position,
/// never the content.
pub(crate) async fn read_json<T: DeserializeOwned>(
    response: Response<Incoming>,
    trace_id: &Option<String>,
) -> Result<T, DvvError> {
    let bytes = read_json_bytes(response, trace_id).await?;
    serde_json::from_slice(&bytes).map_err(|error| json_error(&error, trace_id))
}

/// A JSON response's body, whole, within the JSON size limit (not yet parsed).
pub(crate) async fn read_json_bytes(
    response: Response<Incoming>,
    trace_id: &Option<String>,
) -> Result<Bytes, DvvError> {
    read_limited(response.into_body(), JSON_LIMIT, trace_id).await
}

/// A body that is not the JSON the contract describes (where, never what: no content).
pub(crate) fn json_error(error: &serde_json::Error, trace_id: &Option<String>) -> DvvError {
    DvvError::InvalidResponse {
        what: format!(
            "unexpected JSON ({:?} error at line {} column {})",
            error.classify(),
            error.line(),
            error.column()
        ),
        trace_id: trace_id.clone(),
    }
}

async fn read_limited(
    body: Incoming,
    limit: usize,
    trace_id: &Option<String>,
) -> Result<Bytes, DvvError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(DvvError::InvalidResponse {
                what: format!("response body larger than {limit} bytes"),
                trace_id: trace_id.clone(),
            })
        }
        Err(error) => Err(DvvError::Unavailable {
            cause: format!("connection to DVV failed mid-body: {error}"),
            trace_id: trace_id.clone(),
        }),
    }
}

/// DVV's `reason` of an error response (bounded and sanitised), or the status's own phrase.
pub(crate) async fn error_reason(response: Response<Incoming>) -> String {
    let status = response.status();
    let fallback = || status.canonical_reason().unwrap_or("error").to_owned();
    match read_limited(response.into_body(), ERROR_LIMIT, &None).await {
        Ok(bytes) => serde_json::from_slice::<ErrorBody>(&bytes)
            .ok()
            .and_then(|body| body.reason)
            .map(|reason| sanitise_reason(&reason))
            .filter(|reason| !reason.is_empty())
            .unwrap_or_else(fallback),
        Err(_) => fallback(),
    }
}

/// Turns a non-success response into its typed error.
pub(crate) async fn error_from(response: Response<Incoming>) -> DvvError {
    let status = response.status();
    let trace_id = trace_id(response.headers());
    match status {
        StatusCode::UNAUTHORIZED => DvvError::Unauthorized { trace_id },
        StatusCode::TOO_MANY_REQUESTS => DvvError::Throttled { trace_id },
        StatusCode::RANGE_NOT_SATISFIABLE => DvvError::RangeNotSatisfiable {
            content_range: response.headers().get(http::header::CONTENT_RANGE).cloned(),
            trace_id,
        },
        status if status.is_server_error() => {
            // Drain a little so the connection can be reused; the body itself is not used.
            let _ = read_limited(response.into_body(), ERROR_LIMIT, &None).await;
            DvvError::Upstream5xx { status, trace_id }
        }
        StatusCode::NOT_FOUND => DvvError::NotFound {
            reason: error_reason(response).await,
            trace_id,
        },
        StatusCode::FORBIDDEN => DvvError::Forbidden {
            reason: error_reason(response).await,
            trace_id,
        },
        StatusCode::CONFLICT => DvvError::Conflict {
            reason: error_reason(response).await,
            trace_id,
        },
        status if status.is_client_error() => DvvError::BadRequest {
            status,
            reason: error_reason(response).await,
            trace_id,
        },
        status => DvvError::InvalidResponse {
            what: format!("unexpected status {status}"),
            trace_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_kept_only_when_id_shaped() {
        let mut headers = HeaderMap::new();
        assert_eq!(trace_id(&headers), None);
        headers.insert(
            "traceId",
            "0b6b2b8e-2f5c-4c1e-9d2a-1f2e3d4c5b6a".parse().unwrap(),
        );
        assert_eq!(
            trace_id(&headers).as_deref(),
            Some("0b6b2b8e-2f5c-4c1e-9d2a-1f2e3d4c5b6a")
        );
        headers.insert("traceid", "evil value; with spaces".parse().unwrap());
        assert_eq!(trace_id(&headers), None);
    }
}
