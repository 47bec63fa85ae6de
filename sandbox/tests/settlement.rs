//! Fair first openings at the sandbox DVV: the earliest corroborated `openedAt` wins whatever the
//! arrival order, the verdict is provisional until the settlement window has passed, the
//! statement lists a provider's openings with verdicts page by page, and an admin delete
//! re-arbitrates.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn ms(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn statement(p: &Provider, t: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            None => format!("/v1/statement?{query}"),
            Some(c) => format!("/v1/statement?{query}&continuationToken={c}"),
        };
        let page = p.get(&path, t).await.expect(200).json();
        out.extend(page["openings"].as_array().unwrap().iter().cloned());
        match page["continuationToken"].as_str() {
            Some(c) => token = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// Reports an opening of message `id` as provider `p` under `consent`.
async fn report(
    p: &Provider,
    t: &str,
    consent: &str,
    id: i64,
    opening_id: &str,
    opened_at: &str,
) -> Resp {
    p.post_json(
        &format!("/v1/consents/{consent}/messages/{id}/openings"),
        t,
        &json!({"openingId": opening_id, "openedAt": opened_at}),
    )
    .await
}

#[tokio::test]
async fn the_earliest_opening_wins_and_settles_after_the_window() {
    let h = start_with(|o| o.settlement_window = Duration::from_secs(3)).await;
    let (a, b) = (h.provider(0), h.provider(1));
    let (ta, tb) = (a.token().await, b.token().await);
    let (aino_a, aino_b) = (a.consent_id(&ta, AINO).await, b.consent_id(&tb, AINO).await);
    let (id, _) = h
        .admin
        .new_message(json!({"endUserId": AINO, "title": "Fair", "body": "x"}))
        .await;
    a.get(&format!("/v1/consents/{aino_a}/messages/{id}"), &ta)
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let a_opened = ms(chrono::Utc::now());
    tokio::time::sleep(Duration::from_millis(20)).await;
    b.get(&format!("/v1/consents/{aino_b}/messages/{id}"), &tb)
        .await
        .expect(200);
    let b_opened = ms(chrono::Utc::now());

    // provider-b's later opening arrives first: provisionally first.
    let rb = report(&b, &tb, &aino_b, id, "b-1", &b_opened)
        .await
        .expect(201)
        .json();
    assert_eq!(rb["firstOpen"], true);
    assert_eq!(rb["firstOpenStatus"], "Provisional");
    // provider-a's earlier opening arrives later and takes the first open.
    let ra = report(&a, &ta, &aino_a, id, "a-1", &a_opened)
        .await
        .expect(201)
        .json();
    assert_eq!(ra["firstOpen"], true);
    assert_eq!(ra["readAt"], a_opened.as_str());
    let rb = report(&b, &tb, &aino_b, id, "b-1", &b_opened)
        .await
        .expect(409)
        .json();
    assert_eq!(
        rb["firstOpen"], false,
        "a repeat answers the verdict as it stands"
    );

    // After the window both verdicts are settled.
    let deadline = Instant::now() + Duration::from_secs(30);
    let period = format!(
        "from={}&to={}",
        ms(chrono::Utc::now() - chrono::Duration::hours(1)),
        ms(chrono::Utc::now() + chrono::Duration::hours(1))
    );
    let period = period.replace(':', "%3A");
    loop {
        let sa = statement(&a, &ta, &period).await;
        if sa.iter().all(|o| o["firstOpenStatus"] == "Settled") {
            assert_eq!(sa.len(), 1);
            assert_eq!(sa[0]["openingId"], "a-1");
            assert_eq!(sa[0]["firstOpen"], true);
            break;
        }
        assert!(Instant::now() < deadline, "never settled: {sa:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sb = statement(&b, &tb, &period).await;
    assert_eq!(sb.len(), 1, "a statement lists only the caller's openings");
    assert_eq!(
        (sb[0]["firstOpen"].clone(), sb[0]["firstOpenStatus"].clone()),
        (json!(false), json!("Settled"))
    );

    // A report arriving after the verdict settled never changes it, however early its openedAt.
    let rb2 = report(&b, &tb, &aino_b, id, "b-2", &a_opened)
        .await
        .expect(201)
        .json();
    assert_eq!(rb2["firstOpen"], false);

    // Deleting the winner at DVV's side re-arbitrates among the openings that remain.
    h.admin
        .send(
            http::Method::DELETE,
            "/admin/openings?providerId=provider-a&openingId=a-1",
            None,
        )
        .await
        .expect(200);
    assert!(statement(&a, &ta, &period).await.is_empty());
    let sb = statement(&b, &tb, &period).await;
    let b1 = sb.iter().find(|o| o["openingId"] == "b-1").unwrap();
    assert_eq!(b1["firstOpen"], true);
    h.admin
        .send(
            http::Method::DELETE,
            "/admin/openings?providerId=provider-a&openingId=a-1",
            None,
        )
        .await
        .expect(404);
}

#[tokio::test]
async fn the_statement_pages_with_a_bound_token() {
    let h = start_sandbox().await;
    let a = h.provider(0);
    let t = a.token().await;
    let aino = a.consent_id(&t, AINO).await;
    let from = chrono::Utc::now() - chrono::Duration::seconds(1);
    for n in 0..5 {
        let (id, _) = h
            .admin
            .new_message(json!({"endUserId": AINO, "title": format!("S{n}"), "body": "x"}))
            .await;
        a.get(&format!("/v1/consents/{aino}/messages/{id}"), &t)
            .await
            .expect(200);
        report(
            &a,
            &t,
            &aino,
            id,
            &format!("s-{n}"),
            &ms(chrono::Utc::now()),
        )
        .await
        .expect(201);
    }
    let to = chrono::Utc::now() + chrono::Duration::seconds(1);
    let q = format!("from={}&to={}&limit=2", ms(from), ms(to)).replace(':', "%3A");
    let first = a
        .get(&format!("/v1/statement?{q}"), &t)
        .await
        .expect(200)
        .json();
    assert_eq!(first["openings"].as_array().unwrap().len(), 2);
    let token = first["continuationToken"].as_str().unwrap().to_owned();
    let all = statement(&a, &t, &q).await;
    let ids: Vec<&str> = all
        .iter()
        .map(|o| o["openingId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["s-0", "s-1", "s-2", "s-3", "s-4"]);
    for o in &all {
        assert_eq!(o["firstOpenStatus"], "Provisional");
        assert!(o["settlesAt"].is_string() && o["readAt"].is_string());
    }
    // The token is bound to the provider and the period.
    let other = format!(
        "from={}&to={}&limit=2",
        ms(from),
        ms(to + chrono::Duration::seconds(1))
    )
    .replace(':', "%3A");
    a.get(
        &format!("/v1/statement?{other}&continuationToken={token}"),
        &t,
    )
    .await
    .expect(400);
    let b = h.provider(1);
    let tb = b.token().await;
    b.get(&format!("/v1/statement?{q}&continuationToken={token}"), &tb)
        .await
        .expect(400);
    // Bounds are required and ordered.
    a.get("/v1/statement", &t).await.expect(400);
    let backwards = format!("from={}&to={}", ms(to), ms(from)).replace(':', "%3A");
    a.get(&format!("/v1/statement?{backwards}"), &t)
        .await
        .expect(400);
}
