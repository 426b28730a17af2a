//! Collecting votes: Yes, ReadOnly and No, the vote timeout, the commit record handed
//! out once all voted Yes, and the unlogged abort with its `Release` of read-only voters.

use expect_test::expect;
use wire::Vote;

use super::*;

/// A read on 1, a write on 2.
fn read_and_write() -> TxnSpec {
    spec(vec![(1, vec![get("a")]), (2, vec![add("b", 5)])])
}

#[test]
fn all_yes_persists_commit_and_sends_nothing_before_it_is_durable() {
    // While the record is not durable: no timeout, and queries say Undecided.
    check(
        coordinator,
        [
            at(0, submit(T1, transfer())),
            at(10, vote(1, T1, Vote::Yes)),
            at(11, vote(2, T1, Vote::Yes)),
            PROBE,
            tick(100_000),
            at(12, query(1, 9, T1)),
            at(20, persisted(1)),
        ],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @10 1 -> vote t1 Yes
            @11 2 -> vote t1 Yes
              persist 1: decided t1 2pc Commit [1, 2]
            ? timer none; 1 in flight; 2pc logging commit: 1
            @100000 timeout
            @12 1 -> #9 decision query t1
              1 <- #9 answer t1 Undecided
            @20 persisted 1
              1 <- decide t1 Commit
              2 <- decide t1 Commit
              client t1: committed
        "#]],
    );
}

#[test]
fn a_collecting_txn_aborts_unlogged_and_tells_only_those_that_may_have_prepared() {
    let three = || {
        spec(vec![
            (1, vec![add("a", -5)]),
            (2, vec![add("b", 5)]),
            (3, vec![add("c", 1)]),
        ])
    };
    check_rows(
        coordinator,
        [
            (
                "no vote",
                vec![
                    at(0, submit(T1, three())),
                    at(1, vote(1, T1, Vote::Yes)),
                    at(2, no(2, T1, "add on b would leave -1 below min 0")),
                    PROBE,
                ],
            ),
            (
                "missing vote at the timeout",
                vec![
                    at(0, submit(T1, transfer())),
                    at(10, vote(1, T1, Vote::Yes)),
                    tick(TIMEOUT_MS - 1),
                    tick(TIMEOUT_MS),
                    PROBE,
                ],
            ),
            (
                "the timeout names every missing participant",
                vec![at(0, submit(T1, transfer())), tick(TIMEOUT_MS)],
            ),
        ],
        expect![[r#"
            == no vote
            @0 submit t1 2pc 500 ms: 1 [add a -5 min 0]; 2 [add b 5 min 0]; 3 [add c 1 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2, 3]: add a -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2, 3]: add b 5 min 0
              3 <- prepare t1 2pc 500 ms of [1, 2, 3]: add c 1 min 0
            @1 1 -> vote t1 Yes
            @2 2 -> vote t1 No { reason: "add on b would leave -1 below min 0" }
              1 <- decide t1 Abort (participant 2 voted no: add on b would leave -1 below min 0)
              3 <- decide t1 Abort (participant 2 voted no: add on b would leave -1 below min 0)
              client t1: aborted: participant 2 voted no: add on b would leave -1 below min 0
            ? timer none; 0 in flight; no txns
            == missing vote at the timeout
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @10 1 -> vote t1 Yes
            @499 timeout
            @500 timeout
              1 <- decide t1 Abort (timeout waiting for votes from participant 2)
              2 <- decide t1 Abort (timeout waiting for votes from participant 2)
              client t1: aborted: timeout waiting for votes from participant 2
            ? timer none; 0 in flight; no txns
            == the timeout names every missing participant
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @500 timeout
              1 <- decide t1 Abort (timeout waiting for votes from participants 1, 2)
              2 <- decide t1 Abort (timeout waiting for votes from participants 1, 2)
              client t1: aborted: timeout waiting for votes from participants 1, 2
        "#]],
    );
}

#[test]
fn read_only_voter_gets_release_not_decide_at_abort() {
    check_rows(
        coordinator,
        [
            (
                "no vote",
                vec![
                    at(0, submit(T1, read_and_write())),
                    at(1, vote(1, T1, Vote::ReadOnly)),
                    at(2, no(2, T1, "lock conflict")),
                ],
            ),
            (
                "timeout",
                vec![
                    at(0, submit(T1, read_and_write())),
                    at(1, vote(1, T1, Vote::ReadOnly)),
                    tick(TIMEOUT_MS),
                ],
            ),
        ],
        expect![[r#"
            == no vote
            @0 submit t1 2pc 500 ms: 1 [get a]; 2 [add b 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: get a
              2 <- prepare t1 2pc 500 ms of [1, 2]: add b 5 min 0
            @1 1 -> vote t1 ReadOnly
            @2 2 -> vote t1 No { reason: "lock conflict" }
              1 <- release t1
              client t1: aborted: participant 2 voted no: lock conflict
            == timeout
            @0 submit t1 2pc 500 ms: 1 [get a]; 2 [add b 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: get a
              2 <- prepare t1 2pc 500 ms of [1, 2]: add b 5 min 0
            @1 1 -> vote t1 ReadOnly
            @500 timeout
              2 <- decide t1 Abort (timeout waiting for votes from participant 2)
              1 <- release t1
              client t1: aborted: timeout waiting for votes from participant 2
        "#]],
    );
}

#[test]
fn all_read_only_commits_with_reads_and_logs_nothing() {
    check(
        coordinator,
        [
            at(
                0,
                submit(T1, spec(vec![(1, vec![get("a")]), (2, vec![get("b")])])),
            ),
            at(1, vote_reads(1, T1, Vote::ReadOnly, vec![read("a", 1)])),
            at(2, vote_reads(2, T1, Vote::ReadOnly, vec![read("b", 2)])),
            PROBE,
        ],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [get a]; 2 [get b]
              1 <- prepare t1 2pc 500 ms of [1, 2]: get a
              2 <- prepare t1 2pc 500 ms of [1, 2]: get b
            @1 1 -> vote t1 ReadOnly, read [Read { key: "a", value: Some(Int(1)) }]
            @2 2 -> vote t1 ReadOnly, read [Read { key: "b", value: Some(Int(2)) }]
              1 <- release t1
              2 <- release t1
              client t1: committed, read [(NodeId(1), [Read { key: "a", value: Some(Int(1)) }]), (NodeId(2), [Read { key: "b", value: Some(Int(2)) }])]
            ? timer none; 0 in flight; no txns
        "#]],
    );
}

#[test]
fn read_only_voter_is_released_when_the_last_vote_arrives_not_logged_or_sent_commit() {
    // The lock point: the release goes before the commit record is even asked for.
    check(
        coordinator,
        [
            at(0, submit(T1, read_and_write())),
            at(1, vote(1, T1, Vote::ReadOnly)),
            at(2, vote(2, T1, Vote::Yes)),
            at(3, persisted(1)),
            at(4, ack(2, T1)),
        ],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [get a]; 2 [add b 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: get a
              2 <- prepare t1 2pc 500 ms of [1, 2]: add b 5 min 0
            @1 1 -> vote t1 ReadOnly
            @2 2 -> vote t1 Yes
              1 <- release t1
              persist 1: decided t1 2pc Commit [2]
            @3 persisted 1
              2 <- decide t1 Commit
              client t1: committed
            @4 2 -> ack t1 Committed
              persist 2: ended t1
        "#]],
    );
}

#[test]
fn a_single_participant_read_gets_no_release() {
    check(
        coordinator,
        [
            at(0, submit(T1, spec(vec![(1, vec![get("a")])]))),
            at(1, vote(1, T1, Vote::ReadOnly)),
        ],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [get a]
              1 <- prepare t1 2pc 500 ms of [1]: get a
            @1 1 -> vote t1 ReadOnly
              client t1: committed
        "#]],
    );
}

#[test]
fn duplicate_votes_are_ignored() {
    // Before the decision, while logging and after it: nothing.
    check(
        coordinator,
        [
            at(0, submit(T1, transfer())),
            at(1, vote(1, T1, Vote::Yes)),
            at(2, vote(1, T1, Vote::Yes)),
            at(3, no(1, T1, "late change of mind")),
            at(4, vote(2, T1, Vote::Yes)),
            at(5, vote(2, T1, Vote::Yes)),
            at(6, persisted(1)),
            at(7, no(2, T1, "x")),
        ],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @1 1 -> vote t1 Yes
            @2 1 -> vote t1 Yes
            @3 1 -> vote t1 No { reason: "late change of mind" }
            @4 2 -> vote t1 Yes
              persist 1: decided t1 2pc Commit [1, 2]
            @5 2 -> vote t1 Yes
            @6 persisted 1
              1 <- decide t1 Commit
              2 <- decide t1 Commit
              client t1: committed
            @7 2 -> vote t1 No { reason: "x" }
        "#]],
    );
}

#[test]
fn late_votes_and_acks_for_forgotten_txns_are_ignored() {
    check(
        coordinator,
        [
            at(0, submit(T1, transfer())),
            tick(TIMEOUT_MS),
            at(TIMEOUT_MS + 1, vote(1, T1, Vote::Yes)),
            at(TIMEOUT_MS + 2, ack(1, T1)),
            at(TIMEOUT_MS + 3, vote(1, 99, Vote::Yes)),
        ],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @500 timeout
              1 <- decide t1 Abort (timeout waiting for votes from participants 1, 2)
              2 <- decide t1 Abort (timeout waiting for votes from participants 1, 2)
              client t1: aborted: timeout waiting for votes from participants 1, 2
            @501 1 -> vote t1 Yes
            @502 1 -> ack t1 Committed
            @503 1 -> vote t99 Yes
        "#]],
    );
}

#[test]
fn vote_from_a_non_participant_is_ignored() {
    check(
        coordinator,
        [at(0, submit(T1, transfer())), at(1, no(3, T1, "x")), PROBE],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @1 3 -> vote t1 No { reason: "x" }
            ? timer 500; 1 in flight; 2pc collecting votes: 1
        "#]],
    );
}
