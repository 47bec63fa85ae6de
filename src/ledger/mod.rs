//! The compensation ledger: what this gateway recorded and what DVV answered, per month.
//!
//! The ledger is the openings table of the embedded store (ids and times only, never content):
//! [`report`] sums it per month for `ikkuna ledger report`, the basis on which the operator checks
//! the compensation DVV pays by first opens; [`spawn_retention`] prunes delivered openings past
//! `ledger.retention_days`; [`reconcile`] compares a month with DVV's statement for
//! `ikkuna ledger reconcile`.

mod reconcile;
mod report;
mod retention;

#[cfg(test)]
pub(crate) mod tests;

pub use reconcile::{compare, reconcile, Item, Month, ReconcileError, Reconciliation};
pub use report::{report, LedgerReport, MonthFigures, Period};
pub use retention::{prune, spawn_retention, PRUNE_EVERY};

/// Parses `YYYY-MM-DD` for `--from` / `--to`.
pub fn parse_date(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a date of the form YYYY-MM-DD"))
}
