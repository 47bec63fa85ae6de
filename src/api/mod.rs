//! The operator API: the routes an operator's backend calls on behalf of a logged-in citizen.
//!
//! Start reading at [`pipeline`]: it declares every step a request passes, in order. The routes
//! are in [`routes`], the typed extractors (verified citizen, consent) in `extract`, the one
//! mapping from error to HTTP answer in [`error`], the per-request facts in [`context`].

pub mod context;
pub mod error;
mod extract;
mod handlers;
mod layers;
mod opened;
mod paging;
pub mod pipeline;
mod replies;
pub mod routes;
pub mod state;

pub use layers::stamp;
pub use pipeline::{router, PipelineSettings};

/// Header naming each request, set on every answer so operator and gateway logs line up.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
