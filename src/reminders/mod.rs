//! Reminders of unread messages: a `message.reminder` webhook when a message is still unread a
//! configured while after it arrived, only when its sender allowed reminders, at most a configured
//! number of times, and never once it was read or its receipt confirmed in any window or the
//! consent ended.
//!
//! Three parts, each with one job:
//! - [`schedule`] reads a page of DVV's events feed into changes of the durable schedule (a new
//!   message schedules, a read, a receipt or a revocation cancels). The feed consumer commits them
//!   in the page's own transaction, so the schedule moves exactly with the feed position.
//! - [`scheduler`] fires due reminders: one store transaction queues each reminder's webhook and
//!   advances (or ends) its row, so a SIGKILL at any moment sends a reminder once or not yet; on
//!   PostgreSQL, rows are taken with `FOR UPDATE SKIP LOCKED` and the webhook's id is stable, so
//!   replicas cannot send one twice. It fires only what the feed has caught up past, so a read in
//!   another window that DVV reported before the reminder fell due always wins.
//! - [`clock`] is the scheduler's time source, injected: the system clock, optionally run ahead by
//!   `reminders.clock_offset_secs` in tests against a local sandbox, or a clock a test moves.
//!
//! The schedule holds ids and times only (consent id, message id, due time, count): no title,
//! no body, no sender.

pub mod clock;
pub mod schedule;
pub mod scheduler;

pub use clock::{Clock, ManualClock, SystemClock};
pub use schedule::{changes, ReminderDelays};
pub use scheduler::{spawn_scheduler, SchedulerSettings};
