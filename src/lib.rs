//! Ikkuna: a window onto Finnish authority mail for private digipost operators.
//!
//! One data path: request → citizen assertion → consent → DVV call → (opening recorded) → stream
//! out. Each step is a module with one job and a typed error; the operator API assembles them.

pub mod admin;
pub mod api;
pub mod app;
pub mod citizen;
pub mod config;
pub mod consent;
pub mod dvv;
pub mod openings;
#[cfg(feature = "sandbox")]
pub mod sandbox_cmd;
pub mod server;
pub mod telemetry;
pub mod tls_provider;
