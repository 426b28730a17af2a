//! A request about a txn the core no longer remembers is answered from the store's record
//! (the shell reads it when `knows` is false): Prepare repeats the stored vote, PreCommit
//! and Decide ack the stored outcome (presumed abort for none), StateQuery tells it. An
//! in-doubt record the core does not know is a shell bug, answered with an error.

use expect_test::expect;

use super::*;

fn stored_2pc(state: StoredState) -> Option<StoredTxn> {
    let logged = vec![
        entry(0, "g", OpKind::Get, int(2), int(2)),
        entry(1, "a", OpKind::Put, None, int(5)),
    ];
    let reason = matches!(state, StoredState::Aborted).then_some("lock conflict");
    Some(stored(txn(1), state, reason, logged))
}

fn stored_3pc(state: StoredState) -> Option<StoredTxn> {
    Some(stored3(txn(1), state, &[ME, LOW]))
}

fn prepare_with(stored: Option<StoredTxn>) -> Input {
    let mut input = prepare(1, txn(1), vec![put("a", 6)], &[("a", int(5))]);
    if let Input::Prepare { stored: slot, .. } = &mut input {
        *slot = stored;
    }
    input
}

fn precommit_with(stored: Option<StoredTxn>) -> Input {
    Input::PreCommit {
        from: from_coordinator(),
        id: RequestId(1),
        txn: txn(1),
        stored,
    }
}

fn decide_with(decision: Decision, stored: Option<StoredTxn>) -> Input {
    Input::Decide {
        from: from_coordinator(),
        id: RequestId(1),
        txn: txn(1),
        decision,
        reason: None,
        stored,
    }
}

fn state_query_with(stored: Option<StoredTxn>) -> Input {
    Input::StateQuery {
        from: from(LOW),
        id: RequestId(1),
        txn: txn(1),
        stored,
    }
}

#[test]
fn a_forgotten_txn_is_answered_from_its_stored_record() {
    use StoredState::{Aborted, Committed, HeuristicAbort, HeuristicCommit, ReadOnly, Waiting};
    let cases = [
        // Prepare: the stored vote, with the logged reads.
        (
            prepare_with(stored_2pc(Committed)),
            expect![[r#"
            reply 1#1: Vote { txn: t1, vote: Yes, reads: [Read { key: "g", value: Some(Int(2)) }] }
        "#]],
        ),
        (
            prepare_with(stored_2pc(Aborted)),
            expect![[r#"
            reply 1#1: Vote { txn: t1, vote: No { reason: "lock conflict" }, reads: [] }
        "#]],
        ),
        // PreCommit.
        (
            precommit_with(None),
            expect![[r#"
            reply 1#1: Ack { txn: t1, outcome: Unknown }
        "#]],
        ),
        (
            precommit_with(stored_3pc(Committed)),
            expect![[r#"
            reply 1#1: Ack { txn: t1, outcome: Committed }
        "#]],
        ),
        (
            precommit_with(stored_3pc(HeuristicCommit)),
            expect![[r#"
                reply 1#1: Ack { txn: t1, outcome: HeuristicCommitted }
            "#]],
        ),
        (
            precommit_with(stored_3pc(Aborted)),
            expect![[r#"
            reply 1#1: Ack { txn: t1, outcome: Aborted }
        "#]],
        ),
        (
            precommit_with(stored_3pc(Waiting)),
            expect![[r#"
            reply 1#1: Refused { reason: "txn t1 is in an unexpected state; try again" }
        "#]],
        ),
        // Decide: presumed abort for no record; a commit of nothing is unknown.
        (
            decide_with(Decision::Abort, None),
            expect![[r#"
            reply 1#1: Ack { txn: t1, outcome: Aborted }
        "#]],
        ),
        (
            decide_with(Decision::Commit, None),
            expect![[r#"
            reply 1#1: Ack { txn: t1, outcome: Unknown }
        "#]],
        ),
        (
            decide_with(Decision::Commit, stored_2pc(Committed)),
            expect![[r#"
                reply 1#1: Ack { txn: t1, outcome: Committed }
            "#]],
        ),
        (
            decide_with(Decision::Abort, stored_2pc(Committed)),
            expect![[r#"
                reply 1#1: Ack { txn: t1, outcome: Committed }
            "#]],
        ),
        (
            decide_with(Decision::Commit, stored_2pc(Aborted)),
            expect![[r#"
                reply 1#1: Ack { txn: t1, outcome: Aborted }
            "#]],
        ),
        (
            decide_with(Decision::Abort, stored_2pc(HeuristicAbort)),
            expect![[r#"
                reply 1#1: Ack { txn: t1, outcome: HeuristicAborted }
            "#]],
        ),
        (
            decide_with(Decision::Commit, stored_2pc(ReadOnly)),
            expect![[r#"
                reply 1#1: Ack { txn: t1, outcome: Committed }
            "#]],
        ),
        (
            decide_with(Decision::Commit, stored_3pc(Waiting)),
            expect![[r#"
                reply 1#1: Refused { reason: "txn t1 is in an unexpected state; try again" }
            "#]],
        ),
        // StateQuery: a read-only voter tells `Prepared`, which resolves nothing.
        (
            state_query_with(stored_3pc(Committed)),
            expect![[r#"
            reply 3#1: StateReply { txn: t1, state: Committed, recovered: false }
        "#]],
        ),
        (
            state_query_with(stored_3pc(Aborted)),
            expect![[r#"
            reply 3#1: StateReply { txn: t1, state: Aborted, recovered: false }
        "#]],
        ),
        (
            state_query_with(stored_3pc(ReadOnly)),
            expect![[r#"
            reply 3#1: StateReply { txn: t1, state: Prepared, recovered: false }
        "#]],
        ),
        (
            state_query_with(stored_3pc(Waiting)),
            expect![[r#"
            reply 3#1: Refused { reason: "txn t1 is in an unexpected state; try again" }
        "#]],
        ),
    ];
    for (input, expected) in cases {
        let participant = check(fresh, input, expected);
        // Answered from the store: nothing is remembered, nothing locked.
        assert!(!participant.knows(txn(1)));
        assert_eq!(participant.locks_held(), 0);
    }
}
