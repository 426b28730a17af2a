//! Decide (2PC Commit/Abort, 3PC DoCommit/abort): Acks only once the outcome is durable
//! where the protocol needs it, duplicates, contradictions, and unknown txns.

use super::*;
use wire::FromParticipant;

#[test]
fn commit_is_acked_and_locks_released_only_once_durable() {
    let mut participant = participant();
    let t1 = txn(1);
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    step(
        &mut participant,
        0,
        decide(2, t1, Decision::Commit),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    // Still locked until durable (`committing.rs`: a later txn may read through it).
    assert_eq!(participant.locks_held(), 1);
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![ack(2, t1, Outcome::Committed)],
    );
    assert_eq!(participant.locks_held(), 0);
    assert_eq!(participant.poll_timeout(), None);
}

#[test]
fn decide_commit_twice_gets_the_same_ack() {
    let mut participant = participant();
    let t1 = txn(1);
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    step(
        &mut participant,
        0,
        decide(2, t1, Decision::Commit),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    step(&mut participant, 0, decide(3, t1, Decision::Commit), vec![]);
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            ack(2, t1, Outcome::Committed),
            ack(3, t1, Outcome::Committed),
        ],
    );
    step(
        &mut participant,
        0,
        decide(4, t1, Decision::Commit),
        vec![ack(4, t1, Outcome::Committed)],
    );
    // A contradicting abort is logged and answered with the truth.
    step(
        &mut participant,
        0,
        decide(5, t1, Decision::Abort),
        vec![ack(5, t1, Outcome::Committed)],
    );
}

#[test]
fn an_abort_records_the_reason_its_sender_gave() {
    let mut participant = participant();
    let t1 = txn(1);
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    let told = Input::Decide {
        from: from_coordinator(),
        id: RequestId(2),
        txn: t1,
        decision: Decision::Abort,
        reason: Some("participant 2 voted no: lock conflict".to_string()),
        stored: None,
    };
    step(
        &mut participant,
        0,
        told,
        vec![
            persist(
                2,
                aborted(
                    t1,
                    "aborted by the coordinator: participant 2 voted no: lock conflict",
                ),
            ),
            ack(2, t1, Outcome::Aborted),
        ],
    );
}

#[test]
fn a_decision_against_a_heuristic_outcome_is_answered_with_it() {
    // Resolved by hand while stopped: the store answers, and the coordinator sees the
    // heuristic outcome whichever way it decided.
    for (state, decision, outcome) in [
        (
            StoredState::HeuristicAbort,
            Decision::Commit,
            Outcome::HeuristicAborted,
        ),
        (
            StoredState::HeuristicCommit,
            Decision::Commit,
            Outcome::HeuristicCommitted,
        ),
        (
            StoredState::HeuristicCommit,
            Decision::Abort,
            Outcome::HeuristicCommitted,
        ),
    ] {
        let mut participant = participant();
        let t1 = txn(1);
        let stored = StoredTxn {
            txn: t1,
            protocol: wire::Protocol::TwoPhase,
            coordinator: COORDINATOR,
            state,
            reason: Some("heuristic by hand".to_string()),
            entries: Vec::new(),
            participants: vec![ME, HIGH],
        };
        step(
            &mut participant,
            0,
            Input::Decide {
                from: from_coordinator(),
                id: RequestId(2),
                txn: t1,
                decision,
                reason: None,
                stored: Some(stored),
            },
            vec![ack(2, t1, outcome)],
        );
        assert_eq!(participant.locks_held(), 0);
    }
}

#[test]
fn abort_while_committing_waits_for_the_commit_ack() {
    let mut participant = participant();
    let t1 = txn(1);
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    step(
        &mut participant,
        0,
        decide(2, t1, Decision::Commit),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    step(&mut participant, 0, decide(3, t1, Decision::Abort), vec![]);
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            ack(2, t1, Outcome::Committed),
            ack(3, t1, Outcome::Committed),
        ],
    );
}

#[test]
fn abort_in_doubt_releases_locks_and_acks_at_once() {
    let mut participant = participant();
    let t1 = txn(1);
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    step(
        &mut participant,
        0,
        decide(2, t1, Decision::Abort),
        vec![
            persist(2, aborted(t1, "aborted by the coordinator")),
            ack(2, t1, Outcome::Aborted),
        ],
    );
    assert_eq!(participant.locks_held(), 0);
    assert_eq!(participant.poll_timeout(), None);
    step(
        &mut participant,
        0,
        decide(3, t1, Decision::Abort),
        vec![ack(3, t1, Outcome::Aborted)],
    );
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![],
    );
    step(
        &mut participant,
        0,
        decide(4, t1, Decision::Commit),
        vec![ack(4, t1, Outcome::Aborted)],
    );
    step(
        &mut participant,
        0,
        prepare(5, t1, vec![put("a", 5)], &[("a", int(1))]),
        vec![no(5, t1, "aborted by the coordinator")],
    );
}

#[test]
fn abort_during_pending_prepare_records_aborted_after_it_and_votes_no() {
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
    let reason = "aborted by the coordinator before the vote";
    step(
        &mut participant,
        0,
        decide(2, t1, Decision::Abort),
        vec![
            persist(2, aborted(t1, reason)),
            no(1, t1, reason),
            ack(2, t1, Outcome::Aborted),
        ],
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
        vec![],
    );
    assert_eq!(participant.counts().aborted, 1);
}

#[test]
fn commit_before_the_vote_is_refused_with_an_error() {
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
    step(
        &mut participant,
        0,
        decide(2, t1, Decision::Commit),
        vec![reply(
            2,
            FromParticipant::Refused {
                reason: format!("commit for txn {t1} before this participant voted"),
            },
        )],
    );
}

#[test]
fn abort_in_waiting_is_acked_only_once_the_aborted_record_is_durable() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[COORDINATOR, LOW, HIGH]);
    let reason = "aborted by the coordinator";
    step(
        &mut participant,
        10,
        decide(2, t1, Decision::Abort),
        vec![persist(2, aborted3(t1, reason))],
    );
    assert_eq!(participant.locks_held(), 0);
    step(&mut participant, 10, decide(3, t1, Decision::Abort), vec![]);
    step(
        &mut participant,
        10,
        precommit_from(COORDINATOR, 4, t1),
        vec![],
    );
    step(
        &mut participant,
        20,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            ack(2, t1, Outcome::Aborted),
            ack(3, t1, Outcome::Aborted),
            ack(4, t1, Outcome::Aborted),
        ],
    );
    step(
        &mut participant,
        30,
        prepare3(5, t1, &ALL),
        vec![no(5, t1, reason)],
    );
    step(
        &mut participant,
        30,
        decide(6, t1, Decision::Commit),
        vec![ack(6, t1, Outcome::Aborted)],
    );
}
