//! Openings this process already knows to be durable, so re-reading a message does not queue a
//! write transaction on the outbox's single committer thread.
//!
//! A citizen re-opens the same message often (the inbox, the message, then each attachment), and
//! every release asks the outbox to record the opening. Only the first one writes anything; the
//! rest find the row and return. Remembering "(consent, message) is recorded" after the outbox
//! said so skips that round trip. A miss (evicted, restarted) just asks the outbox again, which
//! is idempotent, so forgetting is always safe; remembering is safe because a recorded opening
//! is never undone (retention deletes only delivered rows, long after any session).

use std::time::Duration;

use crate::openings::{Outbox, StoreError};

/// Most remembered openings; each entry is the consent id and a message id.
const CAPACITY: u64 = 10_000;
/// How long an opening is remembered after it was last confirmed durable.
const LIFETIME: Duration = Duration::from_secs(600);

/// `(consent id, message id)` pairs whose opening is durably recorded.
pub struct RecordedOpenings {
    entries: moka::sync::Cache<(String, i64), ()>,
}

impl Default for RecordedOpenings {
    fn default() -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(LIFETIME)
                .build(),
        }
    }
}

impl RecordedOpenings {
    /// Makes sure the opening of `message_id` under `consent_id` is durable before content is
    /// released: answered from memory when this process already recorded it, else by the outbox.
    pub async fn ensure(
        &self,
        outbox: &Outbox,
        consent_id: &str,
        message_id: i64,
    ) -> Result<(), StoreError> {
        let key = (consent_id.to_owned(), message_id);
        if self.entries.contains_key(&key) {
            return Ok(());
        }
        outbox.record_opening(consent_id, message_id).await?;
        self.entries.insert(key, ());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_opening_is_recorded_once_however_often_it_is_ensured() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open_in(dir.path()).await.unwrap();
        let recorded = RecordedOpenings::default();
        for _ in 0..3 {
            recorded.ensure(&outbox, "consent-a", 7).await.unwrap();
        }
        recorded.ensure(&outbox, "consent-a", 8).await.unwrap();
        recorded.ensure(&outbox, "consent-b", 7).await.unwrap();
        let due = outbox.due(chrono::Utc::now(), 100).await.unwrap();
        assert_eq!(due.len(), 3, "one opening per (consent, message)");

        // Forgotten (a restart, an eviction): asking the outbox again records nothing new.
        let fresh = RecordedOpenings::default();
        fresh.ensure(&outbox, "consent-a", 7).await.unwrap();
        assert_eq!(outbox.due(chrono::Utc::now(), 100).await.unwrap().len(), 3);
    }
}
