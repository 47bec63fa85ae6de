//! What providers did: `GET /admin/openings`, `GET /admin/receipts`, `GET /admin/calls`, and a
//! summary, `GET /admin/state`.

use http::{Response, StatusCode};
use serde::Serialize;

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::{json, request, Body};
use crate::time::{self, Timestamp};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OpeningRow {
    message_id: i64,
    provider_id: String,
    opening_id: String,
    first_open: bool,
    first_open_status: &'static str,
    #[serde(with = "time::as_string")]
    opened_at: Timestamp,
    #[serde(with = "time::as_string")]
    corroborated_opened_at: Timestamp,
    #[serde(with = "time::as_string")]
    received_at: Timestamp,
    #[serde(with = "time::as_string")]
    read_at: Timestamp,
}

/// Every opening reported, in arrival order.
pub fn openings(app: &App) -> Response<Body> {
    let now = time::now();
    let rows: Vec<OpeningRow> = app
        .domain
        .openings()
        .into_iter()
        .map(|(o, v)| OpeningRow {
            message_id: o.message_id,
            provider_id: o.provider,
            opening_id: o.opening_id,
            first_open: v.first_open,
            first_open_status: v.status(now),
            opened_at: o.opened_at,
            corroborated_opened_at: o.corroborated_at,
            received_at: o.received_at,
            read_at: v.read_at,
        })
        .collect();
    json(StatusCode::OK, &rows)
}

/// `DELETE /admin/openings?providerId=&openingId=`: removes one opening at DVV's side, so that a
/// test can plant a discrepancy for the operator's reconciliation to find.
pub fn delete_opening(app: &App, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let params = request::query(query)?;
    let field = |name: &'static str| {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::invalid_field(name, "is required"))
    };
    let (provider, opening_id) = (field("providerId")?, field("openingId")?);
    app.domain
        .delete_opening(provider, opening_id)
        .map_err(|e| match e {
            crate::domain::DomainError::OpeningNotFound => ApiError::not_found("Opening not found"),
            _ => ApiError::internal(),
        })?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"deleted": opening_id}),
    ))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReceiptRow {
    message_id: i64,
    provider_id: Option<String>,
    #[serde(with = "time::as_string")]
    receipt_confirmed_at: Timestamp,
}

/// Every receipt confirmation: which provider relayed it (`null`: DVV's own service) and when.
pub fn receipts(app: &App) -> Response<Body> {
    let rows: Vec<ReceiptRow> = app
        .domain
        .receipts()
        .into_iter()
        .map(|(message_id, provider_id, at)| ReceiptRow {
            message_id,
            provider_id,
            receipt_confirmed_at: at,
        })
        .collect();
    json(StatusCode::OK, &rows)
}

/// Calls on the DVV listener; `?providerId=` and `?afterSeq=` filter.
pub fn calls(app: &App, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let params = request::query(query)?;
    let after = match params.get("afterSeq") {
        None => 0,
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| ApiError::invalid_field("afterSeq", "must be a non-negative integer"))?,
    };
    let calls = app
        .calls
        .list(params.get("providerId").map(String::as_str), after);
    Ok(json(StatusCode::OK, &calls))
}

/// A summary for humans.
pub fn state(app: &App) -> Response<Body> {
    let providers: Vec<serde_json::Value> = app
        .domain
        .providers()
        .into_iter()
        .map(|(id, name)| serde_json::json!({"id": id, "name": name}))
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "startedAt": time::format(&app.started_at),
            "dvvUrl": app.dvv_url,
            "adminUrl": app.admin_url,
            "providers": providers,
            "counts": app.domain.counts(),
            "bearerTokens": app.tokens.len(),
            "callsRecorded": app.calls.len(),
            "faults": app.faults.current(),
        }),
    )
}
