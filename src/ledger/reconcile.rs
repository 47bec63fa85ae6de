//! `ikkuna ledger reconcile --month YYYY-MM`: this gateway's openings of a month against DVV's
//! statement of the same month (`GET /v1/statement`), so the operator can check the money.
//!
//! Both sides are keyed by the opening id (DVV's idempotency key) and filtered by the reported
//! `openedAt`, which is the gateway's own `opened_at`, so the two periods are the same set of
//! moments. Settled verdicts DVV has reached on openings this ledger holds as provisional are
//! recorded first (that is what settling means, not a discrepancy); what is left is listed:
//!
//! * **DVV only** — an opening DVV counts for this provider that the ledger does not have: final.
//! * **gateway only** — an opening the ledger has and DVV does not: final when the ledger says
//!   delivered or parked, not while it is still pending (in flight).
//! * **first-open disagreements** — both have it but disagree on `firstOpen`: final once DVV's
//!   verdict is settled.
//! * **provisional** — verdicts that may still change (listed, never a discrepancy).

use chrono::{DateTime, Datelike as _, NaiveDate, TimeZone as _, Utc};
use serde::Serialize;

use crate::dvv::{DvvClient, DvvError, FirstOpenStatus, StatementEntry};
use crate::store::{LedgerOpening, OpeningState, Store, StoreError};

/// Most statement pages read for one month (a guard against a token that never ends).
const MAX_PAGES: usize = 10_000;

/// A calendar month in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    first: NaiveDate,
}

impl Month {
    /// Parses `YYYY-MM`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a month of the form YYYY-MM");
        let (y, m) = text.trim().split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let first = NaiveDate::from_ymd_opt(
            y.parse().map_err(|_| bad())?,
            m.parse().map_err(|_| bad())?,
            1,
        )
        .ok_or_else(bad)?;
        Ok(Self { first })
    }

    /// `[start, end)` of the month.
    pub fn bounds(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let next = if self.first.month() == 12 {
            NaiveDate::from_ymd_opt(self.first.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(self.first.year(), self.first.month() + 1, 1)
        }
        .unwrap_or(NaiveDate::MAX);
        let at_midnight = |d: NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .map_or(DateTime::<Utc>::MAX_UTC, |t| Utc.from_utc_datetime(&t))
        };
        (at_midnight(self.first), at_midnight(next))
    }

    /// `YYYY-MM`.
    pub fn label(&self) -> String {
        self.first.format("%Y-%m").to_string()
    }
}

/// Why reconciliation could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The ledger could not be read or written.
    #[error("ledger: {0}")]
    Store(#[from] StoreError),
    /// DVV's statement could not be fetched.
    #[error("DVV statement: {0}")]
    Dvv(#[from] DvvError),
    /// DVV kept handing out continuation tokens.
    #[error("DVV statement: more than {MAX_PAGES} pages")]
    TooManyPages,
}

/// One listed opening: ids, times and verdicts only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// The opening id.
    pub opening_id: String,
    /// The message.
    pub message_id: i64,
    /// `openedAt` (RFC 3339).
    pub opened_at: String,
    /// This gateway's `firstOpen` (none before delivery, or when the ledger lacks the opening).
    pub gateway_first_open: Option<bool>,
    /// This gateway's state of the opening (none when the ledger lacks it).
    pub gateway_state: Option<OpeningState>,
    /// DVV's `firstOpen` (none when DVV lacks the opening).
    pub dvv_first_open: Option<bool>,
    /// DVV's verdict status (none when DVV lacks the opening).
    pub dvv_status: Option<FirstOpenStatus>,
    /// Whether this can no longer resolve by itself.
    #[serde(rename = "final")]
    pub is_final: bool,
}

/// The outcome of one month's reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reconciliation {
    /// `YYYY-MM` (UTC).
    pub month: String,
    /// Months are UTC.
    pub time_zone: &'static str,
    /// Openings of the month in this gateway's ledger.
    pub gateway_openings: usize,
    /// Openings of the month in DVV's statement.
    pub dvv_openings: usize,
    /// Settled verdicts recorded in the ledger by this run.
    pub adopted_verdicts: usize,
    /// Openings DVV has and this gateway does not.
    pub dvv_only: Vec<Item>,
    /// Openings this gateway has and DVV does not.
    pub gateway_only: Vec<Item>,
    /// Openings whose `firstOpen` differs.
    pub first_open_disagreements: Vec<Item>,
    /// Openings whose DVV verdict is still provisional.
    pub provisional: Vec<Item>,
    /// How many listed discrepancies are final (the exit status is non-zero when any are).
    pub final_discrepancies: usize,
}

/// Fetches DVV's statement of `month`, records DVV's settled verdicts on openings the ledger
/// holds as provisional, and compares the two.
pub async fn reconcile(
    store: &Store,
    dvv: &DvvClient,
    month: Month,
) -> Result<Reconciliation, ReconcileError> {
    let (from, to) = month.bounds();
    let mut theirs = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = dvv.statement(from, to, token.as_deref()).await?.value;
        theirs.extend(page.openings);
        token = page.continuation_token;
        if token.is_none() {
            break;
        }
    }
    if token.is_some() {
        return Err(ReconcileError::TooManyPages);
    }
    let (start, end) = (from.timestamp_millis(), to.timestamp_millis());
    let mut ours = store.ledger_openings(start, end).await?;
    let settled: Vec<(String, bool, DateTime<Utc>)> = theirs
        .iter()
        .filter(|e| e.first_open_status == FirstOpenStatus::Settled)
        .filter(|e| {
            ours.iter().any(|o| {
                o.opening_id == e.opening_id
                    && o.state == OpeningState::Delivered
                    && o.settles_at.is_some()
            })
        })
        .map(|e| (e.opening_id.clone(), e.first_open, e.read_at))
        .collect();
    let adopted = store.adopt_settled_verdicts(&settled).await?;
    if adopted > 0 {
        ours = store.ledger_openings(start, end).await?;
    }
    let mut outcome = compare(&ours, &theirs);
    outcome.month = month.label();
    outcome.adopted_verdicts = adopted;
    Ok(outcome)
}

/// Compares the ledger's openings with DVV's statement (the same period on both sides).
pub fn compare(ours: &[LedgerOpening], theirs: &[StatementEntry]) -> Reconciliation {
    let by_id: std::collections::HashMap<&str, &StatementEntry> =
        theirs.iter().map(|e| (e.opening_id.as_str(), e)).collect();
    let ours_ids: std::collections::HashSet<&str> =
        ours.iter().map(|o| o.opening_id.as_str()).collect();
    let millis = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let item = |o: Option<&LedgerOpening>, e: Option<&StatementEntry>, is_final: bool| Item {
        opening_id: o
            .map(|o| o.opening_id.clone())
            .or_else(|| e.map(|e| e.opening_id.clone()))
            .unwrap_or_default(),
        message_id: o
            .map(|o| o.message_id)
            .or(e.map(|e| e.message_id))
            .unwrap_or(0),
        opened_at: o
            .map(|o| millis(o.opened_at))
            .or_else(|| e.map(|e| millis(e.opened_at)))
            .unwrap_or_default(),
        gateway_first_open: o.and_then(|o| o.first_open),
        gateway_state: o.map(|o| o.state),
        dvv_first_open: e.map(|e| e.first_open),
        dvv_status: e.map(|e| e.first_open_status),
        is_final,
    };
    let mut out = Reconciliation {
        month: String::new(),
        time_zone: "UTC",
        gateway_openings: ours.len(),
        dvv_openings: theirs.len(),
        adopted_verdicts: 0,
        dvv_only: Vec::new(),
        gateway_only: Vec::new(),
        first_open_disagreements: Vec::new(),
        provisional: Vec::new(),
        final_discrepancies: 0,
    };
    for o in ours {
        match by_id.get(o.opening_id.as_str()) {
            None => out
                .gateway_only
                .push(item(Some(o), None, o.state != OpeningState::Pending)),
            Some(e) => {
                let settled = e.first_open_status == FirstOpenStatus::Settled;
                if o.first_open.is_some_and(|ours| ours != e.first_open) {
                    out.first_open_disagreements
                        .push(item(Some(o), Some(e), settled));
                }
                if !settled {
                    out.provisional.push(item(Some(o), Some(e), false));
                }
            }
        }
    }
    for e in theirs {
        if !ours_ids.contains(e.opening_id.as_str()) {
            out.dvv_only.push(item(None, Some(e), true));
            if e.first_open_status == FirstOpenStatus::Provisional {
                out.provisional.push(item(None, Some(e), false));
            }
        }
    }
    out.final_discrepancies = out
        .dvv_only
        .iter()
        .chain(&out.gateway_only)
        .chain(&out.first_open_disagreements)
        .filter(|i| i.is_final)
        .count();
    out
}

impl Reconciliation {
    /// Whether nothing final is wrong.
    pub fn is_clean(&self) -> bool {
        self.final_discrepancies == 0
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// CSV: a header, then one line per listed opening (`kind` is `dvv_only`, `gateway_only`,
    /// `first_open_disagreement` or `provisional`).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "kind,opening_id,message_id,opened_at,gateway_state,gateway_first_open,dvv_first_open,dvv_status,final\n",
        );
        for (kind, item) in self.listed() {
            out.push_str(&format!(
                "{kind},{},{},{},{},{},{},{},{}\n",
                item.opening_id,
                item.message_id,
                item.opened_at,
                item.gateway_state.map_or("", state_label),
                opt(item.gateway_first_open),
                opt(item.dvv_first_open),
                item.dvv_status.map_or("", status_label),
                item.is_final
            ));
        }
        out
    }

    /// A short report for a human.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "Reconciliation of {} (UTC) with DVV's statement\n\
             openings: {} in this gateway's ledger, {} at DVV; settled verdicts recorded now: {}\n\
             DVV only: {}   gateway only: {}   first-open disagreements: {}   provisional: {}\n",
            self.month,
            self.gateway_openings,
            self.dvv_openings,
            self.adopted_verdicts,
            self.dvv_only.len(),
            self.gateway_only.len(),
            self.first_open_disagreements.len(),
            self.provisional.len(),
        );
        for (kind, item) in self.listed() {
            out.push_str(&format!(
                "  {kind:<24} {} message {} opened {} gateway {}/{} DVV {}/{}{}\n",
                item.opening_id,
                item.message_id,
                item.opened_at,
                item.gateway_state.map_or("-", state_label),
                first_open_label(item.gateway_first_open),
                first_open_label(item.dvv_first_open),
                item.dvv_status.map_or("-", status_label),
                if item.is_final { "  FINAL" } else { "" },
            ));
        }
        out.push_str(&if self.is_clean() {
            format!(
                "result: clean ({} verdicts still provisional)\n",
                self.provisional.len()
            )
        } else {
            format!("result: {} final discrepancies\n", self.final_discrepancies)
        });
        out
    }

    fn listed(&self) -> impl Iterator<Item = (&'static str, &Item)> {
        self.dvv_only
            .iter()
            .map(|i| ("dvv_only", i))
            .chain(self.gateway_only.iter().map(|i| ("gateway_only", i)))
            .chain(
                self.first_open_disagreements
                    .iter()
                    .map(|i| ("first_open_disagreement", i)),
            )
            .chain(self.provisional.iter().map(|i| ("provisional", i)))
    }
}

fn opt(b: Option<bool>) -> String {
    b.map(|b| b.to_string()).unwrap_or_default()
}

fn first_open_label(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "first",
        Some(false) => "not-first",
        None => "-",
    }
}

fn state_label(s: OpeningState) -> &'static str {
    match s {
        OpeningState::Pending => "pending",
        OpeningState::Delivered => "delivered",
        OpeningState::Parked => "parked",
    }
}

fn status_label(s: FirstOpenStatus) -> &'static str {
    match s {
        FirstOpenStatus::Provisional => "provisional",
        FirstOpenStatus::Settled => "settled",
    }
}
