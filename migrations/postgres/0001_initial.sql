-- Ikkuna's shared store on PostgreSQL (issue 10): the same tables as the embedded SQLite store
-- (src/openings/schema.rs), times as unix milliseconds. Ids and times only: never a title, a
-- body, an attachment or an identity code. Applied at start under an advisory lock and recorded
-- in ikkuna_migrations; append new files, never edit one that has shipped.

-- The openings outbox and compensation ledger: one row per (consent, message), so two replicas
-- reading the same message at once record (and report) one opening.
CREATE TABLE openings (
    opening_id      TEXT    NOT NULL PRIMARY KEY,
    consent_id      TEXT    NOT NULL,
    message_id      BIGINT  NOT NULL,
    opened_at       BIGINT  NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'parked')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    last_error_kind TEXT,
    first_open      BOOLEAN,
    dvv_read_at     BIGINT,
    delivered_at    BIGINT,
    UNIQUE (consent_id, message_id)
);
CREATE INDEX openings_due ON openings (state, next_attempt_at);
CREATE INDEX openings_opened_at ON openings (opened_at);

CREATE TABLE store_health (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    checked_at BIGINT  NOT NULL
);

-- The events feed position: advanced in the same transaction that queues the page's webhooks.
CREATE TABLE feed_position (
    id                 INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    continuation_token TEXT    NOT NULL,
    events_seen        BIGINT  NOT NULL DEFAULT 0,
    updated_at         BIGINT  NOT NULL
);

-- The webhook delivery queue: one row per (event, endpoint).
CREATE TABLE webhook_deliveries (
    id              BIGSERIAL NOT NULL PRIMARY KEY,
    event_id        TEXT      NOT NULL,
    endpoint        TEXT      NOT NULL,
    event_type      TEXT      NOT NULL,
    body            TEXT      NOT NULL,
    state           TEXT      NOT NULL CHECK (state IN ('pending', 'delivered', 'parked')),
    attempts        INTEGER   NOT NULL DEFAULT 0,
    created_at      BIGINT    NOT NULL,
    next_attempt_at BIGINT    NOT NULL,
    last_error_kind TEXT,
    last_status     INTEGER,
    delivered_at    BIGINT,
    UNIQUE (event_id, endpoint)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);

-- The ledger's retention mark.
CREATE TABLE ledger_retention (
    id            INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    pruned_before BIGINT  NOT NULL,
    pruned_at     BIGINT  NOT NULL
);
