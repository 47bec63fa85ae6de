-- Issue 20: the reminder schedule. One row per (consent, message) still unread whose sender allows
-- reminders: when the next reminder falls due (unix ms), how many were sent, the wait between
-- them. Ids and times only; a row is deleted when the message is read or its receipt confirmed in
-- any window, when the consent ends, or after the last reminder. Due rows are taken with
-- FOR UPDATE SKIP LOCKED in the transaction that queues their webhooks.
CREATE TABLE reminders (
    consent_id    TEXT    NOT NULL,
    message_id    BIGINT  NOT NULL,
    due_at        BIGINT  NOT NULL,
    interval_ms   BIGINT  NOT NULL,
    sent          INTEGER NOT NULL DEFAULT 0,
    needs_receipt BOOLEAN NOT NULL,
    PRIMARY KEY (consent_id, message_id)
);
CREATE INDEX reminders_due ON reminders (due_at);
CREATE INDEX reminders_message ON reminders (message_id);
