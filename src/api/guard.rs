//! The first two steps of every call: prove who the citizen is, then that they have consented.
//!
//! Nothing reaches DVV's message calls without passing both; the consent lookup itself is the only
//! DVV call made for a citizen without consent.

use axum::http::{header, HeaderMap};

use super::error::ApiError;
use super::state::Window;
use crate::citizen::Citizen;
use crate::consent::{Consent, ConsentDecision};
use crate::dvv::ConsentState;

/// A citizen whose assertion verified and whose consent is active.
pub struct Admitted {
    /// The consent through which DVV's messages are addressed; never the identity code.
    pub consent_id: String,
    /// Who was admitted (a stream re-confirms the consent for this citizen while it runs).
    pub citizen: Citizen,
}

/// Verifies the citizen assertion carried in `Authorization`.
pub async fn citizen(window: &Window, headers: &HeaderMap) -> Result<Citizen, ApiError> {
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
    // Audit and rate limits name the citizen only by keyed pseudonyms.
    window.audit.note_citizen(&citizen.identity);
    window
        .limits
        .check_citizen(&window.consents.key_of(&citizen.identity))?;
    window.limits.check_dvv()?;
    Ok(citizen)
}

/// The citizen's consent decision, from the cache or DVV.
pub async fn consent_of(window: &Window, citizen: &Citizen) -> Result<ConsentDecision, ApiError> {
    let dvv = &window.dvv;
    let identity = &citizen.identity;
    let decision = window
        .consents
        .get_or_lookup(identity, || async move {
            let answer = dvv.lookup_consent(identity).await?;
            Ok::<_, crate::dvv::DvvError>(answer.value.map(|record| Consent {
                active: record.state == ConsentState::Active,
                consent_id: record.consent_id,
                granted_at: Some(record.granted_at),
                revoked_at: record.revoked_at,
            }))
        })
        .await?;
    if let Some(consent_id) = decision.consent_id() {
        crate::audit::context::note_consent(consent_id);
    }
    Ok(decision)
}

/// Both steps: a verified citizen with an active consent, or the refusal to send.
pub async fn admit(window: &Window, headers: &HeaderMap) -> Result<Admitted, ApiError> {
    let citizen = citizen(window, headers).await?;
    match consent_of(window, &citizen).await? {
        ConsentDecision::Active { consent_id } => Ok(Admitted {
            consent_id,
            citizen,
        }),
        ConsentDecision::Revoked { .. } => {
            Err(ApiError::no_consent(true, &window.consent_service_url))
        }
        ConsentDecision::None => Err(ApiError::no_consent(false, &window.consent_service_url)),
    }
}
