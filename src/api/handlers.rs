//! The operator API's routes: consent state, inbox, message, receipt, attachment.
//!
//! Each handler follows the one data path: admit (assertion, consent) → DVV call → record the
//! opening if content is about to leave → answer with `Cache-Control: no-store`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Serialize;

use super::error::{ApiError, DVV_TRACE_HEADER};
use super::guard;
use super::paging::PageQuery;
use super::state::SharedWindow;
use crate::consent::ConsentDecision;
use crate::server::ConnectionHandle;

/// `GET /v1/consent`: the citizen's consent state and where to change it.
pub async fn consent_state(
    State(window): State<SharedWindow>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ConsentState<'a> {
        state: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        consent_id: Option<&'a str>,
        consent_service_url: &'a str,
    }
    let citizen = guard::citizen(&window, &headers).await?;
    let decision = guard::consent_of(&window, &citizen).await?;
    let (state, consent_id) = match &decision {
        ConsentDecision::Active { consent_id } => ("Active", Some(consent_id.as_str())),
        ConsentDecision::Revoked { consent_id } => ("Revoked", Some(consent_id.as_str())),
        ConsentDecision::None => ("None", None),
    };
    Ok(json_no_store(
        StatusCode::OK,
        &ConsentState {
            state,
            consent_id,
            consent_service_url: &window.consent_service_url,
        },
        None,
    ))
}

/// `GET /v1/messages`: one inbox page (titles are content: never cached).
pub async fn list_messages(
    State(window): State<SharedWindow>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let page = PageQuery::parse(query.as_deref())?;
    let admitted = guard::admit(&window, &headers).await?;
    let answer = window
        .dvv
        .list_messages(
            &admitted.consent_id,
            page.continuation_token.as_deref(),
            page.limit,
        )
        .await
        .map_err(|e| forget_if_revoked(&window, &admitted.consent_id, e))?;
    Ok(json_no_store(
        StatusCode::OK,
        &answer.value,
        answer.trace_id.as_deref(),
    ))
}

/// `GET /v1/messages/{id}`: the message; its first release records the opening first.
pub async fn get_message(
    State(window): State<SharedWindow>,
    message_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let message_id = parse_id(&path_value(message_id)?)?;
    let admitted = guard::admit(&window, &headers).await?;
    let answer = window
        .dvv
        .get_message(&admitted.consent_id, message_id)
        .await
        .map_err(|e| forget_if_revoked(&window, &admitted.consent_id, e))?;
    let detail = answer.value;
    if detail.is_withheld() {
        let summary = serde_json::to_value(&detail.summary).map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                "serialize",
            )
        })?;
        return Err(ApiError::receipt_required(summary, answer.trace_id));
    }
    window
        .recorded
        .ensure(&window.outbox, &admitted.consent_id, message_id)
        .await
        .map_err(refuse_release)?;
    Ok(json_no_store(
        StatusCode::OK,
        &detail,
        answer.trace_id.as_deref(),
    ))
}

/// `POST /v1/messages/{id}/receipt`: the citizen's confirmation of receipt, a legal act at DVV.
pub async fn confirm_receipt(
    State(window): State<SharedWindow>,
    message_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let message_id = parse_id(&path_value(message_id)?)?;
    let admitted = guard::admit(&window, &headers).await?;
    let answer = window
        .dvv
        .confirm_receipt(&admitted.consent_id, message_id)
        .await
        .map_err(|e| forget_if_revoked(&window, &admitted.consent_id, e))?;
    Ok(json_no_store(
        StatusCode::OK,
        &answer.value,
        answer.trace_id.as_deref(),
    ))
}

/// `GET /v1/messages/{id}/attachments/{attachmentId}`: streamed through chunk by chunk, and cut
/// when the client stops reading or the consent ends (see [`crate::outflow`]).
pub async fn get_attachment(
    State(window): State<SharedWindow>,
    ids: Result<Path<(String, String)>, PathRejection>,
    connection: Option<Extension<ConnectionHandle>>,
    request_id: Option<Extension<super::RequestId>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (message_id, attachment_id) = path_value(ids)?;
    let message_id = parse_id(&message_id)?;
    let attachment_id = parse_id(&attachment_id)?;
    let admitted = guard::admit(&window, &headers).await?;
    let range = headers.get(header::RANGE);
    let answer = window
        .dvv
        .get_attachment(&admitted.consent_id, message_id, attachment_id, range)
        .await
        .map_err(|e| forget_if_revoked(&window, &admitted.consent_id, e))?;
    window
        .recorded
        .ensure(&window.outbox, &admitted.consent_id, message_id)
        .await
        .map_err(refuse_release)?;
    let stream = answer.value;
    let access = StreamAccess {
        request_id: request_id.map(|Extension(id)| id.0).unwrap_or_default(),
        message_id,
        attachment_id,
        trace_id: answer.trace_id.clone(),
    };
    let body = bounded_stream(
        &window,
        stream.body,
        admitted,
        access,
        connection.map(|Extension(c)| c),
    );
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = stream.status;
    let out = response.headers_mut();
    out.extend(stream.headers);
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    insert_trace(out, answer.trace_id.as_deref());
    Ok(response)
}

/// The ids of a streamed access, for the audit record of its cut.
struct StreamAccess {
    request_id: String,
    message_id: i64,
    attachment_id: i64,
    trace_id: Option<String>,
}

/// DVV's attachment body bounded by the client's reading and by the consent: the pump re-checks
/// the consent through the cache (so at most every revocation bound, at DVV), listens for its
/// revocation, and audits a cut.
fn bounded_stream(
    window: &SharedWindow,
    body: crate::dvv::AttachmentBody,
    admitted: guard::Admitted,
    access: StreamAccess,
    connection: Option<ConnectionHandle>,
) -> crate::outflow::BoundedBody {
    let guard::Admitted {
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
                    guard::consent_of(&window, &citizen).await,
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
            let record = crate::audit::Access {
                time: chrono::Utc::now(),
                request_id: access.request_id,
                action: crate::audit::Action::Attachment,
                consent_id: Some(consent_id),
                message_id: Some(access.message_id),
                attachment_id: Some(access.attachment_id),
                outcome: crate::audit::Outcome::Failed,
                status: 200,
                reason: Some(match reason {
                    crate::outflow::CutReason::WriteIdle => "stream_cut_write_idle",
                    crate::outflow::CutReason::Revoked => "stream_cut_revoked",
                }),
                trace_id: access.trace_id,
                citizen: window.audit.pseudonym(&citizen.identity),
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
pub async fn fallback() -> ApiError {
    ApiError::not_found()
}

/// DVV saying "forbidden" on a message call means the consent ended under us: the cached
/// "active" answer is dropped at once rather than waiting for its expiry.
fn forget_if_revoked(
    window: &Arc<super::state::Window>,
    consent_id: &str,
    e: crate::dvv::DvvError,
) -> ApiError {
    if e.is_consent_revoked() {
        window.consents.revoke(consent_id);
        return ApiError::no_consent(true, &window.consent_service_url);
    }
    e.into()
}

/// Fail closed: an opening that cannot be recorded (full or read-only disk) keeps the body in;
/// the refusal is counted and answered 503 with a reason naming the store, never the citizen.
fn refuse_release(e: crate::openings::StoreError) -> ApiError {
    crate::health::refused_release(&e);
    e.into()
}

/// A path that cannot even be decoded (e.g. invalid UTF-8) is refused in the house style.
fn path_value<T>(extracted: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    extracted
        .map(|Path(v)| v)
        .map_err(|_| ApiError::bad_request("Identifiers are positive integers"))
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request("Identifiers are positive integers"))
}

fn insert_trace(headers: &mut HeaderMap, trace_id: Option<&str>) {
    if let Some(v) = trace_id.and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert(DVV_TRACE_HEADER, v);
    }
}

fn json_no_store<T: Serialize>(status: StatusCode, value: &T, trace_id: Option<&str>) -> Response {
    let Ok(body) = serde_json::to_vec(value) else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            "serialize",
        )
        .into_response();
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
