-- Read holds survive a restart. A ReadOnly voter of a txn with other participants keeps
-- shared locks on the keys it read until every vote is in (the global lock point); those
-- locks were in memory only, so a voter that crashed and restarted before its coordinator
-- noticed could let a writer in between, and a read across participants could see half of
-- a transfer. The vote now records the keys it read and the hold's deadline, and recovery
-- takes those shared locks again until the deadline (or a Release or Decide).
--
--   SELECT * FROM read_only_vote WHERE hold_until_ms > 1000 * unixepoch('now');  -- holds
--   SELECT * FROM read_only_key WHERE txn_id = '...';                             -- keys

-- The hold's deadline in Unix milliseconds by this database's (SQLite's) wall clock when
-- the vote's record was written (after the vote, before it is sent): vote + timeout, at
-- least. NULL for votes recorded before this migration (they hold nothing on restart).
ALTER TABLE read_only_vote ADD COLUMN hold_until_ms INTEGER;
-- The txn's timeout_ms, the hold's length: recovery never holds longer than this.
ALTER TABLE read_only_vote ADD COLUMN hold_ms INTEGER;

-- Recovery reads only the holds whose deadline has not passed.
CREATE INDEX read_only_vote_by_hold ON read_only_vote (hold_until_ms);

-- The keys a ReadOnly vote read (and holds shared). Deleted with its read_only_vote row.
CREATE TABLE read_only_key (
    txn_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    PRIMARY KEY (txn_id, key)
) STRICT, WITHOUT ROWID;
