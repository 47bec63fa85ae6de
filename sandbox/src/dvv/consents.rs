//! `POST /v1/consents/lookup`: a citizen's consent for the calling provider.
//!
//! The identity code travels only in this body, never in a URL; what comes back is an opaque
//! `consentId` for every later call.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use ikkuna_hetu::IdentityCode;

use super::views::ConsentView;
use crate::app::App;
use crate::http::error::ApiError;
use crate::http::{json, request, Body};

/// Looks up the consent; 404 when the citizen never granted this provider one.
pub async fn lookup(
    app: &App,
    provider: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = request::read_body(&parts.headers, body).await?;
    let map = request::json_object(&bytes, false)?;
    let code = request::string_field(&map, "endUserId")?;
    // The reason names what is wrong, never the code itself.
    let citizen = IdentityCode::parse(code)
        .map_err(|e| ApiError::invalid_field("endUserId", e.to_string()))?;
    match app.domain.lookup_consent(provider, &citizen) {
        Some(consent) => Ok(json(StatusCode::OK, &ConsentView::from(&consent))),
        None => Err(ApiError::not_found("No consent for this provider")),
    }
}
