//! Participants' channels: `PeerUp` re-sends what is unanswered, `PeerDown` aborts what
//! cannot finish collecting (or gives up on a PreCommit ack), `SendFailed` on a Prepare
//! aborts.

use expect_test::expect;
use wire::Vote;

use super::*;
use crate::core::SendFailure;

fn send_failed(to: u32, txn: u128, failure: SendFailure) -> Input {
    Input::SendFailed {
        to: n(to),
        txn: txn_id(txn),
        failure,
    }
}

#[test]
fn participant_down_while_collecting_aborts_at_once() {
    let read_and_write = spec(vec![(1, vec![get("a")]), (2, vec![add("b", 5)])]);
    // A read-only voter's shared locks live in memory only: after a restart it holds
    // nothing, so the other votes could no longer form a lock point with its reads.
    // 3PC: a YES voter that is down could not get its PreCommit in time.
    check_rows(
        coordinator,
        [
            (
                "its vote is missing",
                vec![
                    at(0, submit(T1, transfer())),
                    at(1, vote(1, T1, Vote::Yes)),
                    at(2, down(2)),
                ],
            ),
            (
                "a read-only voter, before the last vote",
                vec![
                    at(0, submit(T1, read_and_write)),
                    at(1, vote(1, T1, Vote::ReadOnly)),
                    at(2, down(1)),
                ],
            ),
            (
                "a 3pc yes voter",
                vec![
                    at(0, submit(T1, transfer3())),
                    at(1, vote(1, T1, Vote::Yes)),
                    at(2, down(1)),
                ],
            ),
        ],
        expect![[r#"
            == its vote is missing
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @1 1 -> vote t1 Yes
            @2 down 2
              1 <- decide t1 Abort (participant 2 is down)
              client t1: aborted: participant 2 is down
            == a read-only voter, before the last vote
            @0 submit t1 2pc 500 ms: 1 [get a]; 2 [add b 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: get a
              2 <- prepare t1 2pc 500 ms of [1, 2]: add b 5 min 0
            @1 1 -> vote t1 ReadOnly
            @2 down 1
              2 <- decide t1 Abort (participant 1 is down)
              client t1: aborted: participant 1 is down
            == a 3pc yes voter
            @0 submit t1 3pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 3pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 3pc 500 ms of [1, 2]: add bob 5 min 0
            @1 1 -> vote t1 Yes
            @2 down 1
              2 <- decide t1 Abort (participant 1 is down)
              client t1: aborted: participant 1 is down
        "#]],
    );
}

#[test]
fn participant_down_after_voting_does_not_abort() {
    // 2PC: participant 2 is down: Commit goes only to 1, and to 2 once it is back.
    check(
        coordinator,
        [
            at(0, submit(T1, transfer())),
            at(1, vote(2, T1, Vote::Yes)),
            at(2, down(2)),
            at(3, vote(1, T1, Vote::Yes)),
            at(4, persisted(1)),
            at(5, up(2)),
        ],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @1 2 -> vote t1 Yes
            @2 down 2
            @3 1 -> vote t1 Yes
              persist 1: decided t1 2pc Commit [1, 2]
            @4 persisted 1
              1 <- decide t1 Commit
              client t1: committed
            @5 up 2
              2 <- decide t1 Commit
        "#]],
    );
}

#[test]
fn peer_up_resends_prepare_to_a_participant_whose_vote_is_missing() {
    // A reconnect (Up without Down: the old channel was replaced).
    check(
        coordinator,
        [
            at(0, submit(T1, transfer())),
            at(1, vote(1, T1, Vote::Yes)),
            at(2, up(2)),
            at(3, up(1)),
        ],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @1 1 -> vote t1 Yes
            @2 up 2
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @3 up 1
        "#]],
    );
}

#[test]
fn peer_up_resends_commit_to_a_participant_whose_ack_is_missing() {
    check(
        transfer_commit_durable,
        [at(21, ack(1, T1)), at(22, up(1)), at(23, up(2))],
        expect![[r#"
            @21 1 -> ack t1 Committed
            @22 up 1
            @23 up 2
              2 <- decide t1 Commit
        "#]],
    );
}

#[test]
fn send_queue_full_on_prepare_aborts_with_overload_reason() {
    check(
        coordinator,
        [
            at(0, submit(T1, transfer())),
            at(1, send_failed(2, T1, SendFailure::Overloaded)),
        ],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @1 send to 2 failed for t1: Overloaded
              1 <- decide t1 Abort (participant 2 is overloaded: its send queue is full)
              client t1: aborted: participant 2 is overloaded: its send queue is full
        "#]],
    );
}

#[test]
fn send_failure_on_commit_waits_for_the_resend() {
    check(
        transfer_commit_durable,
        [at(21, send_failed(2, T1, SendFailure::Overloaded)), PROBE],
        expect![[r#"
            @21 send to 2 failed for t1: Overloaded
            ? timer 1020; 1 in flight; 2pc committed, awaiting acks: 1
        "#]],
    );
}

#[test]
fn three_phase_participant_down_before_acking_precommit_is_treated_as_failed() {
    check(
        transfer3_precommitted,
        [at(25, pre_ack(1, T1)), at(26, down(2)), at(27, up(2))],
        expect![[r#"
            @25 1 -> ack t1 PreCommitted
            @26 down 2
              1 <- decide t1 Commit
            @27 up 2
              2 <- decide t1 Commit
        "#]],
    );
}

#[test]
fn three_phase_voter_down_when_the_precommit_is_durable_gets_docommit_on_return() {
    // Too late to abort at 15: the precommit may already be on disk.
    check(
        transfer3_voted_yes,
        [
            at(15, down(2)),
            at(20, persisted(1)),
            at(25, pre_ack(1, T1)),
            at(26, up(2)),
        ],
        expect![[r#"
            @15 down 2
            @20 persisted 1
              1 <- precommit t1
            @25 1 -> ack t1 PreCommitted
              1 <- decide t1 Commit
            @26 up 2
              2 <- decide t1 Commit
        "#]],
    );
}

#[test]
fn three_phase_peer_up_resends_precommit_and_its_ack_still_counts() {
    check(
        transfer3_precommitted,
        [
            at(25, pre_ack(1, T1)),
            at(26, up(1)),
            at(27, up(2)),
            at(28, pre_ack(2, T1)),
        ],
        expect![[r#"
            @25 1 -> ack t1 PreCommitted
            @26 up 1
            @27 up 2
              2 <- precommit t1
            @28 2 -> ack t1 PreCommitted
              1 <- decide t1 Commit
              2 <- decide t1 Commit
        "#]],
    );
}
