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

fn entry(id: &str, first_open: bool, settled: bool) -> crate::dvv::StatementEntry {
    let t = Utc.with_ymd_and_hms(2026, 11, 3, 12, 0, 0).unwrap();
    crate::dvv::StatementEntry {
        opening_id: id.to_owned(),
        message_id: 1,
        opened_at: t,
        first_open,
        first_open_status: if settled {
            crate::dvv::FirstOpenStatus::Settled
        } else {
            crate::dvv::FirstOpenStatus::Provisional
        },
        settles_at: t,
        read_at: t,
    }
}

fn ours(
    id: &str,
    state: crate::store::OpeningState,
    first_open: Option<bool>,
) -> crate::store::LedgerOpening {
    crate::store::LedgerOpening {
        opening_id: id.to_owned(),
        message_id: 1,
        opened_at: Utc.with_ymd_and_hms(2026, 11, 3, 12, 0, 0).unwrap(),
        state,
        first_open,
        settles_at: None,
        last_error: None,
    }
}

#[test]
fn reconciliation_sorts_discrepancies_and_says_which_are_final() {
    use crate::store::OpeningState::{Delivered, Parked, Pending};
    let clean = compare(
        &[
            ours("a", Delivered, Some(true)),
            ours("b", Delivered, Some(false)),
        ],
        &[entry("a", true, true), entry("b", false, false)],
    );
    assert!(clean.is_clean(), "{clean:?}");
    assert_eq!(clean.provisional.len(), 1);
    assert!(clean
        .to_text()
        .contains("result: clean (1 verdicts still provisional)"));

    let ledger = [
        ours("in-flight", Pending, None),
        ours("parked", Parked, None),
        ours("lost-at-dvv", Delivered, Some(true)),
        ours("disputed", Delivered, Some(true)),
        ours("still-open", Delivered, Some(true)),
    ];
    let statement = [
        entry("disputed", false, true),
        entry("still-open", false, false),
        entry("unknown-here", true, true),
    ];
    let r = compare(&ledger, &statement);
    let ids = |items: &[Item]| {
        items
            .iter()
            .map(|i| (i.opening_id.clone(), i.is_final))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&r.dvv_only), [("unknown-here".to_owned(), true)]);
    assert_eq!(
        ids(&r.gateway_only),
        [
            ("in-flight".to_owned(), false),
            ("parked".to_owned(), true),
            ("lost-at-dvv".to_owned(), true)
        ]
    );
    assert_eq!(
        ids(&r.first_open_disagreements),
        [
            ("disputed".to_owned(), true),
            ("still-open".to_owned(), false)
        ]
    );
    assert_eq!(r.final_discrepancies, 4);
    assert!(!r.is_clean());
    let csv = r.to_csv();
    assert!(csv.starts_with("kind,opening_id,message_id,opened_at,"));
    assert!(
        csv.contains("\ndvv_only,unknown-here,1,2026-11-03T12:00:00.000Z,,,true,settled,true\n"),
        "{csv}"
    );
    assert!(csv.contains("\nfirst_open_disagreement,disputed,1,2026-11-03T12:00:00.000Z,delivered,true,false,settled,true\n"), "{csv}");
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["finalDiscrepancies"], 4);
    assert_eq!(json["dvvOnly"][0]["final"], true);
    assert!(r.to_text().contains("result: 4 final discrepancies"));
}

#[test]
fn months_parse_and_bound() {
    let m = Month::parse("2026-12").unwrap();
    let (from, to) = m.bounds();
    assert_eq!(from, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
    assert_eq!(to, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
    assert_eq!(m.label(), "2026-12");
    for bad in ["2026-13", "2026-1", "26-11", "2026/11", ""] {
        assert!(Month::parse(bad).is_err(), "{bad}");
    }
}

/// `reconcile` end to end against a scripted DVV (real TLS on loopback) serving a two-page
/// statement: the settled verdict is adopted, a DVV-only opening is final, a pending one is not.
pub(crate) async fn reconcile_against_a_scripted_dvv(store: Outbox) {
    use std::sync::Arc;

    use crate::dvv::testing::{reply_json, reply_token, Script, TestServer};

    let o1 = store.record_opening("c-r", 1).await.unwrap();
    let o2 = store.record_opening("c-r", 2).await.unwrap();
    let o3 = store.record_opening("c-r", 3).await.unwrap();
    let read_at = o1.opened_at;
    let provisional = crate::store::DvvVerdict {
        first_open: true,
        read_at,
        settles_at: Some(read_at + chrono::TimeDelta::days(7)),
    };
    store
        .mark_delivered_with(&o1.opening_id, &provisional)
        .await
        .unwrap();
    store
        .mark_delivered(&o2.opening_id, false, read_at)
        .await
        .unwrap();
    let month = Month::parse(&o1.opened_at.format("%Y-%m").to_string()).unwrap();
    let ts = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let line = |id: &str, m: i64, first: bool| {
        serde_json::json!({"openingId": id, "messageId": m, "openedAt": ts(read_at),
            "corroboratedOpenedAt": ts(read_at), "receivedAt": ts(read_at), "firstOpen": first,
            "firstOpenStatus": "Settled", "settlesAt": ts(read_at), "readAt": ts(read_at)})
    };
    let page1 = serde_json::json!({"openings": [line(&o1.opening_id, 1, false),
        line(&o2.opening_id, 2, false)], "continuationToken": "p2"});
    let page2 = serde_json::json!({"openings": [line("stranger", 9, true)],
        "continuationToken": null});
    let script: Script = Arc::new(move |request| {
        let reply = if request.path() == "/v1/token" {
            reply_token("token-1", 300)
        } else if request.target.contains("continuationToken=p2") {
            reply_json(200, page2.clone())
        } else {
            reply_json(200, page1.clone())
        };
        Box::pin(async move { reply })
    });
    let server = TestServer::start(script).await;
    let dvv = crate::dvv::DvvClient::new(&server.dvv_config(&[])).unwrap();

    let r = reconcile(&store, &dvv, month).await.unwrap();
    assert_eq!(r.adopted_verdicts, 1, "{r:?}");
    assert_eq!((r.gateway_openings, r.dvv_openings), (3, 3));
    assert!(r.first_open_disagreements.is_empty(), "{r:?}");
    assert_eq!(r.dvv_only.len(), 1);
    assert_eq!(r.dvv_only[0].opening_id, "stranger");
    assert_eq!(r.gateway_only.len(), 1);
    assert_eq!(
        (
            r.gateway_only[0].opening_id.as_str(),
            r.gateway_only[0].is_final
        ),
        (o3.opening_id.as_str(), false),
        "a pending opening is on its way, not a discrepancy yet"
    );
    assert_eq!(r.final_discrepancies, 1);
    let (from, to) = month.bounds();
    let statement_calls: Vec<String> = server
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|q| q.path() == "/v1/statement")
        .map(|q| q.target.clone())
        .collect();
    assert_eq!(statement_calls.len(), 2, "{statement_calls:?}");
    let encoded = |t: chrono::DateTime<Utc>| ts(t).replace(':', "%3A");
    assert!(
        statement_calls[0].contains(&format!("from={}", encoded(from)))
            && statement_calls[0].contains(&format!("to={}", encoded(to))),
        "{statement_calls:?}"
    );
    let stored = store.ledger_openings(i64::MIN, i64::MAX).await.unwrap();
    let first = stored
        .iter()
        .find(|o| o.opening_id == o1.opening_id)
        .unwrap();
    assert_eq!((first.first_open, first.settles_at), (Some(false), None));
}

#[tokio::test]
async fn reconcile_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Outbox::open_in(dir.path()).await.unwrap();
    reconcile_against_a_scripted_dvv(store).await;
}
