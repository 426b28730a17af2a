-- decision keeps its rows in the primary key's B-tree (WITHOUT ROWID). As a rowid table
-- each row lived twice, in the table and in the index behind its TEXT primary key, so
-- every decision, its end and its pruning changed one B-tree more than needed. Same
-- columns, same rows; the unfinished index and both views as before.
CREATE TABLE decision_new (
    txn_id       TEXT PRIMARY KEY NOT NULL,  -- hyphenated UUID (v7: time-ordered)
    protocol     TEXT NOT NULL,              -- '2pc' | '3pc'
    decision     TEXT NOT NULL CHECK (decision IN ('commit', 'abort')),
    participants TEXT NOT NULL,              -- comma-separated node ids that must apply it
    logged_at    TEXT NOT NULL,              -- UTC, e.g. 2025-01-31T12:00:00.123Z
    ended_at     TEXT,                       -- UTC; set once every participant acked
    reason       TEXT                        -- NULL unless an abort was adopted
) STRICT, WITHOUT ROWID;
INSERT INTO decision_new (txn_id, protocol, decision, participants, logged_at, ended_at, reason)
    SELECT txn_id, protocol, decision, participants, logged_at, ended_at, reason FROM decision;

DROP VIEW unfinished;
DROP VIEW decision_counts;
DROP TABLE decision;
ALTER TABLE decision_new RENAME TO decision;

-- Recovery scans only the unfinished rows, however long the log grows.
CREATE INDEX decision_unfinished ON decision (txn_id) WHERE ended_at IS NULL;

-- Decisions whose end is not logged: what recovery re-sends.
CREATE VIEW unfinished AS
    SELECT txn_id, protocol, decision, participants, logged_at
    FROM decision
    WHERE ended_at IS NULL;

-- What the log holds, per protocol and decision: `SELECT * FROM decision_counts`.
CREATE VIEW decision_counts AS
    SELECT protocol, decision, count(*) AS txns, count(ended_at) AS ended
    FROM decision
    GROUP BY protocol, decision;
