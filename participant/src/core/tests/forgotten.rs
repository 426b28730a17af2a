//! Requests about txns below the retention horizon that neither memory nor the store
//! knows (pruned, or never seen): no vote, no PreCommit ack and no state, since each
//! would claim what happened here; a Decide is acked with its own decision. A txn still
//! known, in memory or stored, is answered as before whatever its age.

use expect_test::expect;
use wire::retention::Horizon;

use super::*;

/// Every test id (`txn(n)`, n < 2^80) is below the horizon at 1 ms after the epoch.
fn forgetting(participant: &mut Participant) {
    participant.set_horizon(Horizon::at_unix_ms(1));
}

#[test]
fn a_prepare_below_the_horizon_gets_no_vote() {
    check(
        forgetting,
        prepare(1, txn(1), vec![put("a", 6)], &[("a", int(5))]),
        expect![[r#"
            reply 1#1: Refused { reason: "txn t1 is older than this participant's retention horizon: what happened to it here may have been pruned" }
        "#]],
    );
}

#[test]
fn a_state_query_below_the_horizon_aborts_nothing_and_claims_nothing() {
    check(
        forgetting,
        state_query_from(LOW, 1, txn(1)),
        expect![[r#"
            reply 3#1: Refused { reason: "txn t1 is older than this participant's retention horizon: what happened to it here may have been pruned" }
        "#]],
    );
}

#[test]
fn a_precommit_below_the_horizon_is_refused() {
    check(
        forgetting,
        precommit_from(COORDINATOR, 1, txn(1)),
        expect![[r#"
            reply 1#1: Refused { reason: "txn t1 is older than this participant's retention horizon: what happened to it here may have been pruned" }
        "#]],
    );
}

#[test]
fn a_decide_below_the_horizon_is_acked_with_its_decision() {
    check(
        forgetting,
        decide(1, txn(1), Decision::Commit),
        expect![[r#"
            reply 1#1: Ack { txn: t1, outcome: Committed }
        "#]],
    );
    check(
        forgetting,
        decide(1, txn(1), Decision::Abort),
        expect![[r#"
            reply 1#1: Ack { txn: t1, outcome: Aborted }
        "#]],
    );
}

#[test]
fn a_stored_txn_below_the_horizon_is_answered_from_its_record() {
    let mut input = state_query_from(LOW, 1, txn(1));
    if let Input::StateQuery { stored, .. } = &mut input {
        *stored = Some(stored3(txn(1), StoredState::Committed, &[ME, LOW]));
    }
    check(
        forgetting,
        input,
        expect![[r#"
            reply 3#1: StateReply { txn: t1, state: Committed, recovered: false }
        "#]],
    );
}

#[test]
fn a_txn_voted_on_before_the_horizon_passed_it_keeps_its_vote() {
    let mut participant = participant();
    let prepare = || prepare(1, txn(1), vec![put("a", 6)], &[("a", int(5))]);
    participant.handle(Millis(0), prepare());
    let _: Vec<Output> = std::iter::from_fn(|| participant.poll_output()).collect();
    forgetting(&mut participant);
    // In memory (in doubt here): the repeated Prepare waits for the same YES as before.
    participant.handle(Millis(1), prepare());
    assert_eq!(participant.poll_output(), None);
    participant.handle(Millis(2), Input::Persisted { lsn: Lsn(1) });
    let outputs: Vec<Output> = std::iter::from_fn(|| participant.poll_output()).collect();
    expect![[r#"
        reply 1#1: Vote { txn: t1, vote: Yes, reads: [] }
        reply 1#1: Vote { txn: t1, vote: Yes, reads: [] }
    "#]]
    .assert_eq(&render(&outputs));
    assert_eq!(participant.check_invariants(), Ok(()));
}

#[test]
fn the_horizon_never_moves_back() {
    let mut participant = participant();
    participant.set_horizon(Horizon::at_unix_ms(5));
    participant.set_horizon(Horizon::at_unix_ms(2));
    assert_eq!(participant.horizon(), Horizon::at_unix_ms(5));
}

/// The coordinator answers abort for every txn it no longer tracks, ended commits
/// included (presumed abort); that is safe because a participant that applied the
/// commit ignores it. Pruning the coordinator's ended rows relies on this.
#[test]
fn an_abort_answer_after_the_commit_changes_nothing() {
    let mut participant = participant();
    step(&mut participant, 0, up(COORDINATOR), vec![]);
    in_doubt_on_a(&mut participant, 0, txn(1), 1, 1);
    step(
        &mut participant,
        1,
        decide(2, txn(1), Decision::Commit),
        vec![persist(2, Record::Committed { txn: txn(1) })],
    );
    step(
        &mut participant,
        2,
        Input::Persisted { lsn: Lsn(2) },
        vec![ack(2, txn(1), Outcome::Committed)],
    );
    forgetting(&mut participant);
    let answer = Input::DecisionAnswer {
        from: COORDINATOR,
        txn: txn(1),
        answer: wire::Answer::Abort,
    };
    step(&mut participant, 3, answer, vec![]);
}
