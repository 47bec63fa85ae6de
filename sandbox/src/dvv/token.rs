//! `POST /v1/token`: OAuth 2.0 client credentials with a `private_key_jwt` client assertion
//! (RFC 6749 §4.4, RFC 7523), over the provider's mutual-TLS connection.

use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::serve::ConnInfo;
use crate::http::{json, request, Body};

/// The only accepted `client_assertion_type`.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// Issues a bearer token for a valid client assertion.
pub async fn handle(
    app: &App,
    conn: &ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    let bytes = request::read_body(&parts.headers, body).await?;
    let form = request::form(&bytes).map_err(|()| invalid_request("Malformed form body"))?;
    match form.get("grant_type").map(String::as_str) {
        None => return Err(invalid_request("grant_type is required")),
        Some("client_credentials") => {}
        Some(_) => {
            return Err(ApiError::oauth(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be client_credentials",
            ))
        }
    }
    if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
        return Err(invalid_request(
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ));
    }
    let assertion = form
        .get("client_assertion")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| invalid_request("client_assertion is required"))?;
    let provider = app
        .assertions
        .verify(
            assertion,
            conn.provider.as_deref(),
            form.get("client_id").map(String::as_str),
        )
        .map_err(|e| {
            tracing::info!(provider = conn.provider.as_deref(), reason = %e, "client assertion refused");
            ApiError::oauth(StatusCode::UNAUTHORIZED, "invalid_client", e.to_string())
        })?;
    let token = app.tokens.issue(&provider);
    Ok(json(
        StatusCode::OK,
        &TokenResponse {
            access_token: token,
            token_type: "Bearer",
            expires_in: app.tokens.ttl().as_secs(),
        },
    ))
}

fn invalid_request(reason: &'static str) -> ApiError {
    ApiError::oauth(StatusCode::BAD_REQUEST, "invalid_request", reason)
}
