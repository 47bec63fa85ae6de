CREATE TABLE openings (
        opening_id      TEXT    NOT NULL PRIMARY KEY,
        consent_id      TEXT    NOT NULL,
        message_id      INTEGER NOT NULL,
        opened_at       INTEGER NOT NULL,
        state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'parked')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error_kind TEXT,
        first_open      INTEGER CHECK (first_open IN (0, 1)),
        dvv_read_at     INTEGER,
        delivered_at    INTEGER,
        UNIQUE (consent_id, message_id)
     ) STRICT;
     CREATE INDEX openings_due ON openings (state, next_attempt_at);
     CREATE INDEX openings_opened_at ON openings (opened_at);
     CREATE TABLE store_health (
        id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
        checked_at INTEGER NOT NULL
     ) STRICT;