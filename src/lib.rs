//! Ikkuna: a window onto Finnish authority mail for private digipost operators.
//!
//! One data path: request → citizen assertion → rate limit → consent → DVV call → (opening
//! recorded) → stream out → audit. Each step is a module with one job and a typed error; the
//! operator API assembles them.

pub mod admin;
pub mod api;
pub mod app;
pub mod audit;
pub mod citizen;
pub mod config;
pub mod consent;
pub mod digest;
pub mod dvv;
pub mod events;
pub mod health;
pub mod ledger;
pub mod limits;
pub mod openings;
pub mod outflow;
pub mod reminders;
pub mod replies;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls_provider;
pub mod webhooks;
