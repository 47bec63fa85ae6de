//! The monthly report: per calendar month (UTC) of `opened_at`, the openings recorded, delivered
//! to DVV, pending, parked, and those DVV answered `firstOpen: true`.

use chrono::{NaiveDate, TimeZone as _, Utc};
use serde::Serialize;

pub use crate::store::MonthFigures;
use crate::store::{Store, StoreError};

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerReport {
    /// First day included (`YYYY-MM-DD`), if limited.
    pub from: Option<String>,
    /// Last day included (`YYYY-MM-DD`), if limited.
    pub to: Option<String>,
    /// Months and days are UTC.
    pub time_zone: &'static str,
    /// Openings before this time were pruned by the retention setting (RFC 3339), if ever.
    pub pruned_before: Option<String>,
    /// One row per month with openings, oldest first.
    pub months: Vec<MonthFigures>,
    /// The sums over all months.
    pub total: MonthFigures,
}

/// Which days to include: `from` and `to` are both inclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    /// First day, if any.
    pub from: Option<NaiveDate>,
    /// Last day, if any.
    pub to: Option<NaiveDate>,
}

impl Period {
    /// The bounds in unix milliseconds: `[start, end)`.
    fn millis(&self) -> (i64, i64) {
        let start = self
            .from
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(i64::MIN, |t| Utc.from_utc_datetime(&t).timestamp_millis());
        let end = self
            .to
            .and_then(|d| d.succ_opt())
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(i64::MAX, |t| Utc.from_utc_datetime(&t).timestamp_millis());
        (start, end)
    }
}

/// Computes the report from the openings table.
pub async fn report(store: &Store, period: Period) -> Result<LedgerReport, StoreError> {
    let (start, end) = period.millis();
    let (months, pruned_before) = store.ledger_months(start, end).await?;
    let mut total = MonthFigures {
        month: "total".to_owned(),
        ..MonthFigures::default()
    };
    for m in &months {
        total.recorded += m.recorded;
        total.delivered += m.delivered;
        total.pending += m.pending;
        total.parked += m.parked;
        total.first_opens += m.first_opens;
    }
    Ok(LedgerReport {
        from: period.from.map(|d| d.to_string()),
        to: period.to.map(|d| d.to_string()),
        time_zone: "UTC",
        pruned_before: pruned_before
            .and_then(chrono::DateTime::<Utc>::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        months,
        total,
    })
}

impl LedgerReport {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// CSV with a header line, one line per month and a final `total` line.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("month,recorded,delivered,pending,parked,first_opens\n");
        for m in self.months.iter().chain(std::iter::once(&self.total)) {
            out.push_str(&format!(
                "{},{},{},{},{},{}\n",
                m.month, m.recorded, m.delivered, m.pending, m.parked, m.first_opens
            ));
        }
        out
    }
}
