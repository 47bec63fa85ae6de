-- Issue 18: DVV's first-open verdict may be provisional until its settlement window has passed.
-- verdict_settles_at holds that moment (unix ms) while the stored first_open is provisional, and
-- is NULL once the verdict is settled (or for rows delivered before the contract had verdicts).
ALTER TABLE openings ADD COLUMN verdict_settles_at BIGINT;
