//! Consent: whether a citizen has authorised this operator in DVV's consent service, cached
//! briefly so that not every call asks DVV, yet a revocation is honoured within a bound.
//!
//! [`ConsentCache`] holds decisions keyed by a keyed pseudonym of the identity code (never the
//! code itself). Positive answers live at most the revocation bound, negative ones shorter.
//! Revocations reported by the events feed win over any lookup that was already in flight: see
//! [`ConsentCache::revoke`]. The lookup itself (the DVV call) is passed in by the caller, so this
//! module knows nothing of HTTP or DVV.

mod cache;
mod changes;
mod pseudonym;
mod table;

#[cfg(test)]
mod tests;

pub use cache::{
    ConsentCache, ConsentCacheSettings, ConsentCacheStats, RevocationNews, RevocationWatch,
};
pub use pseudonym::CitizenKey;

use chrono::{DateTime, Utc};

/// A citizen's consent for this operator, as DVV's consent lookup reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// DVV's opaque id of the consent; addresses the citizen's mail without the identity code.
    pub consent_id: String,
    /// Whether the consent is in force (`Active`) rather than `Revoked`.
    pub active: bool,
    /// When the citizen granted it, if DVV says.
    pub granted_at: Option<DateTime<Utc>>,
    /// When the citizen revoked it, if they did.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What the gateway may do for a citizen, as far as consent goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentDecision {
    /// The consent is in force: message calls go to DVV under this consent id.
    Active {
        /// The consent to address DVV's message calls with.
        consent_id: String,
    },
    /// The citizen revoked the consent: no message call may be made.
    Revoked {
        /// The revoked consent.
        consent_id: String,
    },
    /// The citizen never authorised this operator: no message call may be made.
    None,
}

impl ConsentDecision {
    /// Turns a lookup answer into a decision.
    pub fn from_lookup(consent: Option<&Consent>) -> Self {
        match consent {
            Some(c) if c.active => Self::Active {
                consent_id: c.consent_id.clone(),
            },
            Some(c) => Self::Revoked {
                consent_id: c.consent_id.clone(),
            },
            None => Self::None,
        }
    }

    /// The consent id to call DVV with, only when the consent is active.
    pub fn active_consent_id(&self) -> Option<&str> {
        match self {
            Self::Active { consent_id } => Some(consent_id),
            _ => None,
        }
    }

    /// The consent id the decision is about, if any.
    pub fn consent_id(&self) -> Option<&str> {
        match self {
            Self::Active { consent_id } | Self::Revoked { consent_id } => Some(consent_id),
            Self::None => None,
        }
    }

    /// A stable label for metrics and logs: `active`, `revoked` or `none`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Active { .. } => "active",
            Self::Revoked { .. } => "revoked",
            Self::None => "none",
        }
    }
}
