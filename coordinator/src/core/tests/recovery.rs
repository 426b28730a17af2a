//! Restart: the log's commits without an end. 2PC re-sends the commit; 3PC asks the
//! participants' states and adopts their outcome, deciding itself only when no
//! termination round can. And `unfinished`, what the store recovers from the records.

use expect_test::expect;
use wire::{Decision, TxnState};

use super::*;
use crate::core::{DECIDE_RESEND_MS_DEFAULT, unfinished};

/// A core with nobody up yet.
fn nobody_up() -> Coordinator {
    Coordinator::new(Config::new([n(1), n(2), n(3)]))
}

/// A core whose log holds the 3PC precommit of T1 for 1 and 2, both up.
fn recovered3() -> Coordinator {
    let mut core = coordinator();
    apply(
        &mut core,
        [at(0, recovered(T1, Protocol::ThreePhase, &[1, 2]))],
    );
    core
}

#[test]
fn recovered_commits_are_resent_as_participants_come_up() {
    // No client to tell: only the end record.
    check(
        nobody_up,
        [
            at(0, recovered(T1, Protocol::TwoPhase, &[1, 3])),
            at(1, query(3, 1, T1)),
            at(2, up(2)),
            at(3, up(3)),
            at(4, ack(3, T1)),
            at(5, up(1)),
            at(6, ack(1, T1)),
        ],
        expect![[r#"
            @0 recovered t1 2pc [1, 3]
            @1 3 -> #1 decision query t1
              3 <- #1 answer t1 Commit
            @2 up 2
            @3 up 3
              3 <- decide t1 Commit
            @4 3 -> ack t1 Committed
            @5 up 1
              1 <- decide t1 Commit
            @6 1 -> ack t1 Committed
              persist 1: ended t1
        "#]],
    );
}

#[test]
fn recovered_commit_is_sent_at_once_to_participants_already_up() {
    // A StateReply for a 2PC transaction is not asked for and changes nothing.
    check(
        coordinator,
        [
            at(0, recovered(T1, Protocol::TwoPhase, &[2])),
            PROBE,
            at(1, state_reply(2, T1, TxnState::Aborted)),
        ],
        expect![[r#"
            @0 recovered t1 2pc [2]
              2 <- decide t1 Commit
            ? timer 1000; 1 in flight; 2pc committed, awaiting acks: 1
            @1 2 -> state t1 Aborted
        "#]],
    );
}

#[test]
fn three_phase_recovery_asks_every_participant_up_and_the_others_when_they_come_up() {
    check(
        nobody_up,
        [
            at(0, up(1)),
            at(0, recovered(T1, Protocol::ThreePhase, &[1, 2])),
            at(1, query(1, 1, T1)),
            at(2, up(3)),
            at(3, up(2)),
            PROBE,
        ],
        expect![[r#"
            @0 up 1
            @0 recovered t1 3pc [1, 2]
              1 <- state query t1
            @1 1 -> #1 decision query t1
              1 <- #1 answer t1 Undecided
            @2 up 3
            @3 up 2
              2 <- state query t1
            ? timer 1000; 1 in flight; 3pc recovered, asking participants' states: 1
        "#]],
    );
}

#[test]
fn three_phase_recovery_resends_state_queries_to_the_silent_and_the_operational() {
    // 1 is operational: its termination round may still decide, so it is asked again;
    // 2 restarted since its vote and never decides on its own: its answer stands.
    let setup = || {
        let mut core = coordinator();
        apply(
            &mut core,
            [at(0, recovered(T1, Protocol::ThreePhase, &[1, 2, 3]))],
        );
        core
    };
    check(
        setup,
        [
            at(1, state_reply(1, T1, TxnState::Waiting)),
            at(1, recovered_reply(2, T1, TxnState::Waiting)),
            PROBE,
            tick(DECIDE_RESEND_MS_DEFAULT),
        ],
        expect![[r#"
            @1 1 -> state t1 Waiting
            @1 2 -> state t1 Waiting (recovered)
            ? timer 1000; 1 in flight; 3pc recovered, asking participants' states: 1
            @1000 timeout
              1 <- state query t1
              3 <- state query t1
        "#]],
    );
}

#[test]
fn three_phase_recovery_adopts_an_abort_the_participants_decided() {
    // No client to tell: the others learn the abort, and the transaction is forgotten; a
    // late reply changes nothing.
    check(
        coordinator,
        [
            at(0, recovered(T1, Protocol::ThreePhase, &[1, 2])),
            at(1, state_reply(2, T1, TxnState::Waiting)),
            at(2, state_reply(1, T1, TxnState::Aborted)),
            at(3, persisted(1)),
            PROBE,
            at(4, state_reply(2, T1, TxnState::Aborted)),
        ],
        expect![[r#"
            @0 recovered t1 3pc [1, 2]
              1 <- state query t1
              2 <- state query t1
            @1 2 -> state t1 Waiting
            @2 1 -> state t1 Aborted
              persist 1: abort adopted t1: participant 1 aborted while the coordinator was down (its termination protocol decided)
            @3 persisted 1
              2 <- decide t1 Abort (participant 1 aborted while the coordinator was down (its termination protocol decided))
            ? timer none; 0 in flight; no txns
            @4 2 -> state t1 Aborted
        "#]],
    );
}

#[test]
fn three_phase_recovery_never_decides_while_an_operational_participant_may() {
    // Both undecided and operational: their termination protocol decides, not us
    // (issue 7 bug 1: a PreCommit here raced a leader's abort and split the outcome).
    // Their leader committed: adopted at once.
    check(
        recovered3,
        [
            at(1, state_reply(1, T1, TxnState::Waiting)),
            at(2, state_reply(2, T1, TxnState::PreCommitted)),
            at(3, query(1, 1, T1)),
            at(4, state_reply(2, T1, TxnState::Committed)),
            at(5, ack(1, T1)),
            at(6, ack(2, T1)),
        ],
        expect![[r#"
            @1 1 -> state t1 Waiting
            @2 2 -> state t1 PreCommitted
            @3 1 -> #1 decision query t1
              1 <- #1 answer t1 Undecided
            @4 2 -> state t1 Committed
              1 <- decide t1 Commit
              2 <- decide t1 Commit
            @5 1 -> ack t1 Committed
            @6 2 -> ack t1 Committed
              persist 1: ended t1
        "#]],
    );
}

#[test]
fn three_phase_recovery_waits_for_the_termination_protocol_and_adopts_its_abort() {
    // The leader decided "all waiting: abort"; asked again, it says so.
    check(
        recovered3,
        [
            at(1, state_reply(1, T1, TxnState::Waiting)),
            at(2, state_reply(2, T1, TxnState::Waiting)),
            tick(DECIDE_RESEND_MS_DEFAULT),
            at(1_001, state_reply(1, T1, TxnState::Aborted)),
            at(1_002, persisted(1)),
        ],
        expect![[r#"
            @1 1 -> state t1 Waiting
            @2 2 -> state t1 Waiting
            @1000 timeout
              1 <- state query t1
              2 <- state query t1
            @1001 1 -> state t1 Aborted
              persist 1: abort adopted t1: participant 1 aborted while the coordinator was down (its termination protocol decided)
            @1002 persisted 1
              2 <- decide t1 Abort (participant 1 aborted while the coordinator was down (its termination protocol decided))
        "#]],
    );
}

#[test]
fn three_phase_recovery_commits_once_every_participant_restarted_undecided() {
    // 2 reported as operational first: it may still lead, so nothing is decided. It
    // restarted (down, up: asked again) and is recovered now: nobody else can decide.
    check(
        recovered3,
        [
            at(1, recovered_reply(1, T1, TxnState::Waiting)),
            at(2, state_reply(2, T1, TxnState::PreCommitted)),
            at(3, down(2)),
            at(4, up(2)),
            at(5, recovered_reply(2, T1, TxnState::PreCommitted)),
            at(6, query(1, 1, T1)),
        ],
        expect![[r#"
            @1 1 -> state t1 Waiting (recovered)
            @2 2 -> state t1 PreCommitted
            @3 down 2
            @4 up 2
              2 <- state query t1
            @5 2 -> state t1 PreCommitted (recovered)
              1 <- decide t1 Commit
              2 <- decide t1 Commit
            @6 1 -> #1 decision query t1
              1 <- #1 answer t1 Commit
        "#]],
    );
}

#[test]
fn three_phase_recovery_commits_at_once_when_a_participant_committed() {
    check(
        recovered3,
        [
            at(1, state_reply(2, T1, TxnState::Committed)),
            at(2, query(1, 1, T1)),
        ],
        expect![[r#"
            @1 2 -> state t1 Committed
              1 <- decide t1 Commit
              2 <- decide t1 Commit
            @2 1 -> #1 decision query t1
              1 <- #1 answer t1 Commit
        "#]],
    );
}

#[test]
fn three_phase_recovery_with_split_states_keeps_the_commit_row_and_ends_it() {
    // 1 committed: the row must not become 'abort'; it ends. No client to tell.
    check(
        recovered3,
        [
            at(1, state_reply(1, T1, TxnState::Committed)),
            at(2, state_reply(2, T1, TxnState::Aborted)),
            at(3, ack(1, T1)),
        ],
        expect![[r#"
            @1 1 -> state t1 Committed
              1 <- decide t1 Commit
              2 <- decide t1 Commit
            @2 2 -> state t1 Aborted
            @3 1 -> ack t1 Committed
              persist 1: ended t1
        "#]],
    );
}

#[test]
fn three_phase_recovery_takes_a_prepared_state_as_waiting() {
    check(
        coordinator,
        [
            at(0, recovered(T1, Protocol::ThreePhase, &[1])),
            at(1, recovered_reply(1, T1, TxnState::Prepared)),
        ],
        expect![[r#"
            @0 recovered t1 3pc [1]
              1 <- state query t1
            @1 1 -> state t1 Prepared (recovered)
              1 <- decide t1 Commit
        "#]],
    );
}

#[test]
fn unfinished_returns_commits_neither_ended_nor_turned_into_aborts() {
    let decided = |txn: u128, protocol: Protocol| Record::Decided {
        txn: txn_id(txn),
        protocol,
        decision: Decision::Commit,
        participants: vec![n(1), n(2)],
    };
    let records = vec![
        decided(3, Protocol::ThreePhase),
        decided(1, Protocol::TwoPhase),
        decided(2, Protocol::ThreePhase),
        decided(4, Protocol::TwoPhase),
        Record::Ended { txn: txn_id(4) },
        Record::AbortAdopted {
            txn: txn_id(2),
            reason: "r".to_string(),
        },
    ];
    let recovered = |txn: u128, protocol: Protocol| RecoveredTxn {
        txn: txn_id(txn),
        protocol,
        participants: vec![n(1), n(2)],
    };
    assert_eq!(
        unfinished(&records),
        vec![
            recovered(1, Protocol::TwoPhase),
            recovered(3, Protocol::ThreePhase)
        ]
    );
}
