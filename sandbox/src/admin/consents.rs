//! `POST /admin/consents/grant` and `/admin/consents/revoke`: the citizen's acts in DVV's
//! consent service.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use ikkuna_hetu::IdentityCode;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::DomainError;
use crate::http::error::ApiError;
use crate::http::{json, Body};
use crate::model::ConsentState;
use crate::time::{self, Timestamp};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConsentChange {
    end_user_id: String,
    provider_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConsentAnswer {
    consent_id: String,
    end_user_id: String,
    provider_id: String,
    state: ConsentState,
    #[serde(with = "time::as_string")]
    granted_at: Timestamp,
    #[serde(with = "time::as_optional_string")]
    revoked_at: Option<Timestamp>,
}

/// Grants or revokes; answers the consent as it now stands.
pub async fn change(
    app: &App,
    req: Request<Incoming>,
    grant: bool,
) -> Result<Response<Body>, ApiError> {
    let body: ConsentChange = super::typed_body(req).await?;
    let citizen = IdentityCode::parse(&body.end_user_id)
        .map_err(|e| ApiError::invalid_field("endUserId", e.to_string()))?;
    let provider = match body.provider_id {
        Some(p) => p,
        None => app
            .domain
            .providers()
            .into_iter()
            .next()
            .map(|(id, _)| id)
            .ok_or_else(ApiError::internal)?,
    };
    let result = if grant {
        app.domain.grant(&citizen, &provider)
    } else {
        app.domain.revoke(&citizen, &provider)
    };
    let consent = result.map_err(|e| match e {
        DomainError::UnknownProvider => {
            ApiError::invalid_field("providerId", "is not a registered provider")
        }
        DomainError::NoConsent => ApiError::not_found("No consent for this provider"),
        other => {
            tracing::error!(error = %other, "consent change failed");
            ApiError::internal()
        }
    })?;
    Ok(json(
        StatusCode::OK,
        &ConsentAnswer {
            consent_id: consent.id,
            end_user_id: citizen.reveal().to_owned(),
            provider_id: provider,
            state: consent.state,
            granted_at: consent.granted_at,
            revoked_at: consent.revoked_at,
        },
    ))
}
