CREATE TABLE feed_position (
        id                 INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
        continuation_token TEXT    NOT NULL,
        events_seen        INTEGER NOT NULL DEFAULT 0,
        updated_at         INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE webhook_deliveries (
        id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
        event_id        TEXT    NOT NULL,
        endpoint        TEXT    NOT NULL,
        event_type      TEXT    NOT NULL,
        body            TEXT    NOT NULL,
        state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'parked')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        last_error_kind TEXT,
        last_status     INTEGER,
        delivered_at    INTEGER,
        UNIQUE (event_id, endpoint)
     ) STRICT;
     CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
     CREATE TABLE ledger_retention (
        id            INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
        pruned_before INTEGER NOT NULL,
        pruned_at     INTEGER NOT NULL
     ) STRICT;