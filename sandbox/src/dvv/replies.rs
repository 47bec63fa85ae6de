//! `GET .../reply-policy` (may the citizen reply, within which limits, and was this idempotency
//! key used already) and `POST .../replies` (the reply itself, streamed as
//! `multipart/form-data`: read part by part and chunk by chunk, each file hashed and counted,
//! never held whole; recorded only once it has arrived complete).

use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::domain_error;
use super::router::parse_id;
use super::views::ReplyView;
use crate::app::App;
use crate::domain::DomainError;
use crate::http::error::ApiError;
use crate::http::{json, Body};
use crate::journal::ReplyFile;
use crate::model::ReplyAllowedBy;
use crate::replies::{accepted, ReplyLimits, ACCEPTED_MEDIA_TYPES};

/// The idempotency key's header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Longest wait for the next piece of an upload.
const UPLOAD_IDLE: Duration = Duration::from_secs(30);

/// Answer of the policy call.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PolicyView {
    reply_allowed_by: ReplyAllowedBy,
    limits: ReplyLimits,
    accepted_media_types: &'static [&'static str],
    previous_reply: Option<ReplyView>,
}

/// `GET .../messages/{messageId}/reply-policy`: releases no content.
pub fn policy(
    app: &App,
    provider: &str,
    consent_id: &str,
    message_id: &str,
    headers: &HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let message_id = parse_id(message_id, "messageId")?;
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(_) => Some(idempotency_key(headers)?),
    };
    let standing = app
        .domain
        .reply_standing(provider, consent_id, message_id, key.as_deref())
        .map_err(domain_error)?;
    Ok(json(
        StatusCode::OK,
        &PolicyView {
            reply_allowed_by: standing.reply_allowed_by,
            limits: app.reply_limits,
            accepted_media_types: &ACCEPTED_MEDIA_TYPES,
            previous_reply: standing.previous.map(|r| ReplyView::of(&r, false)),
        },
    ))
}

/// `POST .../messages/{messageId}/replies`: 201 with the reply's receipt, 409 with the original
/// receipt for a used key; refusals that need no body (consent, message, not allowed, key used,
/// declared size) are answered before a byte of it is read.
pub async fn post(
    app: &Arc<App>,
    provider: &str,
    consent_id: &str,
    message_id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let message_id = parse_id(message_id, "messageId")?;
    let key = idempotency_key(req.headers())?;
    match app.domain.may_reply(provider, consent_id, message_id, &key) {
        Ok(()) => {}
        Err(DomainError::ReplyRepeated(original)) => {
            return Ok(json(StatusCode::CONFLICT, &ReplyView::of(&original, false)))
        }
        Err(e) => return Err(domain_error(e)),
    }
    let limits = app.reply_limits;
    if let Some(declared) = req.headers().get(CONTENT_LENGTH) {
        match declared.to_str().ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(n) if n > limits.max_request_bytes() => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Reply exceeds the size limits",
                ))
            }
            Some(_) => {}
            None => return Err(ApiError::bad_request("Invalid Content-Length")),
        }
    }
    let boundary = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be multipart/form-data with a boundary",
            )
        })?;
    let (text, files) = read_parts(req.into_body(), boundary, limits).await?;
    match app
        .domain
        .record_reply(provider, consent_id, message_id, &key, text, files)
    {
        Ok(reply) => {
            answer_later(app, reply.id);
            Ok(json(StatusCode::CREATED, &ReplyView::of(&reply, false)))
        }
        Err(DomainError::ReplyRepeated(original)) => {
            Ok(json(StatusCode::CONFLICT, &ReplyView::of(&original, false)))
        }
        Err(e) => Err(domain_error(e)),
    }
}

/// With automatic answers on, the authority answers the reply after a while.
fn answer_later(app: &Arc<App>, reply_id: i64) {
    let Some(after) = app.answer_replies_after else {
        return;
    };
    let app = Arc::clone(app);
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if let Err(e) = app.domain.answer_reply(reply_id, None) {
            tracing::warn!(error = %e, reply_id, "automatic answer not delivered");
        }
    });
}

/// The `Idempotency-Key` header: 1 to 64 characters of `[A-Za-z0-9-]`.
fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if key.is_empty()
        || key.len() > 64
        || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ApiError::invalid_field(
            "Idempotency-Key",
            "must be 1 to 64 characters of A-Z, a-z, 0-9 and -",
        ));
    }
    Ok(key.to_owned())
}

fn too_large(what: &'static str) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, what)
}

fn broken(e: &multer::Error) -> ApiError {
    tracing::debug!(error = %e, "reply upload broke off");
    ApiError::bad_request("Malformed or incomplete multipart body")
}

/// The reply's text and files' descriptions, read under the limits. A body that ends early
/// (the connection cut) fails here and nothing is recorded.
async fn read_parts(
    body: Incoming,
    boundary: String,
    limits: ReplyLimits,
) -> Result<(String, Vec<ReplyFile>), ApiError> {
    let mut multipart = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut text: Option<String> = None;
    let mut files = Vec::new();
    let mut total = 0u64;
    loop {
        let next = tokio::time::timeout(UPLOAD_IDLE, multipart.next_field())
            .await
            .map_err(|_| stalled())?;
        let Some(mut field) = next.map_err(|e| broken(&e))? else {
            break;
        };
        let name = field.name().unwrap_or("").to_owned();
        let file_name = field.file_name().map(str::to_owned);
        match (name.as_str(), file_name) {
            ("body", None) if text.is_none() => {
                let cap = limits.max_body_chars.saturating_mul(4);
                let mut bytes = Vec::new();
                while let Some(chunk) = next_chunk(&mut field).await? {
                    if (bytes.len() + chunk.len()) as u64 > cap {
                        return Err(too_large("Reply text exceeds the limit"));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                let s = String::from_utf8(bytes)
                    .map_err(|_| ApiError::invalid_field("body", "must be UTF-8 text"))?;
                if s.trim().is_empty() {
                    return Err(ApiError::invalid_field("body", "must not be empty"));
                }
                if s.chars().count() as u64 > limits.max_body_chars {
                    return Err(too_large("Reply text exceeds the limit"));
                }
                text = Some(s);
            }
            ("file", Some(file_name)) if text.is_some() => {
                if !plain_file_name(&file_name) {
                    return Err(ApiError::invalid_field(
                        "file",
                        "file name must be a plain name of 1 to 255 characters",
                    ));
                }
                let media_type = field
                    .content_type()
                    .map(|m| m.essence_str().to_owned())
                    .unwrap_or_default();
                if !accepted(&media_type) {
                    return Err(ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "File type not accepted",
                    ));
                }
                if files.len() as u64 >= limits.max_files {
                    return Err(too_large("Too many files"));
                }
                let mut size = 0u64;
                let mut hash = Sha256::new();
                while let Some(chunk) = next_chunk(&mut field).await? {
                    size += chunk.len() as u64;
                    total += chunk.len() as u64;
                    if size > limits.max_file_bytes {
                        return Err(too_large("File exceeds the size limit"));
                    }
                    if total > limits.max_total_bytes {
                        return Err(too_large("Files exceed the total size limit"));
                    }
                    hash.update(&chunk);
                }
                files.push(ReplyFile {
                    name: file_name,
                    media_type,
                    size,
                    sha256: hex::encode(hash.finalize()),
                });
            }
            _ => {
                return Err(ApiError::bad_request(
                    "A reply is one body part followed by file parts",
                ))
            }
        }
    }
    let text = text.ok_or_else(|| ApiError::invalid_field("body", "is required"))?;
    Ok((text, files))
}

async fn next_chunk(field: &mut multer::Field<'_>) -> Result<Option<bytes::Bytes>, ApiError> {
    tokio::time::timeout(UPLOAD_IDLE, field.chunk())
        .await
        .map_err(|_| stalled())?
        .map_err(|e| broken(&e))
}

fn stalled() -> ApiError {
    ApiError::new(StatusCode::REQUEST_TIMEOUT, "Upload stalled")
}

/// A file name fit to keep and show: no path, quotes or control characters.
fn plain_file_name(name: &str) -> bool {
    !name.trim().is_empty()
        && name.chars().count() <= 255
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, '"' | '\\' | '/'))
}
