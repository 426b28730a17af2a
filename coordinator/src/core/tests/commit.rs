//! The durable commit: Decide{Commit}, the acks, the client's result, the lazy `Ended`
//! record, re-sends, and the answers to `DecisionQuery`.

use expect_test::expect;
use wire::{FromParticipant, Vote};

use super::*;
use crate::core::DECIDE_RESEND_MS_DEFAULT;

#[test]
fn happy_path_tells_the_client_at_the_durable_commit_and_ends_lazily_after_the_acks() {
    // In flight until the end record is durable.
    check(
        transfer_voted_yes,
        [
            at(20, persisted(1)),
            at(21, ack(1, T1)),
            at(22, ack(2, T1)),
            PROBE,
            at(23, persisted(2)),
            PROBE,
        ],
        expect![[r#"
            @20 persisted 1
              1 <- decide t1 Commit
              2 <- decide t1 Commit
              client t1: committed
            @21 1 -> ack t1 Committed
            @22 2 -> ack t1 Committed
              persist 2: ended t1
            ? timer none; 1 in flight; no txns
            @23 persisted 2
            ? timer none; 0 in flight; no txns
        "#]],
    );
}

#[test]
fn reads_of_yes_voters_are_returned_with_the_commit() {
    let txn = spec(vec![
        (1, vec![add("alice", -5), get("alice")]),
        (2, vec![add("bob", 5)]),
    ]);
    check(
        coordinator,
        [
            at(0, submit(T1, txn)),
            at(1, vote_reads(1, T1, Vote::Yes, vec![read("alice", 95)])),
            at(2, vote(2, T1, Vote::Yes)),
            at(3, persisted(1)),
            at(4, ack(1, T1)),
            at(5, ack(2, T1)),
        ],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0, get alice]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0, get alice
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @1 1 -> vote t1 Yes, read [Read { key: "alice", value: Some(Int(95)) }]
            @2 2 -> vote t1 Yes
              persist 1: decided t1 2pc Commit [1, 2]
            @3 persisted 1
              1 <- decide t1 Commit
              2 <- decide t1 Commit
              client t1: committed, read [(NodeId(1), [Read { key: "alice", value: Some(Int(95)) }])]
            @4 1 -> ack t1 Committed
            @5 2 -> ack t1 Committed
              persist 2: ended t1
        "#]],
    );
}

#[test]
fn duplicate_acks_are_ignored() {
    check(
        transfer_commit_durable,
        [
            at(21, ack(1, T1)),
            at(22, ack(1, T1)),
            at(23, ack(2, T1)),
            at(24, ack(2, T1)),
        ],
        expect![[r#"
            @21 1 -> ack t1 Committed
            @22 1 -> ack t1 Committed
            @23 2 -> ack t1 Committed
              persist 2: ended t1
            @24 2 -> ack t1 Committed
        "#]],
    );
}

#[test]
fn ack_before_the_decision_is_durable_is_ignored() {
    // The early ack did not count: after Persisted both acks are still needed.
    check(
        transfer_voted_yes,
        [
            at(12, ack(1, T1)),
            at(20, persisted(1)),
            at(21, ack(2, T1)),
            at(22, ack(1, T1)),
        ],
        expect![[r#"
            @12 1 -> ack t1 Committed
            @20 persisted 1
              1 <- decide t1 Commit
              2 <- decide t1 Commit
              client t1: committed
            @21 2 -> ack t1 Committed
            @22 1 -> ack t1 Committed
              persist 2: ended t1
        "#]],
    );
}

#[test]
fn a_missing_ack_gets_the_commit_resent() {
    // Durable at 20: the client hears at 20 + timeout, Decide goes again every resend
    // interval, and the late ack only ends the transaction (the client is not told twice).
    let resend_at = 20 + DECIDE_RESEND_MS_DEFAULT;
    check(
        transfer_commit_durable,
        [
            at(21, ack(1, T1)),
            PROBE,
            tick(20 + TIMEOUT_MS),
            PROBE,
            tick(resend_at),
            PROBE,
            at(resend_at + 1, ack(2, T1)),
            PROBE,
        ],
        expect![[r#"
            @21 1 -> ack t1 Committed
            ? timer 1020; 1 in flight; 2pc committed, awaiting acks: 1
            @520 timeout
            ? timer 1020; 1 in flight; 2pc committed, awaiting acks: 1
            @1020 timeout
              2 <- decide t1 Commit
            ? timer 2020; 1 in flight; 2pc committed, awaiting acks: 1
            @1021 2 -> ack t1 Committed
              persist 2: ended t1
            ? timer none; 1 in flight; no txns
        "#]],
    );
}

#[test]
fn decision_query_in_each_phase() {
    // Unknown: presumed abort. Ended and forgotten: every participant has applied the
    // commit, none will ask.
    check(
        coordinator,
        [
            at(0, query(1, 1, T1)),
            at(0, submit(T1, transfer())),
            at(1, query(1, 2, T1)),
            at(2, vote(1, T1, Vote::Yes)),
            at(3, vote(2, T1, Vote::Yes)),
            at(4, query(1, 3, T1)),
            at(5, persisted(1)),
            at(6, query(2, 4, T1)),
            at(7, ack(1, T1)),
            at(8, ack(2, T1)),
            at(9, query(2, 5, T1)),
        ],
        expect![[r#"
            @0 1 -> #1 decision query t1
              1 <- #1 answer t1 Abort
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @1 1 -> #2 decision query t1
              1 <- #2 answer t1 Undecided
            @2 1 -> vote t1 Yes
            @3 2 -> vote t1 Yes
              persist 1: decided t1 2pc Commit [1, 2]
            @4 1 -> #3 decision query t1
              1 <- #3 answer t1 Undecided
            @5 persisted 1
              1 <- decide t1 Commit
              2 <- decide t1 Commit
              client t1: committed
            @6 2 -> #4 decision query t1
              2 <- #4 answer t1 Commit
            @7 1 -> ack t1 Committed
            @8 2 -> ack t1 Committed
              persist 2: ended t1
            @9 2 -> #5 decision query t1
              2 <- #5 answer t1 Abort
        "#]],
    );
}

#[test]
fn decision_query_for_an_aborted_txn_answers_abort() {
    check(
        coordinator,
        [
            at(0, submit(T1, transfer())),
            at(1, no(2, T1, "x")),
            at(2, query(1, 1, T1)),
        ],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @1 2 -> vote t1 No { reason: "x" }
              1 <- decide t1 Abort (participant 2 voted no: x)
              client t1: aborted: participant 2 voted no: x
            @2 1 -> #1 decision query t1
              1 <- #1 answer t1 Abort
        "#]],
    );
}

#[test]
fn responses_nothing_waits_for_are_ignored() {
    let released = Input::Response {
        from: n(1),
        msg: FromParticipant::Released { txn: txn_id(T1) },
    };
    let refused = Input::Response {
        from: n(1),
        msg: FromParticipant::Refused {
            reason: "no".to_string(),
        },
    };
    check(
        transfer_commit_durable,
        [at(21, released), at(22, refused), PROBE],
        expect![[r#"
            @21 1 -> released t1
            @22 1 -> refused: no
            ? timer 1020; 1 in flight; 2pc committed, awaiting acks: 1
        "#]],
    );
}

#[test]
fn a_participant_aborted_by_hand_is_a_durable_hazard_and_the_commit_still_ends() {
    check(
        transfer_voted_yes,
        [
            at(20, persisted(1)),
            at(21, ack(1, T1)),
            at(22, ack_with(2, T1, Outcome::HeuristicAborted)),
            PROBE,
        ],
        expect![[r#"
            @20 persisted 1
              1 <- decide t1 Commit
              2 <- decide t1 Commit
              client t1: committed
            @21 1 -> ack t1 Committed
            @22 2 -> ack t1 HeuristicAborted
              persist 2: hazard t1 at 2: decided Commit, HeuristicAborted
              persist 3: ended t1
            ? timer none; 1 in flight; no txns
        "#]],
    );
}

#[test]
fn a_participant_committed_by_hand_agrees_with_the_commit() {
    check(
        transfer_voted_yes,
        [
            at(20, persisted(1)),
            at(21, ack_with(1, T1, Outcome::HeuristicCommitted)),
            at(22, ack(2, T1)),
        ],
        expect![[r#"
            @20 persisted 1
              1 <- decide t1 Commit
              2 <- decide t1 Commit
              client t1: committed
            @21 1 -> ack t1 HeuristicCommitted
            @22 2 -> ack t1 Committed
              persist 2: ended t1
        "#]],
    );
}
