//! `GET .../messages/{messageId}/attachments/{attachmentId}`: the generated content, streamed,
//! whole or one byte range.

use http::header::{
    HeaderValue, ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    RANGE,
};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;

use super::domain_error;
use super::router::parse_id;
use crate::app::App;
use crate::content::AttachmentBody;
use crate::http::error::ApiError;
use crate::http::Body;
use crate::range::{self, RangeRequest};
use crate::store::Attachment;

/// Streams an attachment.
pub fn get(
    app: &App,
    provider: &str,
    consent_id: &str,
    message_id: &str,
    attachment_id: &str,
    headers: &HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let message_id = parse_id(message_id, "messageId")?;
    let attachment_id = parse_id(attachment_id, "attachmentId")?;
    let attachment = app
        .domain
        .attachment(provider, consent_id, message_id, attachment_id)
        .map_err(domain_error)?;
    let size = attachment.size;
    let range_header = headers.get(RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match range::parse(range_header, size) {
        RangeRequest::Full => (StatusCode::OK, 0, size),
        RangeRequest::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end),
        RangeRequest::Unsatisfiable => {
            let mut response =
                ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "Range not satisfiable")
                    .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    let body = AttachmentBody::new(message_id, attachment.id, start, end)
        .with_canaries(app.canaries.clone())
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(&attachment.media_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(CONTENT_DISPOSITION, disposition(&attachment));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1)) {
            h.insert(CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

/// `attachment; filename="name"`, with an ASCII fallback and `filename*` for other names.
fn disposition(a: &Attachment) -> HeaderValue {
    let plain = a
        .name
        .chars()
        .all(|c| c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\');
    let value = if plain {
        format!("attachment; filename=\"{}\"", a.name)
    } else {
        let fallback: String = a
            .name
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let encoded =
            percent_encoding::utf8_percent_encode(&a.name, percent_encoding::NON_ALPHANUMERIC);
        format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("attachment"))
}
