-- txn and txn_log keep their rows in their primary keys' B-trees (WITHOUT ROWID), and the
-- state index holds only the txns in doubt. As rowid tables each row lived twice: in the
-- table and in the index behind its TEXT primary key; and every txn entered txn_by_state
-- twice (voted, then decided) and stayed in it, so the index grew with the table and
-- every commit rewrote one of its pages. Now a vote inserts one txn row and its log rows,
-- its decision changes that row and leaves txn_in_doubt, and pruning deletes from two
-- B-trees instead of five. Same columns, same rows.
--
--   SELECT * FROM in_doubt;    -- walks txn_in_doubt: only the undecided txns
CREATE TABLE txn_new (
    txn_id       TEXT PRIMARY KEY NOT NULL,  -- hyphenated UUID
    protocol     TEXT NOT NULL,              -- '2pc' | '3pc'
    coordinator  INTEGER NOT NULL,           -- node id of the coordinator that asked
    state        TEXT NOT NULL CHECK (state IN ('prepared', 'waiting', 'precommitted',
                     'committed', 'aborted', 'heuristic_commit', 'heuristic_abort')),
    reason       TEXT,                       -- why it aborted
    created_at   TEXT NOT NULL,              -- when it was voted on
    decided_at   TEXT,                       -- when its outcome was recorded
    participants TEXT                        -- every participant, e.g. '1,2,3'
) STRICT, WITHOUT ROWID;
INSERT INTO txn_new (txn_id, protocol, coordinator, state, reason, created_at, decided_at,
                     participants)
    SELECT txn_id, protocol, coordinator, state, reason, created_at, decided_at, participants
    FROM txn;

CREATE TABLE txn_log_new (
    -- txn_new is renamed to txn below, and SQLite renames this reference with it.
    txn_id     TEXT    NOT NULL REFERENCES txn_new (txn_id),
    seq        INTEGER NOT NULL,
    key        TEXT    NOT NULL,
    op         TEXT    NOT NULL CHECK (op IN ('get', 'put', 'delete', 'add')),
    undo_value ANY,
    redo_value ANY,
    PRIMARY KEY (txn_id, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO txn_log_new (txn_id, seq, key, op, undo_value, redo_value)
    SELECT txn_id, seq, key, op, undo_value, redo_value FROM txn_log;

-- The views name txn and txn_log: dropped first, made again over the new tables below.
DROP VIEW in_doubt;
DROP VIEW txn_counts;
DROP TABLE txn_log;
DROP TABLE txn;
ALTER TABLE txn_new RENAME TO txn;
ALTER TABLE txn_log_new RENAME TO txn_log;

CREATE INDEX txn_in_doubt ON txn (state) WHERE state IN ('prepared', 'waiting', 'precommitted');

CREATE VIEW in_doubt AS
SELECT t.txn_id,
       t.protocol,
       t.coordinator,
       t.state,
       t.created_at,
       CAST(round((julianday('now') - julianday(t.created_at)) * 86400.0) AS INTEGER) AS age_s,
       (SELECT group_concat(DISTINCT l.key) FROM txn_log l WHERE l.txn_id = t.txn_id) AS keys,
       t.participants
FROM txn t
WHERE t.state IN ('prepared', 'waiting', 'precommitted')
ORDER BY t.created_at;

CREATE VIEW txn_counts AS
SELECT state, count(*) AS n FROM txn GROUP BY state ORDER BY state;
