//! The bodies of the pipeline's layers (the order and the why of each are in `pipeline.rs`).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::RequestExt;
use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::context::Ctx;
use super::error::ApiError;
use super::routes::{PathIds, Route};
use super::state::SharedWindow;
use super::REQUEST_ID_HEADER;
use crate::audit::{Access, Outcome};
use crate::limits::ClientKey;

/// 1. Names the request, gives it its context, and on the way out stamps `x-request-id` and
///    `Cache-Control: no-store` on every answer (refusals of every step included), writes the
///    access-log line (route template, status, latency, error label; never the query, headers
///    or body) and the request metrics.
pub(super) async fn identify(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let ctx = Ctx::new(request_id.clone());
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", request_id = %request_id);
    request.extensions_mut().insert(ctx.clone());
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let facts = ctx.snapshot();
    // Every field is structured and safe on its own (see `redact::ACCESS_LOG_TARGET`): the
    // method from a fixed set, the route template, fixed labels, and DVV's trace id redacted.
    let method = crate::telemetry::metrics::method_label(method.as_str());
    let dvv_trace_id =
        crate::telemetry::redact::redact(facts.dvv_trace_id.as_deref().unwrap_or(""));
    tracing::info!(
        target: crate::telemetry::redact::ACCESS_LOG_TARGET,
        parent: &span,
        method,
        route,
        status,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        error = facts.error.unwrap_or(""),
        dvv_trace_id = &*dvv_trace_id,
        "operator api"
    );
    crate::telemetry::metrics::with(|m| {
        m.observe_http(&route, method, status, started.elapsed());
    });
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID_HEADER, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// For listeners outside the pipeline (the admin listener): every answer carries a fresh
/// `x-request-id` and `Cache-Control: no-store`, as the operator API's do.
pub async fn stamp(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        headers.insert(REQUEST_ID_HEADER, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 2. A panic below becomes a 500 in the house style; the connection and the process go on.
pub(super) async fn rescue(ctx: Ctx, request: Request, next: Next) -> Response {
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!("a request panicked; answered 500");
            ctx.refuse(ApiError::internal()).into_response()
        }
    }
}

/// 3. The slots of `server.max_concurrent_requests`, shared by every route.
#[derive(Clone, Debug)]
pub struct Shed {
    slots: Arc<Semaphore>,
}

impl Shed {
    /// `limit` requests in flight at once (at least one).
    pub fn new(limit: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit.clamp(1, Semaphore::MAX_PERMITS))),
        }
    }
}

/// 3. Takes a slot for the request and keeps it until its answer's body has ended (a stream
///    holds its slot while it flows); with no slot free, answers 503 at once. Never queues.
pub(super) async fn shed(
    State(shed): State<Shed>,
    ctx: Ctx,
    request: Request,
    next: Next,
) -> Response {
    let Ok(slot) = shed.slots.clone().try_acquire_owned() else {
        crate::telemetry::metrics::with(|m| m.shed.inc());
        return ctx.refuse(ApiError::overloaded()).into_response();
    };
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Body::new(HoldsSlot { body, _slot: slot }))
}

/// A response body that returns its request's slot when it ends or is dropped.
struct HoldsSlot {
    body: Body,
    _slot: OwnedSemaphorePermit,
}

impl http_body::Body for HoldsSlot {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// 4. Refuses an operator client over its own rate with 429. The client is the key the listener
///    attached to the connection (certificate fingerprint or address).
pub(super) async fn client_limit(
    State(window): State<SharedWindow>,
    ctx: Ctx,
    request: Request,
    next: Next,
) -> Response {
    if let Some(key) = request.extensions().get::<ClientKey>() {
        if let Err(refusal) = window.limits.check_client(key) {
            return ctx.refuse(refusal).into_response();
        }
    }
    next.run(request).await
}

/// 5. Writes the audit record of an access once its answer is ready, before it leaves: the
///    route's action, the ids the pipeline decoded, and what the steps below noted in the
///    context. A success whose record cannot be written is answered 503 instead.
pub(super) async fn audit(
    State((window, route)): State<(SharedWindow, Route)>,
    ctx: Ctx,
    request: Request,
    next: Next,
) -> Response {
    ctx.route(route);
    if !window.audit.is_enabled() {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let facts = ctx.snapshot();
    let access = Access {
        time: chrono::Utc::now(),
        request_id: facts.request_id,
        action: route.action(),
        consent_id: facts.consent_id,
        message_id: facts.message_id,
        attachment_id: facts.attachment_id,
        outcome: Outcome::of_status(status),
        status,
        reason: facts.error,
        trace_id: facts.dvv_trace_id,
        citizen: facts.citizen.as_deref().map(str::to_owned),
        reply: facts.reply,
    };
    match window.audit.record(access).await {
        Ok(()) => response,
        Err(error) if status < 400 => {
            tracing::error!(%error, "audit record not written: the access is refused");
            drop(response);
            ctx.refuse(ApiError::audit_unavailable()).into_response()
        }
        Err(error) => {
            tracing::error!(%error, "audit record of a refusal not written");
            response
        }
    }
}

/// 6. The request must be what the route takes: its one method (HEAD is not GET here: axum
///    would run the GET handler and record an opening while releasing nothing), exactly one
///    `Authorization`, only the route's query parameters, and path ids that are positive
///    integers. The ids are decoded here, once, into the context; handlers and the audit record
///    both take them from there.
pub(super) async fn request_shape(
    State(route): State<Route>,
    ctx: Ctx,
    mut request: Request,
    next: Next,
) -> Response {
    if request.method() != route.method() {
        let mut refused = ctx.refuse(ApiError::method_not_allowed()).into_response();
        if let Ok(allow) = HeaderValue::from_str(route.method().as_str()) {
            refused.headers_mut().insert(header::ALLOW, allow);
        }
        return refused;
    }
    if request
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .count()
        > 1
    {
        return ctx
            .refuse(ApiError::repeated_authorization())
            .into_response();
    }
    let query = request.uri().query().unwrap_or("");
    let unknown = url::form_urlencoded::parse(query.as_bytes())
        .any(|(key, _)| !route.query().contains(&key.as_ref()));
    if unknown {
        return ctx
            .refuse(ApiError::unknown_query_parameter())
            .into_response();
    }
    if route.ids() != PathIds::None {
        let decoded = request
            .extract_parts::<Path<HashMap<String, String>>>()
            .await
            .ok()
            .and_then(|Path(params)| decode_ids(route, &params));
        match decoded {
            Some((message, attachment)) => ctx.ids(Some(message), attachment),
            None => return ctx.refuse(ApiError::bad_id()).into_response(),
        }
    }
    next.run(request).await
}

/// The route's ids from its (percent-decoded) path parameters: positive integers, `+` and
/// leading zeros allowed, as the integer they denote.
fn decode_ids(route: Route, params: &HashMap<String, String>) -> Option<(i64, Option<i64>)> {
    let id = |name: &str| {
        params
            .get(name)
            .and_then(|raw| raw.parse::<i64>().ok())
            .filter(|id| *id > 0)
    };
    let message = id("message_id")?;
    match route.ids() {
        PathIds::MessageAndAttachment => Some((message, Some(id("attachment_id")?))),
        _ => Some((message, None)),
    }
}

/// 5b. (POST routes) A request body that nothing reads to its end is, once dropped, read on and
///     discarded up to [`DISCARD_BYTES`] within [`DISCARD_TIME`]: a client that sent a small body
///     eagerly then reads its refusal (given unread: no consent, a reply not allowed, a bad id)
///     on a cleanly ended request instead of a reset connection. A larger body is cut off.
pub(super) async fn discard_unread(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = Body::new(DiscardOnDrop {
        body: Some(body),
        ended: false,
    });
    next.run(Request::from_parts(parts, body)).await
}

/// At most this much of an unread body is discarded.
const DISCARD_BYTES: usize = 256 * 1024;
/// Within this time.
const DISCARD_TIME: Duration = Duration::from_secs(5);

/// A request body that, dropped before its end, hands what remains to a bounded discarding task.
struct DiscardOnDrop {
    body: Option<Body>,
    ended: bool,
}

impl http_body::Body for DiscardOnDrop {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body
            .as_ref()
            .map_or_else(http_body::SizeHint::default, |b| b.size_hint())
    }
}

impl Drop for DiscardOnDrop {
    fn drop(&mut self) {
        let Some(body) = self.body.take() else {
            return;
        };
        if self.ended || http_body::Body::is_end_stream(&body) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                use futures_util::StreamExt as _;
                let mut stream = body.into_data_stream();
                let _ = tokio::time::timeout(DISCARD_TIME, async {
                    let mut read = 0usize;
                    while let Some(Ok(chunk)) = stream.next().await {
                        read += chunk.len();
                        if read > DISCARD_BYTES {
                            break;
                        }
                    }
                })
                .await;
            });
        }
    }
}

/// 7. Bounds the request by `server.request_timeout_ms`: a whole answer, or the start of a
///    streamed one (its head, sent once DVV has started the body). Past it: 504 with a reason.
pub(super) async fn deadline(
    State(limit): State<Duration>,
    ctx: Ctx,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            crate::telemetry::metrics::with(|m| m.request_timeouts.inc());
            ctx.refuse(ApiError::request_timeout()).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_below_the_rescue_layer_is_one_answer_in_the_house_style() {
        use axum::middleware::from_fn;
        use tower::ServiceExt;

        async fn panics() -> Response {
            panic!("a bug in a handler")
        }
        let app = axum::Router::new()
            .route("/boom", axum::routing::get(panics))
            .layer(
                tower::ServiceBuilder::new()
                    .layer(from_fn(identify))
                    .layer(from_fn(rescue)),
            );
        let request = Request::get("/boom").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert!(response.headers().contains_key(REQUEST_ID_HEADER));
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], br#"{"reason":"Internal error"}"#);
    }

    #[test]
    fn ids_are_decoded_as_the_integers_they_denote() {
        let params = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let message = params(&[("message_id", "+0004100008")]);
        assert_eq!(decode_ids(Route::Message, &message), Some((4100008, None)));
        let both = params(&[("message_id", "7"), ("attachment_id", "09")]);
        assert_eq!(decode_ids(Route::Attachment, &both), Some((7, Some(9))));
        for bad in ["0", "-7", "x", "", "99999999999999999999"] {
            let p = params(&[("message_id", bad), ("attachment_id", "1")]);
            assert_eq!(decode_ids(Route::Message, &p), None, "{bad}");
            assert_eq!(decode_ids(Route::Attachment, &p), None, "{bad}");
        }
    }
}
