-- Retention: decided transactions older than the window (`--retain`) are deleted in small
-- batches, with their txn_log rows and read-only votes; in-doubt txns and heuristic marks
-- never are. One row says how far pruning went and how much it deleted.
--
-- horizon: the id bound pruning has used so far (hyphenated UUID; ids below it may be
-- gone, and messages about them are answered as forgotten). Only ever raised.
--
--   SELECT * FROM retention;                          -- horizon and rows pruned
--   SELECT min(txn_id), min(created_at) FROM txn;     -- oldest kept txn

CREATE TABLE retention (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    horizon              TEXT    NOT NULL,
    pruned_txns          INTEGER NOT NULL,
    pruned_log_rows      INTEGER NOT NULL,
    pruned_read_only     INTEGER NOT NULL,
    pruned_at            TEXT
) STRICT;

INSERT INTO retention (id, horizon, pruned_txns, pruned_log_rows, pruned_read_only)
VALUES (1, '00000000-0000-0000-0000-000000000000', 0, 0, 0);
