//! What the data path learns about an access while serving it (the citizen's pseudonym once the
//! assertion verified, the consent once it was found), collected for the audit record written
//! when the answer is ready. A task-local slot, so the lower steps need no extra parameters and
//! the audit step stays the last one of the path.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

/// Facts gathered while serving one access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The citizen's keyed pseudonym.
    pub citizen: Option<String>,
    /// The consent id.
    pub consent_id: Option<String>,
}

tokio::task_local! {
    static FACTS: Arc<Mutex<Facts>>;
}

/// Runs `work` with a fresh slot and returns its output with the facts noted meanwhile.
pub async fn collect<F: Future>(work: F) -> (F::Output, Facts) {
    let slot = Arc::new(Mutex::new(Facts::default()));
    let output = FACTS.scope(slot.clone(), work).await;
    let facts = slot.lock().unwrap_or_else(PoisonError::into_inner).clone();
    (output, facts)
}

fn note(f: impl FnOnce(&mut Facts)) {
    let _ = FACTS.try_with(|slot| f(&mut slot.lock().unwrap_or_else(PoisonError::into_inner)));
}

/// Notes the citizen's pseudonym (no-op outside [`collect`]).
pub fn note_citizen(pseudonym: String) {
    note(|facts| facts.citizen = Some(pseudonym));
}

/// Notes the consent id (no-op outside [`collect`]).
pub fn note_consent(consent_id: &str) {
    note(|facts| facts.consent_id = Some(consent_id.to_owned()));
}
