//! The admin listener: liveness and readiness for the orchestrator, on its own (loopback) port.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::api::state::Window;

/// Routes of the admin listener.
pub fn router(window: Arc<Window>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, Json(json!({"reason": "Not found"}))) })
        .with_state(window)
}

/// Ready only when DVV answers with a valid token and the outbox can record openings: a gateway
/// that cannot record an opening must not be sent traffic that would release bodies.
async fn readyz(State(window): State<Arc<Window>>) -> Response {
    let store = window.outbox.check_writable().await;
    let dvv = window.dvv.ensure_token().await;
    let ok = store.is_ok() && dvv.is_ok();
    let body = json!({
        "status": if ok { "ready" } else { "not ready" },
        "store": if store.is_ok() { "writable" } else { "not writable" },
        "dvv": match &dvv { Ok(()) => "authenticated", Err(e) => e.kind() },
    });
    if ok {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        let mut body = body;
        body["reason"] = json!("Not ready: see store and dvv");
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// Prometheus exposition. Figures owned by other parts (consent cache, outbox, webhook queue,
/// events feed) are read now, at scrape time, so nothing polls them in between.
async fn metrics(State(window): State<Arc<Window>>) -> Response {
    let Some(m) = crate::telemetry::metrics::metrics() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"reason": "Metrics are unavailable"})),
        )
            .into_response();
    };
    m.refresh_consent(window.consents.stats(), window.consents.entry_count());
    m.refresh_outbox(window.outbox.stats().await.ok());
    m.refresh_webhooks(window.webhooks.stats().await.ok());
    m.refresh_feed(window.feed.stats());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::telemetry::metrics::CONTENT_TYPE,
        )],
        m.render(),
    )
        .into_response()
}
