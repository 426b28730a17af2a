-- 3PC: a logged commit (the precommit) can be turned into an abort when a participant
-- reports that its termination protocol aborted (while the coordinator was down, or
-- under the partition limit). The row then says 'abort', why, and is ended at once.
ALTER TABLE decision ADD COLUMN reason TEXT;  -- NULL unless an abort was adopted

-- What the log holds, per protocol and decision: `SELECT * FROM decision_counts`.
CREATE VIEW decision_counts AS
    SELECT protocol, decision, count(*) AS txns, count(ended_at) AS ended
    FROM decision
    GROUP BY protocol, decision;
