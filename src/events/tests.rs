//! The feed position on a real database file: a page is committed whole with its webhooks, a
//! page read again after a crash queues nothing twice, and a moved position is detected.

use super::*;
use crate::openings::Outbox;
use crate::webhooks::{webhook_id, WebhookEvent, WebhookQueue};

fn webhooks(ids: &[&str]) -> Vec<WebhookEvent> {
    ids.iter()
        .map(|id| WebhookEvent {
            id: webhook_id(id),
            event_type: "message.created",
            time: "2026-11-21T10:00:00.000Z".into(),
            consent_id: "c-1".into(),
            message_id: Some(1),
            notification: None,
            reminder: None,
            in_reply_to_message_id: None,
        })
        .collect()
}

#[tokio::test]
async fn a_page_read_again_after_a_crash_queues_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let queue = WebhookQueue::new(Outbox::open_in(dir.path()).await.unwrap());
    let position = FeedPosition::new(queue.clone());
    let endpoints = vec!["https://op.example/h".to_owned()];
    assert_eq!(position.load().await.unwrap(), None);

    let first = position
        .commit_page(
            None,
            "t1".into(),
            &endpoints,
            webhooks(&["e1", "e2"]),
            &[],
            2,
        )
        .await
        .unwrap();
    assert_eq!(first, Committed::Advanced { queued: 2 });
    assert_eq!(position.load().await.unwrap().as_deref(), Some("t1"));

    // A second process that read from the old position is refused whole.
    let stale = position
        .commit_page(
            None,
            "t1".into(),
            &endpoints,
            webhooks(&["e1", "e2"]),
            &[],
            2,
        )
        .await
        .unwrap();
    assert_eq!(stale, Committed::Stale);

    // The next page overlaps the first (DVV re-sent e2 after a crash): e2 is not queued again.
    let second = position
        .commit_page(
            Some("t1".into()),
            "t2".into(),
            &endpoints,
            webhooks(&["e2", "e3"]),
            &[],
            2,
        )
        .await
        .unwrap();
    assert_eq!(second, Committed::Advanced { queued: 1 });
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.pending, 3);

    // Reopening the store (a restart) finds the position where it was left.
    drop(position);
    drop(queue);
    let reopened = FeedPosition::new(WebhookQueue::new(
        Outbox::open_in(dir.path()).await.unwrap(),
    ));
    assert_eq!(reopened.load().await.unwrap().as_deref(), Some("t2"));
}
