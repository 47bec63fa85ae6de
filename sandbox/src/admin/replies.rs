//! `GET /admin/replies` (every citizen's reply DVV received, described without its text) and
//! `POST /admin/replies/answer` (the authority answers a reply: a new message in the thread).

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::{json, Body};
use crate::journal::ReplyFile;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReplyEntry {
    reply_id: i64,
    message_id: i64,
    provider: String,
    body_length: usize,
    files: Vec<ReplyFile>,
}

/// Every reply, in id order.
pub fn list(app: &App) -> Response<Body> {
    let replies: Vec<ReplyEntry> = app
        .domain
        .replies()
        .into_iter()
        .map(|r| ReplyEntry {
            reply_id: r.id,
            message_id: r.message_id,
            provider: r.provider,
            body_length: r.body.chars().count(),
            files: r.files,
        })
        .collect();
    json(StatusCode::OK, &serde_json::json!({ "replies": replies }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AnswerBody {
    reply_id: i64,
    body: Option<String>,
}

/// Answers a reply; 201 `{messageId}` of the answer.
pub async fn answer(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let body: AnswerBody = super::typed_body(req).await?;
    if body
        .body
        .as_deref()
        .is_some_and(|b| b.trim().is_empty() || b.chars().count() > 40_000)
    {
        return Err(ApiError::invalid_field(
            "body",
            "must be 1 to 40000 characters",
        ));
    }
    match app.domain.answer_reply(body.reply_id, body.body) {
        Ok(message_id) => Ok(json(
            StatusCode::CREATED,
            &serde_json::json!({ "messageId": message_id }),
        )),
        Err(crate::domain::DomainError::ReplyNotFound) => {
            Err(ApiError::not_found("Reply not found"))
        }
        Err(e) => {
            tracing::error!(error = %e, "answer not delivered");
            Err(ApiError::internal())
        }
    }
}
