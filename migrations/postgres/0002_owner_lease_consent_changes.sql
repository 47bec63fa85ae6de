-- Issue 17: the owner of the singleton work holds a lease rather than a session advisory lock, so
-- an owner that is frozen or cut off (its TCP session still open) is replaced once the lease runs
-- out; and consent changes are logged, so a replica whose LISTEN connection dropped catches up on
-- the ones it missed. Ids and times only.

-- The one owner of the events feed, webhook dispatch and retention: a random per-process holder
-- name, and when its lease runs out (the database's clock, so replicas' clocks do not matter).
CREATE TABLE owner_lease (
    id          INTEGER     NOT NULL PRIMARY KEY CHECK (id = 1),
    holder      TEXT        NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL
);

-- Consent changes the feed's owner published: DVV's opaque consent id, never an identity code.
-- Replicas apply them as NOTIFY brings them and read the ones after their last on reconnecting.
-- Rows older than a day are pruned.
CREATE TABLE consent_changes (
    seq          BIGSERIAL NOT NULL PRIMARY KEY,
    consent_id   TEXT      NOT NULL,
    revoked      BOOLEAN   NOT NULL,
    published_at BIGINT    NOT NULL
);
CREATE INDEX consent_changes_published_at ON consent_changes (published_at);
