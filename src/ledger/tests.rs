//! The report and retention on a real database file.

use std::time::Duration;

use chrono::{TimeZone as _, Utc};
use rusqlite::params;

use super::*;
use crate::openings::Outbox;

async fn set_opened_at(store: &Outbox, opening_id: &str, y: i32, m: u32, d: u32) {
    let at = Utc
        .with_ymd_and_hms(y, m, d, 12, 0, 0)
        .unwrap()
        .timestamp_millis();
    let id = opening_id.to_owned();
    store
        .run(move |c| {
            c.execute(
                "UPDATE openings SET opened_at = ?2 WHERE opening_id = ?1",
                params![id, at],
            )?;
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn months_sum_states_and_first_opens() {
    let dir = tempfile::tempdir().unwrap();
    let store = Outbox::open_in(dir.path()).await.unwrap();
    let read_at = Utc::now();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(store.record_opening("c-1", n).await.unwrap().opening_id);
    }
    store.mark_delivered(&ids[0], true, read_at).await.unwrap();
    store.mark_delivered(&ids[1], false, read_at).await.unwrap();
    store.mark_delivered(&ids[2], true, read_at).await.unwrap();
    store.park(&ids[3], "not_found").await.unwrap();
    set_opened_at(&store, &ids[0], 2026, 10, 31).await;
    set_opened_at(&store, &ids[1], 2026, 11, 1).await;
    set_opened_at(&store, &ids[2], 2026, 11, 30).await;
    set_opened_at(&store, &ids[3], 2026, 11, 15).await;
    set_opened_at(&store, &ids[4], 2026, 12, 1).await;

    let all = report(&store, Period::default()).await.unwrap();
    let months: Vec<_> = all.months.iter().map(|m| m.month.as_str()).collect();
    assert_eq!(months, ["2026-10", "2026-11", "2026-12"]);
    let nov = &all.months[1];
    assert_eq!(
        (
            nov.recorded,
            nov.delivered,
            nov.pending,
            nov.parked,
            nov.first_opens
        ),
        (3, 2, 0, 1, 1)
    );
    assert_eq!(
        (
            all.total.recorded,
            all.total.delivered,
            all.total.pending,
            all.total.first_opens
        ),
        (5, 3, 1, 2)
    );

    let period = Period {
        from: Some(parse_date("2026-11-01").unwrap()),
        to: Some(parse_date("2026-11-30").unwrap()),
    };
    let nov_only = report(&store, period).await.unwrap();
    assert_eq!(nov_only.months.len(), 1);
    assert_eq!(nov_only.total.recorded, 3);
    let csv = nov_only.to_csv();
    assert_eq!(
        csv,
        "month,recorded,delivered,pending,parked,first_opens\n2026-11,3,2,0,1,1\ntotal,3,2,0,1,1\n"
    );
    let json: serde_json::Value = serde_json::from_str(&nov_only.to_json()).unwrap();
    assert_eq!(json["months"][0]["firstOpens"], 1);
    assert_eq!(json["from"], "2026-11-01");
    assert!(parse_date("2026-13-01").is_err());
}

#[tokio::test]
async fn retention_prunes_only_old_delivered_openings() {
    let dir = tempfile::tempdir().unwrap();
    let store = Outbox::open_in(dir.path()).await.unwrap();
    let old_delivered = store.record_opening("c-1", 1).await.unwrap().opening_id;
    let old_pending = store.record_opening("c-1", 2).await.unwrap().opening_id;
    let recent = store.record_opening("c-1", 3).await.unwrap().opening_id;
    store
        .mark_delivered(&old_delivered, true, Utc::now())
        .await
        .unwrap();
    store
        .mark_delivered(&recent, true, Utc::now())
        .await
        .unwrap();
    set_opened_at(&store, &old_delivered, 2020, 1, 1).await;
    set_opened_at(&store, &old_pending, 2020, 1, 1).await;

    assert_eq!(
        prune(&store, Duration::from_secs(400 * 86_400))
            .await
            .unwrap(),
        1
    );
    let after = report(&store, Period::default()).await.unwrap();
    assert_eq!(
        after.total.recorded, 2,
        "the pending opening is kept: it is still money"
    );
    assert!(after.pruned_before.is_some());
    assert_eq!(
        prune(&store, Duration::from_secs(400 * 86_400))
            .await
            .unwrap(),
        0
    );
}
