//! The admin API: a loopback-only listener (plain HTTP, or HTTPS with the sandbox server
//! certificate) through which tests, demos and auditors steer the fictional DVV: consents,
//! new messages, fault plans, and what providers did (openings and calls).

mod clock;
mod consent_page;
mod consents;
mod faults;
mod inspect;
mod messages;
mod replies;

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::serve::{ConnInfo, DropConnection};
use crate::http::{add_trace_id, Body};

/// Serves one request on the admin listener.
pub async fn handle(
    app: Arc<App>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut response = if conn.peer.ip().is_loopback() {
        match route(&app, req).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        }
    } else {
        ApiError::forbidden("The admin API answers loopback clients only").into_response()
    };
    let trace_id = add_trace_id(&mut response);
    tracing::debug!(%method, path, status = response.status().as_u16(), trace_id, "admin request");
    Ok(response)
}

async fn route(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_owned();
    let allow: &'static str = match path.as_str() {
        "/admin/consents/grant" | "/admin/consents/revoke" | "/admin/messages" => "POST",
        "/admin/faults" => "GET, POST, DELETE",
        "/admin/clock" => "GET, POST",
        "/admin/replies" => "GET",
        "/admin/replies/answer" => "POST",
        "/admin/openings" => "GET, DELETE",
        "/admin/receipts" | "/admin/calls" | "/admin/state" | "/consent-service" | "/healthz" => {
            "GET"
        }
        _ => return Err(ApiError::not_found("No such resource")),
    };
    match (req.method().clone(), path.as_str()) {
        (Method::POST, "/admin/consents/grant") => consents::change(app, req, true).await,
        (Method::POST, "/admin/consents/revoke") => consents::change(app, req, false).await,
        (Method::POST, "/admin/messages") => messages::create(app, req).await,
        (Method::GET, "/admin/faults") => Ok(faults::current(app)),
        (Method::GET, "/admin/clock") => Ok(clock::current()),
        (Method::POST, "/admin/clock") => clock::advance(req).await,
        (Method::POST, "/admin/faults") => faults::set(app, req).await,
        (Method::DELETE, "/admin/faults") => Ok(faults::clear(app)),
        (Method::GET, "/admin/openings") => Ok(inspect::openings(app)),
        (Method::DELETE, "/admin/openings") => inspect::delete_opening(app, req.uri().query()),
        (Method::GET, "/admin/receipts") => Ok(inspect::receipts(app)),
        (Method::GET, "/admin/calls") => inspect::calls(app, req.uri().query()),
        (Method::GET, "/admin/state") => Ok(inspect::state(app)),
        (Method::GET, "/admin/replies") => Ok(replies::list(app)),
        (Method::POST, "/admin/replies/answer") => replies::answer(app, req).await,
        (Method::GET, "/consent-service") => Ok(consent_page::page(app)),
        (Method::GET, "/healthz") => Ok(crate::http::json(
            StatusCode::OK,
            &serde_json::json!({"status": "ok"}),
        )),
        _ => Err(ApiError::method_not_allowed(allow)),
    }
}

/// Reads a typed JSON body, answering 400 with the parser's complaint.
async fn typed_body<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = crate::http::request::read_body(&parts.headers, body).await?;
    let map = crate::http::request::json_object(&bytes, false)?;
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))
}
