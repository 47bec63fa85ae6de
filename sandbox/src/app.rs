//! Everything the request handlers share.

use crate::auth::assertion::AssertionVerifier;
use crate::auth::bearer::BearerTokens;
use crate::calls::CallLog;
use crate::continuation::ContinuationCodec;
use crate::domain::Domain;
use crate::faults::Faults;
use crate::time::Timestamp;

/// Shared state of one running sandbox.
pub struct App {
    /// Providers, citizens, consents, messages, openings, events.
    pub domain: Domain,
    /// Issued bearer tokens.
    pub tokens: BearerTokens,
    /// Client assertion verification and `jti` replay cache.
    pub assertions: AssertionVerifier,
    /// Continuation tokens.
    pub continuation: ContinuationCodec,
    /// Fault plan for the DVV listener.
    pub faults: Faults,
    /// Calls made on the DVV listener.
    pub calls: CallLog,
    /// Base URL of the DVV listener.
    pub dvv_url: String,
    /// Base URL of the admin listener.
    pub admin_url: String,
    /// When this process started serving.
    pub started_at: Timestamp,
    /// Recording mode: the canary source, when every title, body and attachment carries one.
    pub canaries: Option<crate::canary::Canaries>,
    /// What one citizen's reply may hold.
    pub reply_limits: crate::replies::ReplyLimits,
    /// When set, the authority answers each reply this long after it arrived.
    pub answer_replies_after: Option<std::time::Duration>,
}
