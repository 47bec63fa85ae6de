//! The one per-request context: every fact the data path learns about a request, written by the
//! step that learns it and read by the access log and the audit step.
//!
//! The pipeline's first layer creates it and puts it in the request's extensions; the later
//! layers and the typed extractors take it from there ([`Ctx`] is itself an extractor). Nothing
//! is passed through a task-local or read back from response headers.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use super::routes::Route;

/// What one request has been found to be, so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The request's id (also `x-request-id` and in the access log).
    pub request_id: String,
    /// The route it matched, once routed.
    pub route: Option<Route>,
    /// The citizen's keyed pseudonym, once the assertion verified (and an audit key exists).
    pub citizen: Option<std::sync::Arc<str>>,
    /// The consent through which DVV is addressed, once known.
    pub consent_id: Option<String>,
    /// The message id, as the handler decoded it from the path.
    pub message_id: Option<i64>,
    /// The attachment id, as the handler decoded it from the path.
    pub attachment_id: Option<i64>,
    /// DVV's trace id of the call, when DVV was called.
    pub dvv_trace_id: Option<String>,
    /// The label of the error that answered, when the answer is a refusal or a failure.
    pub error: Option<&'static str>,
    /// For a reply: its id at DVV and what was relayed of each part (sizes, SHA-256).
    pub reply: Option<crate::audit::ReplyEvidence>,
}

/// A handle on the request's [`Facts`], cheap to clone into each step.
#[derive(Debug, Clone, Default)]
pub struct Ctx(Arc<Mutex<Facts>>);

impl Ctx {
    /// A context for a new request named `request_id`.
    pub fn new(request_id: String) -> Self {
        Self(Arc::new(Mutex::new(Facts {
            request_id,
            ..Facts::default()
        })))
    }

    fn facts(&self) -> MutexGuard<'_, Facts> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the facts as they stand.
    pub fn snapshot(&self) -> Facts {
        self.facts().clone()
    }

    /// The ids decoded from the path (message, attachment), without copying the other facts.
    pub fn path_ids(&self) -> (Option<i64>, Option<i64>) {
        let facts = self.facts();
        (facts.message_id, facts.attachment_id)
    }

    /// The request id.
    pub fn request_id(&self) -> String {
        self.facts().request_id.clone()
    }

    /// Notes the route the request matched.
    pub fn route(&self, route: Route) {
        self.facts().route = Some(route);
    }

    /// Notes the verified citizen's pseudonym.
    pub fn citizen(&self, pseudonym: Option<std::sync::Arc<str>>) {
        self.facts().citizen = pseudonym;
    }

    /// Notes the consent id.
    pub fn consent(&self, consent_id: &str) {
        self.facts().consent_id = Some(consent_id.to_owned());
    }

    /// Notes the ids decoded from the path.
    pub fn ids(&self, message_id: Option<i64>, attachment_id: Option<i64>) {
        let mut facts = self.facts();
        facts.message_id = message_id;
        facts.attachment_id = attachment_id;
    }

    /// Notes DVV's trace id of the call made for this request.
    pub fn dvv_trace(&self, trace_id: Option<&str>) {
        if let Some(trace) = trace_id {
            self.facts().dvv_trace_id = Some(trace.to_owned());
        }
    }

    /// Notes what a reply's relay saw (and its id at DVV, once known).
    pub fn reply(&self, evidence: crate::audit::ReplyEvidence) {
        self.facts().reply = Some(evidence);
    }

    /// Notes that `error` answers this request and hands it back, so every refusal is written
    /// `return Err(ctx.refuse(e))` and reaches both the access log and the audit record.
    pub fn refuse(&self, error: impl Into<ApiError>) -> ApiError {
        let error = error.into();
        let mut facts = self.facts();
        facts.error = Some(error.kind());
        if let Some(trace) = error.trace_id() {
            facts.dvv_trace_id = Some(trace.to_owned());
        }
        error
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    /// The context the pipeline's first layer created; a request without one did not come
    /// through the pipeline, which is the gateway's own fault.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Ctx>()
            .cloned()
            .ok_or_else(ApiError::internal)
    }
}
