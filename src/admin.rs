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
        // Every answer, 503 and 404 included, carries x-request-id and no-store.
        .layer(axum::middleware::from_fn(crate::api::stamp))
        .with_state(window)
}

/// Ready only when DVV answers with a valid token and the outbox can record openings: a gateway
/// that cannot record an opening must not be sent traffic that would release bodies.
/// The assertion keys must be loaded too (a JWKS URL can be down at start); `reason` names each
/// dependency that is down (see [`crate::health`]).
async fn readyz(State(window): State<Arc<Window>>) -> Response {
    let readiness = crate::health::readiness(&window).await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness.body)).into_response()
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
    crate::health::refresh_metrics(&window);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::telemetry::metrics::CONTENT_TYPE,
        )],
        m.render(),
    )
        .into_response()
}
