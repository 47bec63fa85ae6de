//! The operator API's routes: consent state, inbox, message, receipt, attachment.
//!
//! The pipeline (`pipeline.rs`) has admitted the request before a handler runs: its extractors
//! verified the citizen and the consent. A handler makes the DVV call, records the opening if
//! content is about to leave, and answers with `Cache-Control: no-store`; every refusal goes
//! through `ctx.refuse` so the access log and the audit record name it.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Serialize;

use super::context::Ctx;
use super::error::{ApiError, DVV_TRACE_HEADER};
use super::extract::{Admitted, AttachmentRef, Consented, MessageId};
use super::paging::PageQuery;
use super::state::{SharedWindow, Window};
use crate::consent::ConsentDecision;
use crate::dvv::canonical::Message;
use crate::server::ConnectionHandle;
use std::sync::Arc;

/// `GET /v1/consent`: the citizen's consent state and where to change it.
pub async fn consent_state(
    ctx: Ctx,
    State(window): State<SharedWindow>,
    Consented { decision, .. }: Consented,
) -> Response {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ConsentState<'a> {
        state: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        consent_id: Option<&'a str>,
        consent_service_url: &'a str,
    }
    let (state, consent_id) = match &decision {
        ConsentDecision::Active { consent_id } => ("Active", Some(consent_id.as_str())),
        ConsentDecision::Revoked { consent_id } => ("Revoked", Some(consent_id.as_str())),
        ConsentDecision::None => ("None", None),
    };
    json_no_store(
        &ctx,
        StatusCode::OK,
        &ConsentState {
            state,
            consent_id,
            consent_service_url: &window.consent_service_url,
        },
        None,
    )
}

/// `GET /v1/messages`: one inbox page (titles are content: never cached).
pub async fn list_messages(
    ctx: Ctx,
    State(window): State<SharedWindow>,
    page: PageQuery,
    admitted: Admitted,
) -> Result<Response, ApiError> {
    let answer = window
        .dvv
        .list_messages_json(
            &admitted.consent_id,
            page.continuation_token.as_deref(),
            page.limit,
        )
        .await
        .map_err(|e| ctx.refuse(forget_if_revoked(&window, &admitted.consent_id, e)))?;
    Ok(json_bytes_no_store(
        &ctx,
        answer.value,
        answer.trace_id.as_deref(),
    ))
}

/// `GET /v1/messages/{id}`: the message; its first release records the opening first.
pub async fn get_message(
    ctx: Ctx,
    State(window): State<SharedWindow>,
    MessageId(message_id): MessageId,
    admitted: Admitted,
) -> Result<Response, ApiError> {
    read_message(&ctx, &window, message_id, &admitted)
        .await
        .map_err(|e| ctx.refuse(e))
}

async fn read_message(
    ctx: &Ctx,
    window: &Window,
    message_id: i64,
    admitted: &Admitted,
) -> Result<Response, ApiError> {
    let answer = window
        .dvv
        .get_message_json(&admitted.consent_id, message_id)
        .await
        .map_err(|e| forget_if_revoked(window, &admitted.consent_id, e))?;
    ctx.dvv_trace(answer.trace_id.as_deref());
    let body = match answer.value {
        Message::Release(body) => body,
        Message::Withheld(detail) => {
            let summary =
                serde_json::to_value(&detail.summary).map_err(|_| ApiError::internal())?;
            return Err(ApiError::receipt_required(summary, answer.trace_id));
        }
    };
    window
        .recorded
        .ensure(&window.outbox, &admitted.consent_id, message_id)
        .await
        .map_err(refuse_release)?;
    Ok(json_bytes_no_store(ctx, body, answer.trace_id.as_deref()))
}

/// `POST /v1/messages/{id}/receipt`: the citizen's confirmation of receipt, a legal act at DVV.
pub async fn confirm_receipt(
    ctx: Ctx,
    State(window): State<SharedWindow>,
    MessageId(message_id): MessageId,
    admitted: Admitted,
) -> Result<Response, ApiError> {
    let answer = window
        .dvv
        .confirm_receipt(&admitted.consent_id, message_id)
        .await
        .map_err(|e| ctx.refuse(forget_if_revoked(&window, &admitted.consent_id, e)))?;
    Ok(json_no_store(
        &ctx,
        StatusCode::OK,
        &answer.value,
        answer.trace_id.as_deref(),
    ))
}

/// `GET /v1/messages/{id}/attachments/{attachmentId}`: streamed through chunk by chunk, and cut
/// when the client stops reading or the consent ends (see [`crate::outflow`]).
pub async fn get_attachment(
    ctx: Ctx,
    State(window): State<SharedWindow>,
    ids: AttachmentRef,
    connection: Option<Extension<ConnectionHandle>>,
    headers: HeaderMap,
    admitted: Admitted,
) -> Result<Response, ApiError> {
    let range = headers.get(header::RANGE);
    let answer = window
        .dvv
        .get_attachment(
            &admitted.consent_id,
            ids.message_id,
            ids.attachment_id,
            range,
        )
        .await
        .map_err(|e| ctx.refuse(forget_if_revoked(&window, &admitted.consent_id, e)))?;
    ctx.dvv_trace(answer.trace_id.as_deref());
    window
        .recorded
        .ensure(&window.outbox, &admitted.consent_id, ids.message_id)
        .await
        .map_err(|e| ctx.refuse(refuse_release(e)))?;
    let trace_id = answer.trace_id;
    let stream = answer.value;
    let body = bounded_stream(
        &window,
        stream.body,
        admitted,
        ctx,
        connection.map(|Extension(c)| c),
    );
    Ok(attachment_response(
        stream.status,
        stream.headers,
        body,
        trace_id.as_deref(),
    ))
}

/// The one place an attachment's bytes become a response body: DVV's status and the headers it
/// may pass (type, length, disposition, range), never cached; the body is the bounded stream.
fn attachment_response(
    status: StatusCode,
    headers: HeaderMap,
    body: crate::outflow::BoundedBody,
    trace_id: Option<&str>,
) -> Response {
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = status;
    let out = response.headers_mut();
    out.extend(headers);
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    insert_trace(out, trace_id);
    response
}

/// DVV's attachment body bounded by the client's reading and by the consent: the pump re-checks
/// the consent through the cache (so at most every revocation bound, at DVV), listens for its
/// revocation, and audits a cut.
fn bounded_stream(
    window: &SharedWindow,
    body: crate::dvv::AttachmentBody,
    admitted: Admitted,
    ctx: Ctx,
    connection: Option<ConnectionHandle>,
) -> crate::outflow::BoundedBody {
    let Admitted {
        consent_id,
        citizen,
    } = admitted;
    let citizen = Arc::new(citizen);
    let still_active: crate::outflow::ConsentCheck = {
        let (window, citizen, consent_id) =
            (Arc::clone(window), Arc::clone(&citizen), consent_id.clone());
        Arc::new(move || {
            let (window, citizen, consent_id) = (
                Arc::clone(&window),
                Arc::clone(&citizen),
                consent_id.clone(),
            );
            Box::pin(async move {
                matches!(
                    super::extract::consent_of(&window, &citizen).await,
                    Ok(decision) if decision.active_consent_id() == Some(consent_id.as_str())
                )
            })
        })
    };
    let on_cut = {
        let window = Arc::clone(window);
        let consent_id = consent_id.clone();
        Box::new(move |reason: crate::outflow::CutReason| {
            tracing::info!(reason = reason.label(), "attachment stream cut");
            // The same request's facts, as its own audit line recorded them when it began.
            let facts = ctx.snapshot();
            let record = crate::audit::Access {
                time: chrono::Utc::now(),
                request_id: facts.request_id,
                action: crate::audit::Action::Attachment,
                consent_id: Some(consent_id),
                message_id: facts.message_id,
                attachment_id: facts.attachment_id,
                outcome: crate::audit::Outcome::Failed,
                status: 200,
                reason: Some(match reason {
                    crate::outflow::CutReason::WriteIdle => "stream_cut_write_idle",
                    crate::outflow::CutReason::Revoked => "stream_cut_revoked",
                }),
                trace_id: facts.dvv_trace_id,
                citizen: facts.citizen.as_deref().map(str::to_owned),
                reply: None,
            };
            tokio::spawn(async move {
                if let Err(error) = window.audit.record(record).await {
                    tracing::error!(%error, "audit record of a stream cut not written");
                }
            });
        })
    };
    crate::outflow::bounded(
        body,
        crate::outflow::Bounds {
            write_idle: window.streams.write_idle,
            recheck_every: window.streams.recheck_every,
            revocations: window.consents.watch_revocation(&consent_id),
            still_active,
            connection,
            on_cut,
        },
    )
}

/// Unknown routes answer in the house style too.
pub async fn fallback(ctx: Ctx) -> ApiError {
    ctx.refuse(ApiError::not_found())
}

/// DVV saying "forbidden" on a message call means the consent ended under us: the cached
/// "active" answer is dropped at once rather than waiting for its expiry.
pub(super) fn forget_if_revoked(
    window: &Window,
    consent_id: &str,
    e: crate::dvv::DvvError,
) -> ApiError {
    if e.is_consent_revoked() {
        window.consents.revoke(consent_id);
        return ApiError::no_consent(true, &window.consent_service_url, &window.fallback_url);
    }
    ApiError::from(e).with_fallback(&window.fallback_url)
}

/// Fail closed: an opening that cannot be recorded (full or read-only disk) keeps the body in;
/// the refusal is counted and answered 503 with a reason naming the store, never the citizen.
fn refuse_release(e: crate::openings::StoreError) -> ApiError {
    crate::health::refused_release(&e);
    e.into()
}

fn insert_trace(headers: &mut HeaderMap, trace_id: Option<&str>) {
    if let Some(v) = trace_id.and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert(DVV_TRACE_HEADER, v);
    }
}

/// A 200 answer of JSON bytes checked against the contract (see [`crate::dvv::canonical`]),
/// never cached, with DVV's trace id (noted in the request's context too).
fn json_bytes_no_store(ctx: &Ctx, body: bytes::Bytes, trace_id: Option<&str>) -> Response {
    ctx.dvv_trace(trace_id);
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    insert_trace(headers, trace_id);
    response
}

/// A JSON answer, never cached, with DVV's trace id (noted in the request's context too).
pub(super) fn json_no_store<T: Serialize>(
    ctx: &Ctx,
    status: StatusCode,
    value: &T,
    trace_id: Option<&str>,
) -> Response {
    ctx.dvv_trace(trace_id);
    let Ok(body) = serde_json::to_vec(value) else {
        return ctx.refuse(ApiError::internal()).into_response();
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    insert_trace(headers, trace_id);
    response
}
