//! The operator API's data path, declared once, in the order a request passes through it.
//!
//! ```text
//!  request
//!   1. identify        request id + the per-request context; stamps every answer; access log
//!   2. rescue          a panic anywhere below becomes one 500 answer, nothing internal leaks
//!   3. shed            over server.max_concurrent_requests: 503 + Retry-After at once, no queue
//!   4. client_limit    over the operator client's rate: 429 before any signature is checked
//!      ── per route of routes.rs, with its audit action (any other path: 404 after step 4) ──
//!   5. audit           the access's record is written before its answer leaves (steps 6-9 too)
//!      (POST routes: a body a refusal left unread is discarded, at most 256 KiB in 5 s)
//!   6. request_shape   the route's one method, one Authorization, known query, ids decoded once
//!   7. deadline        the answer (a stream's start) within server.request_timeout_ms, else 504
//!                      (a reply's upload: every DVV call has its deadline, every chunk its idle one)
//!   8. extractors      VerifiedCitizen → citizen limit + DVV budget → Consented → Admitted
//!   9. handler         DVV call → opening recorded → stream out (Cache-Control: no-store)
//! ```
//!
//! (axum matches the path first, so steps 1-4 see the route template for the access log; they
//! wrap every route and the fallback alike.)
//!
//! Every refusal of every step is an [`ApiError`](super::error::ApiError), mapped to its answer in
//! one place (`error.rs`), and noted in the request's [`Ctx`](super::context::Ctx), which is where
//! the access log and the audit step read what happened. Steps 3 and 4 sit above the audit step
//! on purpose: they exist to make a flood cheap to refuse, so their refusals are counted in
//! metrics, not written to the audit trail (SECURITY.md, "Refusals that are not audited").
//! (The model is linkerd2-proxy's inbound HTTP stack: concurrency limit, load shed, one error
//! mapping, a rescue layer at the top; the step names follow pingora's phases.)

use std::time::Duration;

use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use tower::ServiceBuilder;

use super::handlers;
use super::layers::{self, Shed};
use super::routes::Route;
use super::state::SharedWindow;

/// The pipeline's own limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct PipelineSettings {
    /// `server.max_concurrent_requests`: requests (and streams) in flight at once.
    pub max_concurrent_requests: usize,
    /// `server.request_timeout_ms`: a whole answer, or the start of a stream.
    pub request_timeout: Duration,
}

/// Assembles the operator API: the routes of [`Route::ALL`], each under steps 5-7, all under
/// steps 1-4.
pub fn router(window: SharedWindow, settings: PipelineSettings) -> Router {
    let mut router = Router::new();
    for route in Route::ALL {
        let steps = ServiceBuilder::new()
            // 5. Audit: every access through this route, and every refusal below, is recorded.
            .layer(from_fn_with_state((window.clone(), route), layers::audit))
            // 5b. POST routes: a body left unread by a refusal is discarded (bounded), so the
            //     client reads the refusal rather than a reset connection.
            .option_layer(
                (route.method() == axum::http::Method::POST)
                    .then(|| from_fn(layers::discard_unread)),
            )
            // 6. Request shape: method, Authorization, query and path ids, decided once.
            .layer(from_fn_with_state(route, layers::request_shape))
            // 7. Deadline: no request holds a slot longer than the configured bound (an upload
            //    is bounded chunk by chunk instead: Route::has_deadline).
            .option_layer(
                route
                    .has_deadline()
                    .then(|| from_fn_with_state(settings.request_timeout, layers::deadline)),
            );
        // 8-9. The handler and its extractors (handlers.rs, extract.rs).
        router = router.route(route.path(), route.handler().layer(steps));
    }
    router
        .fallback(handlers::fallback)
        .layer(
            ServiceBuilder::new()
                // 1. Identify: every answer carries x-request-id and no-store; one log line each.
                .layer(from_fn(layers::identify))
                // 2. Rescue: nothing below can end a request without an answer in the house style.
                .layer(from_fn(layers::rescue))
                // 3. Shed: a bounded number of requests in flight; the excess is refused at once.
                .layer(from_fn_with_state(
                    Shed::new(settings.max_concurrent_requests),
                    layers::shed,
                ))
                // 4. Client limit: a flooding operator client is refused before costly steps.
                .layer(from_fn_with_state(window.clone(), layers::client_limit)),
        )
        .with_state(window)
}
