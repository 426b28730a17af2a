-- Heuristic hazards: a participant reported an outcome an operator forced by hand
-- (`participant resolve`) that contradicts the decision this coordinator logged. The data
-- of that transaction is then not atomic across its participants, and only a person can
-- repair it: this table says which transaction, where, and what each side did.
--
--   SELECT * FROM heuristic_hazard;
CREATE TABLE heuristic_hazard (
    txn_id      TEXT    NOT NULL,   -- hyphenated UUID
    participant INTEGER NOT NULL,   -- node id of the participant resolved by hand
    decision    TEXT    NOT NULL CHECK (decision IN ('commit', 'abort')),  -- logged here
    outcome     TEXT    NOT NULL CHECK (outcome IN ('heuristic_commit', 'heuristic_abort')),
    found_at    TEXT    NOT NULL,   -- UTC, when the participant's answer arrived
    PRIMARY KEY (txn_id, participant)
) STRICT;
