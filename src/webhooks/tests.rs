//! The queue on a real database file: idempotent enqueue, retry, park, replay, stats.

use std::time::Duration;

use chrono::Utc;

use super::*;
use crate::openings::Outbox;

fn event(n: u32, event_type: &'static str) -> WebhookEvent {
    WebhookEvent {
        id: webhook_id(&format!("dvv-{n}")),
        event_type,
        time: "2026-11-21T10:00:00.000Z".into(),
        consent_id: "c-1".into(),
        message_id: Some(i64::from(n)),
        notification: None,
        reminder: None,
        in_reply_to_message_id: None,
    }
}

#[tokio::test]
async fn enqueue_is_idempotent_per_event_and_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let queue = WebhookQueue::new(Outbox::open_in(dir.path()).await.unwrap());
    let endpoints = vec![
        "https://a.example/h".to_owned(),
        "https://b.example/h".to_owned(),
    ];
    let events = vec![event(1, "message.created"), event(2, "message.read")];
    assert_eq!(queue.enqueue(&endpoints, &events).await.unwrap(), 4);
    assert_eq!(queue.enqueue(&endpoints, &events).await.unwrap(), 0);
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.pending, stats.parked, stats.delivered), (4, 0, 0));
    assert!(stats.oldest_pending_age.is_some());
    let due = queue.due(Utc::now(), 10).await.unwrap();
    assert_eq!(due.len(), 4);
    assert!(due
        .iter()
        .all(|d| d.body == events[0].body() || d.body == events[1].body()));
}

#[tokio::test]
async fn failures_retry_then_park_and_replay_requeues() {
    let dir = tempfile::tempdir().unwrap();
    let queue = WebhookQueue::new(Outbox::open_in(dir.path()).await.unwrap());
    let endpoints = vec!["https://a.example/h".to_owned()];
    queue
        .enqueue(
            &endpoints,
            &[event(1, "consent.revoked"), event(2, "consent.granted")],
        )
        .await
        .unwrap();
    let due = queue.due(Utc::now(), 10).await.unwrap();
    let later = Utc::now() + chrono::TimeDelta::seconds(60);
    queue
        .mark_failed(due[0].id, "status", Some(503), later, false)
        .await
        .unwrap();
    queue
        .mark_failed(due[1].id, "timeout", None, later, true)
        .await
        .unwrap();
    assert!(queue.due(Utc::now(), 10).await.unwrap().is_empty());
    assert!(queue.next_due_after(Utc::now()).await.unwrap().is_some());
    let parked = queue.parked(10).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].id, due[1].id);
    assert_eq!(parked[0].attempts, 1);
    assert_eq!(parked[0].last_error.as_deref(), Some("timeout"));
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.pending, stats.parked), (1, 1));
    assert_eq!((stats.failed_total, stats.parked_total), (2, 1));

    assert_eq!(queue.replay(&[]).await.unwrap(), 1);
    let due_now = queue.due(Utc::now(), 10).await.unwrap();
    assert_eq!(due_now.len(), 1);
    assert_eq!(due_now[0].attempts, 0, "a replay starts a fresh count");
    queue.mark_delivered(due_now[0].id, 204).await.unwrap();
    assert_eq!(queue.stats().await.unwrap().delivered, 1);
    assert_eq!(queue.prune_delivered(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(queue.replay(&[12345]).await.unwrap(), 0);
}
