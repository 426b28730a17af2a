-- The participant's database: its shard of data (kv), one row per transaction it voted on
-- (txn) and every operation of a YES vote with its before/after images (txn_log).
-- Times are UTC text, e.g. 2026-11-22T02:09:10.123Z. NULL values in txn_log mean "key absent".
--
-- Questions to ask it with sqlite3:
--   SELECT * FROM in_doubt;                     -- voted YES, outcome unknown (locks held)
--   SELECT * FROM txn_counts;                   -- transactions per state
--   SELECT sum(value) FROM kv;                  -- integers stay INTEGER
--   SELECT * FROM txn_log WHERE txn_id = '...'; -- what a transaction did, op by op

-- The data. Deferred updates: a row changes only when a transaction's commit is applied.
CREATE TABLE kv (
    key            TEXT PRIMARY KEY NOT NULL,
    value          ANY  NOT NULL,
    updated_at     TEXT,
    updated_by_txn TEXT
) STRICT;

CREATE TABLE txn (
    txn_id      TEXT PRIMARY KEY NOT NULL,  -- hyphenated UUID
    protocol    TEXT NOT NULL,              -- '2pc' | '3pc'
    coordinator INTEGER NOT NULL,           -- node id of the coordinator that asked
    state       TEXT NOT NULL CHECK (state IN ('prepared', 'waiting', 'precommitted',
                    'committed', 'aborted', 'heuristic_commit', 'heuristic_abort')),
    reason      TEXT,                       -- why it aborted
    created_at  TEXT NOT NULL,              -- when it was voted on
    decided_at  TEXT                        -- when its outcome was recorded
) STRICT;

CREATE INDEX txn_by_state ON txn (state);

-- One row per operation of a YES vote, in op order. Commit applies the redo images of
-- the writes in seq order; 'get' rows record what was read (undo = redo = value read)
-- and keep the read lock across a restart.
CREATE TABLE txn_log (
    txn_id     TEXT    NOT NULL REFERENCES txn (txn_id),
    seq        INTEGER NOT NULL,
    key        TEXT    NOT NULL,
    op         TEXT    NOT NULL CHECK (op IN ('get', 'put', 'delete', 'add')),
    undo_value ANY,
    redo_value ANY,
    PRIMARY KEY (txn_id, seq)
) STRICT;

CREATE VIEW in_doubt AS
SELECT t.txn_id,
       t.protocol,
       t.coordinator,
       t.state,
       t.created_at,
       CAST(round((julianday('now') - julianday(t.created_at)) * 86400.0) AS INTEGER) AS age_s,
       (SELECT group_concat(DISTINCT l.key) FROM txn_log l WHERE l.txn_id = t.txn_id) AS keys
FROM txn t
WHERE t.state IN ('prepared', 'waiting', 'precommitted')
ORDER BY t.created_at;

CREATE VIEW txn_counts AS
SELECT state, count(*) AS n FROM txn GROUP BY state ORDER BY state;
