-- 3PC and the participant mesh.
--
-- txn.participants: every participant of the txn as its Prepare named them (comma-separated
-- node ids, e.g. '1,2,3'), so that a participant restarting in doubt knows whom to ask.
-- NULL for rows written before this migration and for txns never voted YES on.
--
-- A row with coordinator 0 was aborted because a peer asked about it (StateQuery) before
-- any Prepare arrived here: reason 'aborted before voting: asked by peer N'. Its protocol
-- is unknown then and recorded as '3pc'. A later Prepare for it votes NO.
--
-- read_only_vote: ReadOnly votes on txns with other participants. Such a vote changes
-- nothing and keeps no txn row, but it is made durable before it is sent so that a peer
-- asking about the txn later is told "not decided here", never "never voted" (which would
-- abort a txn the coordinator may commit).
--
--   SELECT * FROM in_doubt;   -- now with each txn's participants
--   SELECT * FROM read_only_vote WHERE txn_id = '...';

ALTER TABLE txn ADD COLUMN participants TEXT;

CREATE TABLE read_only_vote (
    txn_id      TEXT PRIMARY KEY NOT NULL,  -- hyphenated UUID
    protocol    TEXT NOT NULL,              -- '2pc' | '3pc'
    coordinator INTEGER NOT NULL,
    voted_at    TEXT NOT NULL
) STRICT;

DROP VIEW in_doubt;

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
