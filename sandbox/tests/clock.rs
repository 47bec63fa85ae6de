//! DVV's clock moves forward on request and stamps what happens after; alone in its own test
//! binary because the offset is process-wide (a parallel test would see its messages released
//! a week ahead).

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn dvv_clock_moves_forward_only_and_stamps_what_happens_after() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let t = a.token().await;
    let (_, start) = drain_events(&a, &t, None).await;
    let before = h.admin.get("/admin/clock").await;
    assert_eq!(before["offsetSecs"], 0);

    let week = 7 * 86_400;
    let moved = h
        .admin
        .post("/admin/clock", json!({"advanceSecs": week}))
        .await
        .expect(200)
        .json();
    assert_eq!(moved["offsetSecs"], week);
    for bad in [
        json!({"advanceSecs": 0}),
        json!({"advanceSecs": -5}),
        json!({}),
    ] {
        h.admin.post("/admin/clock", bad).await.expect(400);
    }

    // Authentication keeps the real clock (the token above still works); what happens now is
    // stamped a week ahead.
    h.admin
        .new_message(json!({"endUserId": AINO, "title": "t", "body": "b"}))
        .await;
    let (events, _) = drain_events(&a, &t, Some(&start)).await;
    let at = chrono::DateTime::parse_from_rfc3339(events[0]["eventTime"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let ahead = at - chrono::Utc::now();
    assert!(
        ahead > chrono::Duration::days(6) && ahead < chrono::Duration::days(8),
        "{ahead:?}"
    );
}
