//! Path and method dispatch for the DVV API, and bearer authentication of every call except
//! the token endpoint. Unknown paths answer 404, known paths with another method 405.

use http::{Method, Request, Response};
use hyper::body::Incoming;

use std::sync::Arc;

use super::{attachments, consents, events, messages, openings, replies, token};
use crate::app::App;
use crate::http::error::ApiError;
use crate::http::request;
use crate::http::serve::ConnInfo;
use crate::http::Body;

enum Route {
    Token,
    Lookup,
    Messages(String),
    Message(String, String),
    Attachment(String, String, String),
    Openings(String, String),
    Receipts(String, String),
    Events,
    ReplyPolicy(String, String),
    Replies(String, String),
    Statement,
}

impl Route {
    fn parse(path: &str) -> Option<Self> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let own = |s: &str| s.to_owned();
        Some(match segments.as_slice() {
            ["v1", "token"] => Route::Token,
            ["v1", "events"] => Route::Events,
            ["v1", "statement"] => Route::Statement,
            ["v1", "consents", "lookup"] => Route::Lookup,
            ["v1", "consents", c, "messages"] => Route::Messages(own(c)),
            ["v1", "consents", c, "messages", m] => Route::Message(own(c), own(m)),
            ["v1", "consents", c, "messages", m, "attachments", a] => {
                Route::Attachment(own(c), own(m), own(a))
            }
            ["v1", "consents", c, "messages", m, "openings"] => Route::Openings(own(c), own(m)),
            ["v1", "consents", c, "messages", m, "receipt-confirmations"] => {
                Route::Receipts(own(c), own(m))
            }
            ["v1", "consents", c, "messages", m, "reply-policy"] => {
                Route::ReplyPolicy(own(c), own(m))
            }
            ["v1", "consents", c, "messages", m, "replies"] => Route::Replies(own(c), own(m)),
            _ => return None,
        })
        .filter(|r| !r.has_empty_segment())
    }

    fn has_empty_segment(&self) -> bool {
        match self {
            Route::Messages(c) => c.is_empty(),
            Route::Message(c, m)
            | Route::Openings(c, m)
            | Route::Receipts(c, m)
            | Route::ReplyPolicy(c, m)
            | Route::Replies(c, m) => c.is_empty() || m.is_empty(),
            Route::Attachment(c, m, a) => c.is_empty() || m.is_empty() || a.is_empty(),
            _ => false,
        }
    }

    fn method(&self) -> (Method, &'static str) {
        match self {
            Route::Token
            | Route::Lookup
            | Route::Openings(..)
            | Route::Receipts(..)
            | Route::Replies(..) => (Method::POST, "POST"),
            _ => (Method::GET, "GET"),
        }
    }
}

/// Answers one request; every refusal becomes a `{"reason"}` answer.
pub async fn route(app: &Arc<App>, conn: &ConnInfo, req: Request<Incoming>) -> Response<Body> {
    match dispatch(app, conn, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn dispatch(
    app: &Arc<App>,
    conn: &ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let route =
        Route::parse(req.uri().path()).ok_or_else(|| ApiError::not_found("No such resource"))?;
    let (method, allow) = route.method();
    if req.method() != method {
        return Err(ApiError::method_not_allowed(allow));
    }
    if let Route::Token = route {
        return token::handle(app, conn, req).await;
    }
    let provider = app
        .tokens
        .check(request::bearer(req.headers()), conn.provider.as_deref())
        .map_err(|e| ApiError::invalid_token(e.to_string()))?;
    match route {
        Route::Token => Err(ApiError::internal()),
        Route::Lookup => consents::lookup(app, &provider, req).await,
        Route::Messages(c) => messages::list(app, &provider, &c, req.uri().query()),
        Route::Message(c, m) => messages::detail(app, &provider, &c, &m),
        Route::Attachment(c, m, a) => attachments::get(app, &provider, &c, &m, &a, req.headers()),
        Route::Openings(c, m) => openings::report(app, &provider, &c, &m, req).await,
        Route::Receipts(c, m) => openings::confirm_receipt(app, &provider, &c, &m, req).await,
        Route::Events => events::page(app, &provider, req.uri().query()),
        Route::ReplyPolicy(c, m) => replies::policy(app, &provider, &c, &m, req.headers()),
        Route::Replies(c, m) => replies::post(app, &provider, &c, &m, req).await,
        Route::Statement => openings::statement(app, &provider, req.uri().query()),
    }
}

/// Parses a numeric path id (`messageId`, `attachmentId`): 400 unless a positive int64.
pub fn parse_id(raw: &str, field: &str) -> Result<i64, ApiError> {
    if raw.is_empty() || raw.len() > 19 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!("{field} must be an integer")));
    }
    raw.parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("{field} must be an integer")))
}
