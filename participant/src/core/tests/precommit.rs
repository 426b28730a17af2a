//! 3PC PreCommit: acked once `precommitted` is durable, never moving a txn back, refused
//! before the vote or under 2PC, and answered from the store for a forgotten txn.

use super::*;
use wire::FromParticipant;

#[test]
fn precommit_is_acked_once_durable_then_docommit_commits() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[COORDINATOR, LOW, HIGH]);
    step(
        &mut participant,
        10,
        precommit_from(COORDINATOR, 2, t1),
        vec![persist(2, Record::PreCommitted { txn: t1 })],
    );
    // A duplicate waits for the same record; a peer asking hears the state it makes durable.
    step(
        &mut participant,
        10,
        precommit_from(COORDINATOR, 3, t1),
        vec![],
    );
    step(&mut participant, 10, state_query_from(LOW, 4, t1), vec![]);
    step(
        &mut participant,
        20,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            ack(2, t1, Outcome::PreCommitted),
            ack(3, t1, Outcome::PreCommitted),
            state_to(LOW, 4, t1, TxnState::PreCommitted),
        ],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(2_020)));
    assert_eq!(participant.counts().precommitted, 1);
    step(
        &mut participant,
        30,
        precommit_from(COORDINATOR, 5, t1),
        vec![ack(5, t1, Outcome::PreCommitted)],
    );
    step(
        &mut participant,
        40,
        decide(6, t1, Decision::Commit),
        vec![persist(3, Record::Committed { txn: t1 })],
    );
    step(
        &mut participant,
        50,
        Input::Persisted { lsn: Lsn(3) },
        vec![ack(6, t1, Outcome::Committed)],
    );
    assert_eq!(participant.poll_timeout(), None);
    assert_eq!(participant.locks_held(), 0);
    // Late messages get the outcome.
    step(
        &mut participant,
        60,
        precommit_from(COORDINATOR, 7, t1),
        vec![ack(7, t1, Outcome::Committed)],
    );
    step(
        &mut participant,
        60,
        state_query_from(LOW, 8, t1),
        vec![state_to(LOW, 8, t1, TxnState::Committed)],
    );
}

/// The model checker's path (`mc --protocol 3pc --txns 1 --crashes 1
/// --timer-firings-max 1`): a termination leader's commit is being persisted when the
/// coordinator's PreCommit arrives. `precommitted` is durable, so that is the Ack, at once
/// (the same a duplicate PreCommit gets); it used to wait on the commit's record.
#[test]
fn precommit_while_the_commit_is_persisted_is_acked_from_the_durable_precommit() {
    let mut participant = participant();
    let t1 = txn(1);
    precommitted_txn(&mut participant, t1, &ALL, &[COORDINATOR, LOW, HIGH]);
    step(
        &mut participant,
        20,
        decide_from(LOW, 3, t1, Decision::Commit),
        vec![persist(3, Record::Committed { txn: t1 })],
    );
    step(
        &mut participant,
        30,
        precommit_from(COORDINATOR, 4, t1),
        vec![ack(4, t1, Outcome::PreCommitted)],
    );
    step(
        &mut participant,
        40,
        Input::Persisted { lsn: Lsn(3) },
        vec![ack_to(LOW, 3, t1, Outcome::Committed)],
    );
    step(
        &mut participant,
        50,
        precommit_from(COORDINATOR, 5, t1),
        vec![ack(5, t1, Outcome::Committed)],
    );
}

/// Committing straight from `waiting` (a DoCommit from a termination leader): a PreCommit
/// then has nothing durable to be answered from, so it waits for the commit and hears
/// Committed; the state never goes back to `precommitted`.
#[test]
fn precommit_while_a_commit_from_waiting_is_persisted_hears_committed() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[COORDINATOR, LOW, HIGH]);
    step(
        &mut participant,
        20,
        decide_from(LOW, 2, t1, Decision::Commit),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    step(
        &mut participant,
        30,
        precommit_from(COORDINATOR, 3, t1),
        vec![],
    );
    step(
        &mut participant,
        40,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            ack_to(LOW, 2, t1, Outcome::Committed),
            ack(3, t1, Outcome::Committed),
        ],
    );
}

#[test]
fn precommit_before_the_vote_or_on_a_2pc_txn_is_refused() {
    let mut participant = participant();
    let t1 = txn(1);
    step(
        &mut participant,
        0,
        prepare3(1, t1, &[ME]),
        vec![persist(1, waiting_record(t1, &[ME]))],
    );
    step(
        &mut participant,
        0,
        precommit_from(COORDINATOR, 2, t1),
        vec![reply(
            2,
            FromParticipant::Refused {
                reason: format!("PreCommit for txn {t1} before this participant voted"),
            },
        )],
    );
    let mut participant = self::participant();
    let t2 = txn(2);
    in_doubt_on_a(&mut participant, 0, t2, 1, 1);
    step(
        &mut participant,
        0,
        precommit_from(COORDINATOR, 2, t2),
        vec![reply(
            2,
            FromParticipant::Refused {
                reason: format!("PreCommit for txn {t2}, which runs 2PC"),
            },
        )],
    );
}
