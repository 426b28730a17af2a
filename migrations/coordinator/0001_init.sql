-- The coordinator's decision log. Presumed abort: only commit decisions are logged in
-- 2PC (an abort is the answer for any transaction without a row); 'abort' is allowed for
-- protocols that must log it (3PC termination).
CREATE TABLE decision (
    txn_id       TEXT PRIMARY KEY,   -- hyphenated UUID (v7: time-ordered)
    protocol     TEXT NOT NULL,      -- '2pc'
    decision     TEXT NOT NULL CHECK (decision IN ('commit', 'abort')),
    participants TEXT NOT NULL,      -- comma-separated node ids that must apply it (the Yes voters)
    logged_at    TEXT NOT NULL,      -- UTC, e.g. 2025-01-31T12:00:00.123Z
    ended_at     TEXT                -- UTC; set once every participant acked
) STRICT;

-- Decisions whose end is not logged: what recovery re-sends.
CREATE VIEW unfinished AS
    SELECT txn_id, protocol, decision, participants, logged_at
    FROM decision
    WHERE ended_at IS NULL;

-- Recovery scans only the unfinished rows, however long the log grows.
CREATE INDEX decision_unfinished ON decision (txn_id) WHERE ended_at IS NULL;
