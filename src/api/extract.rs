//! The data path's per-request steps as typed extractors: a handler that names
//! [`VerifiedCitizen`] or [`Admitted`] among its arguments cannot run without passing them.
//!
//! - [`VerifiedCitizen`]: the assertion verifies, then the citizen's rate limit and the DVV budget.
//! - [`Consented`]: the citizen's consent decision (the only DVV call made without consent).
//! - [`Admitted`]: a verified citizen whose consent is active; nothing reaches DVV's message
//!   calls without it.
//! - [`MessageId`], [`AttachmentRef`]: the ids the pipeline decoded from the path, once.
//!
//! Each refusal is noted in the request's [`Ctx`] before it is answered.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::context::Ctx;
use super::error::ApiError;
use super::state::{SharedWindow, Window};
use crate::citizen::Citizen;
use crate::consent::{Consent, ConsentDecision};
use crate::dvv::ConsentState;

/// A citizen whose assertion verified and who is within their rate limit.
pub struct VerifiedCitizen(pub Citizen);

/// A verified citizen and their consent decision, whatever it is.
pub struct Consented {
    /// The decision: active, revoked or none.
    pub decision: ConsentDecision,
    /// Who asked (a stream re-confirms the consent for this citizen while it runs).
    pub citizen: Citizen,
}

/// A verified citizen whose consent is active.
pub struct Admitted {
    /// The consent through which DVV's messages are addressed; never the identity code.
    pub consent_id: String,
    /// Who was admitted (a stream re-confirms the consent for this citizen while it runs).
    pub citizen: Citizen,
}

/// The `{message_id}` of the path, decoded by the pipeline.
pub struct MessageId(pub i64);

/// The `{message_id}` and `{attachment_id}` of the path, decoded by the pipeline.
pub struct AttachmentRef {
    /// The message.
    pub message_id: i64,
    /// The attachment.
    pub attachment_id: i64,
}

fn ctx_of(parts: &Parts) -> Result<Ctx, ApiError> {
    parts
        .extensions
        .get::<Ctx>()
        .cloned()
        .ok_or_else(ApiError::internal)
}

impl FromRequestParts<SharedWindow> for VerifiedCitizen {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        window: &SharedWindow,
    ) -> Result<Self, ApiError> {
        let ctx = ctx_of(parts)?;
        verify(window, &parts.headers, &ctx)
            .await
            .map(Self)
            .map_err(|e| ctx.refuse(e))
    }
}

impl FromRequestParts<SharedWindow> for Consented {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        window: &SharedWindow,
    ) -> Result<Self, ApiError> {
        let VerifiedCitizen(citizen) = VerifiedCitizen::from_request_parts(parts, window).await?;
        let ctx = ctx_of(parts)?;
        let decision = consent_of(window, &citizen)
            .await
            .map_err(|e| ctx.refuse(e.with_fallback(&window.fallback_url)))?;
        if let Some(consent_id) = decision.consent_id() {
            ctx.consent(consent_id);
        }
        Ok(Self { decision, citizen })
    }
}

impl FromRequestParts<SharedWindow> for Admitted {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        window: &SharedWindow,
    ) -> Result<Self, ApiError> {
        let Consented { decision, citizen } = Consented::from_request_parts(parts, window).await?;
        let ctx = ctx_of(parts)?;
        let (url, fallback) = (&window.consent_service_url, &window.fallback_url);
        match decision {
            ConsentDecision::Active { consent_id } => Ok(Self {
                consent_id,
                citizen,
            }),
            ConsentDecision::Revoked { .. } => {
                Err(ctx.refuse(ApiError::no_consent(true, url, fallback)))
            }
            ConsentDecision::None => Err(ctx.refuse(ApiError::no_consent(false, url, fallback))),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MessageId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let (message_id, _) = ctx_of(parts)?.path_ids();
        message_id.map(Self).ok_or_else(ApiError::internal)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AttachmentRef {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match ctx_of(parts)?.path_ids() {
            (Some(message_id), Some(attachment_id)) => Ok(Self {
                message_id,
                attachment_id,
            }),
            _ => Err(ApiError::internal()),
        }
    }
}

/// Verifies the one `Authorization` header (the pipeline refused repeated ones), then counts the
/// request against the citizen's limit and the DVV budget.
async fn verify(window: &Window, headers: &HeaderMap, ctx: &Ctx) -> Result<Citizen, ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let citizen = match window.verifier.verify(authorization).await {
        Ok(citizen) => citizen,
        // Without any key set (the JWKS URL has not answered since start) the fault is ours.
        Err(crate::citizen::AssertionError::UnknownKey) if !window.keys.loaded() => {
            return Err(ApiError::assertion_keys_unavailable())
        }
        Err(e) => return Err(e.into()),
    };
    // Audit and rate limits name the citizen only by keyed pseudonyms, derived once per
    // verified assertion (the other calls of the session reuse them).
    ctx.citizen(
        citizen
            .derived
            .audit_pseudonym(|| window.audit.pseudonym(&citizen.identity)),
    );
    window.limits.check_citizen(
        &window
            .consents
            .key_memoised(&citizen.identity, &citizen.derived),
    )?;
    window.limits.check_dvv()?;
    Ok(citizen)
}

/// The citizen's consent decision, from the cache or DVV (also a running stream's re-check).
pub(super) async fn consent_of(
    window: &Window,
    citizen: &Citizen,
) -> Result<ConsentDecision, ApiError> {
    let dvv = &window.dvv;
    let identity = &citizen.identity;
    let key = window.consents.key_memoised(identity, &citizen.derived);
    let decision = window
        .consents
        .get_or_lookup_by_key(key, || async move {
            let answer = dvv.lookup_consent(identity).await?;
            Ok::<_, crate::dvv::DvvError>(answer.value.map(|record| Consent {
                active: record.state == ConsentState::Active,
                consent_id: record.consent_id,
                granted_at: Some(record.granted_at),
                revoked_at: record.revoked_at,
            }))
        })
        .await?;
    Ok(decision)
}
