-- Retention: ended decisions older than the window (`--retain`) are deleted in small
-- batches; unfinished ones never are. One row counts what pruning deleted.
--
--   SELECT * FROM retention;                       -- decisions pruned, and when last
--   SELECT min(txn_id), min(logged_at) FROM decision;  -- oldest kept decision

CREATE TABLE retention (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_decisions  INTEGER NOT NULL,
    pruned_at         TEXT
) STRICT;

INSERT INTO retention (id, pruned_decisions) VALUES (1, 0);
