//! What every operator-API handler needs, assembled once at start.

use std::sync::Arc;

use crate::citizen::AssertionVerifier;
use crate::consent::ConsentCache;
use crate::dvv::DvvClient;
use crate::openings::Outbox;

/// The window's parts in data-path order: who is asking, may we look, fetch, record the opening.
pub struct Window {
    /// Verifies the citizen assertion on each call.
    pub verifier: AssertionVerifier,
    /// Consent decisions, cached within the revocation bound.
    pub consents: ConsentCache,
    /// The only way to DVV.
    pub dvv: DvvClient,
    /// Durable record of first openings.
    pub outbox: Outbox,
    /// Openings already known durable, so re-reads skip the outbox's write queue.
    pub recorded: super::opened::RecordedOpenings,
    /// Where a citizen grants or withdraws consent (DVV's service), linked from 403 answers.
    pub consent_service_url: String,
    /// Suomi.fi Messages, linked from every refusal that leaves the citizen without mail here.
    pub fallback_url: String,
    /// Rate limits per operator client, per citizen and toward DVV.
    pub limits: std::sync::Arc<crate::limits::Limits>,
    /// The tamper-evident audit trail, written as the last step of every access.
    pub audit: crate::audit::AuditLog,
    /// The webhook delivery queue (its `stats()` feed the metrics).
    pub webhooks: crate::webhooks::WebhookQueue,
    /// The events feed consumer's status (its `stats()` feed the metrics).
    pub feed: crate::events::FeedStatus,
    /// Whether the verifier holds citizen assertion keys (for `/readyz` and 503 answers).
    pub keys: crate::citizen::KeysStatus,
    /// How long an attachment stream may wait on its client, and how often it re-confirms the
    /// consent it runs under (see [`crate::outflow`]).
    pub streams: StreamLimits,
    /// The bounds of a reply's upload to DVV.
    pub replies: ReplyTimeouts,
}

/// The bounds of a reply's upload: it reads the operator's chunks under the write-idle bound
/// of [`StreamLimits`] and writes them to DVV under these.
#[derive(Debug, Clone, Copy)]
pub struct ReplyTimeouts {
    /// `dvv.body_idle_timeout_ms`: DVV must take each chunk within it.
    pub upload_idle: std::time::Duration,
    /// `dvv.call_timeout_ms`: DVV must answer within it once the upload has ended.
    pub answer_timeout: std::time::Duration,
}

/// The bounds of every content stream, from `[server]` and `[consent]`.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// `server.write_idle_timeout_ms`.
    pub write_idle: std::time::Duration,
    /// `consent.revocation_bound_secs`.
    pub recheck_every: std::time::Duration,
}

/// Shared handle the router clones into each request.
pub type SharedWindow = Arc<Window>;
