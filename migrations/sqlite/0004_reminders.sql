-- Issue 20: the reminder schedule. One row per (consent, message) still unread whose sender allows
-- reminders: when the next reminder falls due, how many were sent, the wait between them. Ids and
-- times only; a row is deleted when the message is read or its receipt confirmed in any window,
-- when the consent ends, or after the last reminder.
CREATE TABLE reminders (
    consent_id    TEXT    NOT NULL,
    message_id    INTEGER NOT NULL,
    due_at        INTEGER NOT NULL,
    interval_ms   INTEGER NOT NULL,
    sent          INTEGER NOT NULL DEFAULT 0,
    needs_receipt INTEGER NOT NULL CHECK (needs_receipt IN (0, 1)),
    PRIMARY KEY (consent_id, message_id)
) STRICT;
CREATE INDEX reminders_due ON reminders (due_at);
CREATE INDEX reminders_message ON reminders (message_id);
