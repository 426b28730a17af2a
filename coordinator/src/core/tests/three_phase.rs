//! 3PC: the precommit guard, PreCommit and its acks (and their timeout), DoCommit.
//!
//! Times: CanCommit at 0 with `TIMEOUT_MS` 500 and the default precommit margin 200, so
//! votes are due at 300; the precommit becomes durable at 20, PreCommit acks are due at
//! 20 + `PRECOMMIT_ACK_TIMEOUT_MS_DEFAULT`.

use expect_test::expect;
use wire::{Outcome, Vote};

use super::*;
use crate::core::{
    Config, DECIDE_RESEND_MS_DEFAULT, PRECOMMIT_ACK_TIMEOUT_MS_DEFAULT, PRECOMMIT_MARGIN_MS_DEFAULT,
};

const VOTES_DUE: u64 = TIMEOUT_MS - PRECOMMIT_MARGIN_MS_DEFAULT;
const ACKS_DUE: u64 = 20 + PRECOMMIT_ACK_TIMEOUT_MS_DEFAULT;

/// The 3PC transfer with 1's Yes vote in at 10.
fn one_yes() -> Coordinator {
    let mut core = coordinator();
    apply(
        &mut core,
        [
            at(0, submit(T1, transfer3())),
            at(10, vote(1, T1, Vote::Yes)),
        ],
    );
    core
}

#[test]
fn three_phase_all_yes_logs_the_precommit_and_sends_nothing_before_it_is_durable() {
    check(
        coordinator,
        [
            at(0, submit(T1, transfer3())),
            at(10, vote(1, T1, Vote::Yes)),
            at(11, vote(2, T1, Vote::Yes)),
            PROBE,
            tick(100_000),
            at(12, query(1, 9, T1)),
            at(20, persisted(1)),
            PROBE,
        ],
        expect![[r#"
            @0 submit t1 3pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 3pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 3pc 500 ms of [1, 2]: add bob 5 min 0
            @10 1 -> vote t1 Yes
            @11 2 -> vote t1 Yes
              persist 1: decided t1 3pc Commit [1, 2]
            ? timer none; 1 in flight; 3pc logging commit: 1
            @100000 timeout
            @12 1 -> #9 decision query t1
              1 <- #9 answer t1 Undecided
            @20 persisted 1
              1 <- precommit t1
              2 <- precommit t1
            ? timer 1020; 1 in flight; 3pc precommitted, awaiting precommit acks: 1
        "#]],
    );
}

#[test]
fn three_phase_votes_are_due_before_the_precommit_deadline() {
    // At the deadline the vote timer has not been handled yet, but the waiting timeout
    // may be near: too late to precommit.
    check_rows(
        one_yes,
        [
            (
                "the last yes at the deadline aborts unlogged",
                vec![at(VOTES_DUE, vote(2, T1, Vote::Yes)), PROBE],
            ),
            (
                "the last yes just before it logs the precommit",
                vec![at(VOTES_DUE - 1, vote(2, T1, Vote::Yes))],
            ),
            (
                "a missing vote at the deadline aborts",
                vec![tick(VOTES_DUE - 1), tick(VOTES_DUE)],
            ),
        ],
        expect![[r#"
            == the last yes at the deadline aborts unlogged
            @300 2 -> vote t1 Yes
              1 <- decide t1 Abort (all voted yes too late to precommit safely: a participant's waiting timeout (500 ms after CanCommit) may have fired (votes are due 200 ms before it))
              2 <- decide t1 Abort (all voted yes too late to precommit safely: a participant's waiting timeout (500 ms after CanCommit) may have fired (votes are due 200 ms before it))
              client t1: aborted: all voted yes too late to precommit safely: a participant's waiting timeout (500 ms after CanCommit) may have fired (votes are due 200 ms before it)
            ? timer none; 0 in flight; no txns
            == the last yes just before it logs the precommit
            @299 2 -> vote t1 Yes
              persist 1: decided t1 3pc Commit [1, 2]
            == a missing vote at the deadline aborts
            @299 timeout
            @300 timeout
              1 <- decide t1 Abort (timeout waiting for votes from participant 2)
              2 <- decide t1 Abort (timeout waiting for votes from participant 2)
              client t1: aborted: timeout waiting for votes from participant 2
        "#]],
    );
}

#[test]
fn three_phase_precommit_durable_at_the_deadline_sends_no_precommit_and_adopts_abort() {
    // A slow group commit (issue 7 bug 2): the record is durable only at the deadline.
    // A participant's waiting timeout may fire before a PreCommit sent now arrives.
    check(
        transfer3_voted_yes,
        [
            at(VOTES_DUE, persisted(1)),
            at(VOTES_DUE + 1, query(1, 1, T1)),
            at(VOTES_DUE + 2, persisted(2)),
            PROBE,
        ],
        expect![[r#"
            @300 persisted 1
              persist 2: abort adopted t1: the precommit record became durable after the PreCommit deadline (300 ms after CanCommit, 200 ms before the participants' waiting timeout): a participant may have timed out, so no PreCommit was sent
            @301 1 -> #1 decision query t1
              1 <- #1 answer t1 Undecided
            @302 persisted 2
              1 <- decide t1 Abort (the precommit record became durable after the PreCommit deadline (300 ms after CanCommit, 200 ms before the participants' waiting timeout): a participant may have timed out, so no PreCommit was sent)
              2 <- decide t1 Abort (the precommit record became durable after the PreCommit deadline (300 ms after CanCommit, 200 ms before the participants' waiting timeout): a participant may have timed out, so no PreCommit was sent)
              client t1: aborted: the precommit record became durable after the PreCommit deadline (300 ms after CanCommit, 200 ms before the participants' waiting timeout): a participant may have timed out, so no PreCommit was sent
            ? timer none; 0 in flight; no txns
        "#]],
    );
}

#[test]
fn three_phase_precommit_durable_just_before_the_deadline_sends_precommit() {
    check(
        transfer3_voted_yes,
        [at(VOTES_DUE - 1, persisted(1))],
        expect![[r#"
            @299 persisted 1
              1 <- precommit t1
              2 <- precommit t1
        "#]],
    );
}

#[test]
fn three_phase_no_vote_aborts_unlogged() {
    check(
        coordinator,
        [
            at(0, submit(T1, transfer3())),
            at(1, no(1, T1, "add on alice would leave -5 below min 0")),
        ],
        expect![[r#"
            @0 submit t1 3pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 3pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 3pc 500 ms of [1, 2]: add bob 5 min 0
            @1 1 -> vote t1 No { reason: "add on alice would leave -5 below min 0" }
              2 <- decide t1 Abort (participant 1 voted no: add on alice would leave -5 below min 0)
              client t1: aborted: participant 1 voted no: add on alice would leave -5 below min 0
        "#]],
    );
}

#[test]
fn three_phase_read_only_voter_gets_no_precommit() {
    check(
        coordinator,
        [
            at(
                0,
                submit(T1, spec3(vec![(1, vec![get("a")]), (2, vec![add("b", 5)])])),
            ),
            at(1, vote(1, T1, Vote::ReadOnly)),
            at(2, vote(2, T1, Vote::Yes)),
            at(3, persisted(1)),
            at(4, pre_ack(2, T1)),
        ],
        expect![[r#"
            @0 submit t1 3pc 500 ms: 1 [get a]; 2 [add b 5 min 0]
              1 <- prepare t1 3pc 500 ms of [1, 2]: get a
              2 <- prepare t1 3pc 500 ms of [1, 2]: add b 5 min 0
            @1 1 -> vote t1 ReadOnly
            @2 2 -> vote t1 Yes
              1 <- release t1
              persist 1: decided t1 3pc Commit [2]
            @3 persisted 1
              2 <- precommit t1
            @4 2 -> ack t1 PreCommitted
              2 <- decide t1 Commit
        "#]],
    );
}

#[test]
fn three_phase_happy_path_precommits_docommits_then_ends() {
    check(
        coordinator,
        [
            at(0, submit(T1, transfer3())),
            at(10, vote(1, T1, Vote::Yes)),
            at(11, vote(2, T1, Vote::Yes)),
            at(20, persisted(1)),
            at(25, pre_ack(1, T1)),
            at(30, pre_ack(2, T1)),
            at(31, ack(1, T1)),
            at(32, ack(2, T1)),
            at(33, persisted(2)),
            PROBE,
        ],
        expect![[r#"
            @0 submit t1 3pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 3pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 3pc 500 ms of [1, 2]: add bob 5 min 0
            @10 1 -> vote t1 Yes
            @11 2 -> vote t1 Yes
              persist 1: decided t1 3pc Commit [1, 2]
            @20 persisted 1
              1 <- precommit t1
              2 <- precommit t1
            @25 1 -> ack t1 PreCommitted
            @30 2 -> ack t1 PreCommitted
              1 <- decide t1 Commit
              2 <- decide t1 Commit
            @31 1 -> ack t1 Committed
            @32 2 -> ack t1 Committed
              client t1: committed
              persist 2: ended t1
            @33 persisted 2
            ? timer none; 0 in flight; no txns
        "#]],
    );
}

#[test]
fn three_phase_duplicate_and_late_precommit_acks_are_ignored() {
    // A duplicate PreCommit ack while DoCommit acks are awaited does not count as one;
    // after the end, nothing.
    check(
        transfer3_precommitted,
        [
            at(25, pre_ack(1, T1)),
            at(26, pre_ack(1, T1)),
            at(30, pre_ack(2, T1)),
            at(31, pre_ack(2, T1)),
            at(32, ack(1, T1)),
            at(33, ack(2, T1)),
            at(34, pre_ack(2, T1)),
        ],
        expect![[r#"
            @25 1 -> ack t1 PreCommitted
            @26 1 -> ack t1 PreCommitted
            @30 2 -> ack t1 PreCommitted
              1 <- decide t1 Commit
              2 <- decide t1 Commit
            @31 2 -> ack t1 PreCommitted
            @32 1 -> ack t1 Committed
            @33 2 -> ack t1 Committed
              client t1: committed
              persist 2: ended t1
            @34 2 -> ack t1 PreCommitted
        "#]],
    );
}

#[test]
fn three_phase_precommit_ack_before_the_precommit_is_durable_is_ignored() {
    check(
        transfer3_voted_yes,
        [
            at(12, pre_ack(1, T1)),
            at(20, persisted(1)),
            at(21, pre_ack(2, T1)),
            at(22, pre_ack(1, T1)),
        ],
        expect![[r#"
            @12 1 -> ack t1 PreCommitted
            @20 persisted 1
              1 <- precommit t1
              2 <- precommit t1
            @21 2 -> ack t1 PreCommitted
            @22 1 -> ack t1 PreCommitted
              1 <- decide t1 Commit
              2 <- decide t1 Commit
        "#]],
    );
}

#[test]
fn three_phase_committed_answers_to_precommit_count_as_committed_there() {
    // A termination leader committed it: DoCommit only to the one that has not, and none
    // at all once both said so.
    check_rows(
        transfer3_precommitted,
        [
            (
                "one committed",
                vec![
                    at(25, pre_ack(1, T1)),
                    at(26, ack_with(2, T1, Outcome::Committed)),
                    at(27, ack(1, T1)),
                ],
            ),
            (
                "both committed",
                vec![
                    at(25, ack_with(1, T1, Outcome::Committed)),
                    at(26, ack_with(2, T1, Outcome::Committed)),
                ],
            ),
        ],
        expect![[r#"
            == one committed
            @25 1 -> ack t1 PreCommitted
            @26 2 -> ack t1 Committed
              1 <- decide t1 Commit
            @27 1 -> ack t1 Committed
              client t1: committed
              persist 2: ended t1
            == both committed
            @25 1 -> ack t1 Committed
            @26 2 -> ack t1 Committed
              client t1: committed
              persist 2: ended t1
        "#]],
    );
}

#[test]
fn three_phase_ack_timeout_treats_a_silent_participant_as_failed_and_docommits() {
    // The client hears once the DoCommit acks are in, or at its timeout after DoCommit
    // once one participant confirmed.
    check(
        transfer3_precommitted,
        [
            at(25, pre_ack(1, T1)),
            tick(ACKS_DUE - 1),
            tick(ACKS_DUE),
            at(ACKS_DUE + 1, ack(1, T1)),
            tick(ACKS_DUE + TIMEOUT_MS),
        ],
        expect![[r#"
            @25 1 -> ack t1 PreCommitted
            @1019 timeout
            @1020 timeout
              1 <- decide t1 Commit
              2 <- decide t1 Commit
            @1021 1 -> ack t1 Committed
            @1520 timeout
              client t1: committed
        "#]],
    );
}

#[test]
fn three_phase_precommit_is_resent_before_the_ack_timeout() {
    let setup = || {
        let mut config = Config::new([n(1), n(2), n(3)]);
        config.precommit_ack_timeout_ms = 3 * DECIDE_RESEND_MS_DEFAULT;
        let mut core = with_config(config);
        apply(
            &mut core,
            [
                at(0, submit(T1, transfer3())),
                at(10, vote(1, T1, Vote::Yes)),
                at(11, vote(2, T1, Vote::Yes)),
                at(20, persisted(1)),
            ],
        );
        core
    };
    let resend_at = 20 + DECIDE_RESEND_MS_DEFAULT;
    check(
        setup,
        [at(25, pre_ack(1, T1)), PROBE, tick(resend_at), PROBE],
        expect![[r#"
            @25 1 -> ack t1 PreCommitted
            ? timer 1020; 1 in flight; 3pc precommitted, awaiting precommit acks: 1
            @1020 timeout
              2 <- precommit t1
            ? timer 2020; 1 in flight; 3pc precommitted, awaiting precommit acks: 1
        "#]],
    );
}

#[test]
fn three_phase_client_hears_committed_at_its_timeout_only_once_a_participant_committed() {
    // Both down: treated as failed, DoCommit is owed to both and nobody has confirmed
    // anything at the client's timeout. The first confirmed commit past it tells the
    // client at once.
    let client_due = 26 + TIMEOUT_MS;
    check(
        transfer3_precommitted,
        [
            at(25, down(1)),
            at(26, down(2)),
            tick(client_due),
            at(client_due + 1, up(1)),
            at(client_due + 2, ack(1, T1)),
            at(client_due + 3, up(2)),
            at(client_due + 4, ack(2, T1)),
        ],
        expect![[r#"
            @25 down 1
            @26 down 2
            @526 timeout
            @527 up 1
              1 <- decide t1 Commit
            @528 1 -> ack t1 Committed
              client t1: committed
            @529 up 2
              2 <- decide t1 Commit
            @530 2 -> ack t1 Committed
              persist 2: ended t1
        "#]],
    );
}

#[test]
fn three_phase_decision_query_says_commit_only_once_docommit_goes_out() {
    check(
        coordinator,
        [
            at(0, submit(T1, transfer3())),
            at(1, query(1, 1, T1)),
            at(10, vote(1, T1, Vote::Yes)),
            at(11, vote(2, T1, Vote::Yes)),
            at(12, query(1, 2, T1)),
            at(20, persisted(1)),
            at(21, query(1, 3, T1)),
            at(25, pre_ack(1, T1)),
            at(30, pre_ack(2, T1)),
            at(31, query(2, 4, T1)),
        ],
        expect![[r#"
            @0 submit t1 3pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 3pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 3pc 500 ms of [1, 2]: add bob 5 min 0
            @1 1 -> #1 decision query t1
              1 <- #1 answer t1 Undecided
            @10 1 -> vote t1 Yes
            @11 2 -> vote t1 Yes
              persist 1: decided t1 3pc Commit [1, 2]
            @12 1 -> #2 decision query t1
              1 <- #2 answer t1 Undecided
            @20 persisted 1
              1 <- precommit t1
              2 <- precommit t1
            @21 1 -> #3 decision query t1
              1 <- #3 answer t1 Undecided
            @25 1 -> ack t1 PreCommitted
            @30 2 -> ack t1 PreCommitted
              1 <- decide t1 Commit
              2 <- decide t1 Commit
            @31 2 -> #4 decision query t1
              2 <- #4 answer t1 Commit
        "#]],
    );
}
