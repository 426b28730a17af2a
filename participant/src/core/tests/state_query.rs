//! StateQuery from a peer or a recovering coordinator: the durable state, and a txn never
//! voted YES on aborted durably before the answer.

use super::*;

#[test]
fn state_query_on_an_unknown_txn_aborts_it_durably_before_answering() {
    let mut participant = participant();
    let t1 = txn(1);
    let reason = "aborted before voting: asked by peer 3";
    step(
        &mut participant,
        0,
        state_query_from(LOW, 1, t1),
        vec![persist(
            1,
            Record::Aborted {
                txn: t1,
                protocol: Protocol::ThreePhase,
                coordinator: NodeId(0),
                reason: reason.to_string(),
            },
        )],
    );
    step(&mut participant, 0, state_query_from(HIGH, 2, t1), vec![]);
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![
            state_to(LOW, 1, t1, TxnState::Aborted),
            state_to(HIGH, 2, t1, TxnState::Aborted),
        ],
    );
    // The Prepare arriving later gets NO.
    step(
        &mut participant,
        0,
        prepare3(3, t1, &[ME, LOW, HIGH]),
        vec![no(3, t1, reason)],
    );
    assert_eq!(participant.locks_held(), 0);
}

#[test]
fn state_query_before_the_3pc_vote_is_durable_aborts_and_both_answers_wait() {
    let mut participant = participant();
    let t1 = txn(1);
    step(&mut participant, 0, up(LOW), vec![]);
    step(
        &mut participant,
        0,
        prepare3(1, t1, &[ME, LOW]),
        vec![persist(1, waiting_record(t1, &[ME, LOW]))],
    );
    let reason = "aborted before voting: asked by peer 3";
    step(
        &mut participant,
        0,
        state_query_from(LOW, 2, t1),
        vec![persist(2, aborted3(t1, reason))],
    );
    assert_eq!(participant.locks_held(), 0);
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![],
    );
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![no(1, t1, reason), state_to(LOW, 2, t1, TxnState::Aborted)],
    );
}

#[test]
fn state_query_before_the_2pc_vote_is_durable_votes_no_at_once() {
    let mut participant = participant();
    let t1 = txn(1);
    step(
        &mut participant,
        0,
        prepare(1, t1, vec![put("a", 5)], &[("a", None)]),
        vec![persist(
            1,
            prepared(t1, vec![entry(0, "a", OpKind::Put, None, int(5))]),
        )],
    );
    let reason = "aborted before voting: asked by peer 3";
    // Presumed abort lets the NO go at once; the state told to a peer waits.
    step(
        &mut participant,
        0,
        state_query_from(LOW, 2, t1),
        vec![persist(2, aborted(t1, reason)), no(1, t1, reason)],
    );
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![state_to(LOW, 2, t1, TxnState::Aborted)],
    );
}

#[test]
fn state_query_on_a_voted_txn_answers_its_durable_state() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    step(
        &mut participant,
        0,
        state_query_from(LOW, 2, t1),
        vec![state_to(LOW, 2, t1, TxnState::Prepared)],
    );
    // Committing: the answer waits for the record.
    step(
        &mut participant,
        0,
        decide(3, t1, Decision::Commit),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    step(&mut participant, 0, state_query_from(LOW, 4, t1), vec![]);
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            ack(3, t1, Outcome::Committed),
            state_to(LOW, 4, t1, TxnState::Committed),
        ],
    );
    let mut participant = self::participant();
    waiting_txn(&mut participant, t2, &[ME, LOW], &[LOW]);
    step(
        &mut participant,
        10,
        state_query_from(LOW, 2, t2),
        vec![state_to(LOW, 2, t2, TxnState::Waiting)],
    );
}
