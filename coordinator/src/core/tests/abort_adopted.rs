//! 3PC, when participants contradict the logged precommit: the abort is adopted durably
//! before anyone hears it, or, when someone committed too, the split is reported.

use expect_test::expect;
use wire::{Outcome, TxnState, Vote};

use super::*;

/// 1, 2 and 3 each get 5: three YES voters; DoCommit went out at 30 (every PreCommit
/// acked).
fn three_way_docommit_sent() -> Coordinator {
    let mut core = coordinator();
    let parts = (1..=3).map(|p| (p, vec![add("x", 5)])).collect();
    apply(&mut core, [at(0, submit(T1, spec3(parts)))]);
    for p in 1..=3 {
        apply(&mut core, [at(10 + u64::from(p), vote(p, T1, Vote::Yes))]);
    }
    apply(
        &mut core,
        [
            at(20, persisted(1)),
            at(21, pre_ack(1, T1)),
            at(22, pre_ack(2, T1)),
            at(30, pre_ack(3, T1)),
        ],
    );
    core
}

#[test]
fn three_phase_aborted_ack_to_precommit_adopts_the_abort_durably_before_telling_anyone() {
    // Not durable yet: no timeout (no DoCommit, ever), and still undecided for queries.
    // Once forgotten, presumed abort answers any later question.
    check(
        transfer3_precommitted,
        [
            at(25, pre_ack(1, T1)),
            at(26, ack_with(2, T1, Outcome::Aborted)),
            PROBE,
            tick(100_000),
            at(27, query(1, 5, T1)),
            at(28, pre_ack(1, T1)),
            at(29, persisted(2)),
            PROBE,
            at(30, query(1, 6, T1)),
        ],
        expect![[r#"
            @25 1 -> ack t1 PreCommitted
            @26 2 -> ack t1 Aborted
              persist 2: abort adopted t1: participant 2 had already aborted (its termination protocol decided while cut off from the coordinator: the partition limit of 3pc)
            ? timer none; 1 in flight; 3pc logging adopted abort: 1
            @100000 timeout
            @27 1 -> #5 decision query t1
              1 <- #5 answer t1 Undecided
            @28 1 -> ack t1 PreCommitted
            @29 persisted 2
              1 <- decide t1 Abort (participant 2 had already aborted (its termination protocol decided while cut off from the coordinator: the partition limit of 3pc))
              client t1: aborted: participant 2 had already aborted (its termination protocol decided while cut off from the coordinator: the partition limit of 3pc)
            ? timer none; 0 in flight; no txns
            @30 1 -> #6 decision query t1
              1 <- #6 answer t1 Abort
        "#]],
    );
}

#[test]
fn three_phase_other_refusals_of_the_precommit_adopt_the_abort() {
    check_rows(
        transfer3_precommitted,
        [
            (
                "an aborted state reply while precommitting",
                vec![at(26, state_reply(2, T1, TxnState::Aborted))],
            ),
            (
                "an unknown ack to precommit",
                vec![
                    at(26, ack_with(1, T1, Outcome::Unknown)),
                    at(27, persisted(2)),
                ],
            ),
        ],
        expect![[r#"
            == an aborted state reply while precommitting
            @26 2 -> state t1 Aborted
              persist 2: abort adopted t1: participant 2 had already aborted (its termination protocol decided while cut off from the coordinator: the partition limit of 3pc)
            == an unknown ack to precommit
            @26 1 -> ack t1 Unknown
              persist 2: abort adopted t1: participant 1 has no record of the transaction it voted yes on
            @27 persisted 2
              2 <- decide t1 Abort (participant 1 has no record of the transaction it voted yes on)
              client t1: aborted: participant 1 has no record of the transaction it voted yes on
        "#]],
    );
}

#[test]
fn three_phase_every_docommit_ack_aborted_adopts_the_abort_and_tells_the_client_aborted() {
    // Nothing was applied anywhere: the precommit becomes an abort, durably first.
    check(
        transfer3_docommit_sent,
        [
            at(31, ack_with(1, T1, Outcome::Aborted)),
            at(32, ack_with(2, T1, Outcome::Aborted)),
            PROBE,
            at(33, persisted(2)),
            PROBE,
            at(34, query(1, 1, T1)),
        ],
        expect![[r#"
            @31 1 -> ack t1 Aborted
            @32 2 -> ack t1 Aborted
              persist 2: abort adopted t1: no participant committed: participants 1, 2 refused the DoCommit, having aborted (a termination protocol overrode the logged precommit): the abort is adopted
            ? timer none; 1 in flight; 3pc logging adopted abort: 1
            @33 persisted 2
              client t1: aborted: no participant committed: participants 1, 2 refused the DoCommit, having aborted (a termination protocol overrode the logged precommit): the abort is adopted
            ? timer none; 0 in flight; no txns
            @34 1 -> #1 decision query t1
              1 <- #1 answer t1 Abort
        "#]],
    );
}

#[test]
fn three_phase_unknown_docommit_ack_counts_as_not_committed() {
    check(
        transfer3_docommit_sent,
        [
            at(31, ack_with(1, T1, Outcome::Unknown)),
            at(32, ack_with(2, T1, Outcome::Aborted)),
        ],
        expect![[r#"
            @31 1 -> ack t1 Unknown
            @32 2 -> ack t1 Aborted
              persist 2: abort adopted t1: no participant committed: participants 1, 2 refused the DoCommit, having aborted (a termination protocol overrode the logged precommit): the abort is adopted
        "#]],
    );
}

#[test]
fn three_phase_split_docommit_acks_are_reported_as_atomicity_violated_not_committed() {
    // The decision row keeps 'commit' (applied at 2) and ends; nothing more can be done.
    check(
        transfer3_docommit_sent,
        [
            at(31, ack_with(1, T1, Outcome::Aborted)),
            at(32, state_reply(1, T1, TxnState::Aborted)),
            at(33, ack(2, T1)),
            PROBE,
            at(34, persisted(2)),
            PROBE,
        ],
        expect![[r#"
            @31 1 -> ack t1 Aborted
            @32 1 -> state t1 Aborted
            @33 2 -> ack t1 Committed
              client t1: aborted: ATOMICITY VIOLATED, the outcome is split: participant 2 committed, participant 1 aborted (a termination protocol overrode the logged precommit)
              persist 2: ended t1
            ? timer none; 1 in flight; no txns
            @34 persisted 2
            ? timer none; 0 in flight; no txns
        "#]],
    );
}

#[test]
fn three_phase_client_is_not_told_committed_at_its_timeout_once_a_participant_refused() {
    check(
        three_way_docommit_sent,
        [
            at(31, ack(1, T1)),
            at(32, ack_with(2, T1, Outcome::Aborted)),
            tick(30 + TIMEOUT_MS),
            at(30 + TIMEOUT_MS + 1, ack(3, T1)),
        ],
        expect![[r#"
            @31 1 -> ack t1 Committed
            @32 2 -> ack t1 Aborted
            @530 timeout
            @531 3 -> ack t1 Committed
              client t1: aborted: ATOMICITY VIOLATED, the outcome is split: participants 1, 3 committed, participant 2 aborted (a termination protocol overrode the logged precommit)
              persist 2: ended t1
        "#]],
    );
}

#[test]
fn three_phase_aborted_precommit_ack_after_a_committed_one_commits_the_rest() {
    // 1 committed, so no abort can be adopted: the others are told to commit.
    let setup = || {
        let mut core = coordinator();
        let parts = (1..=3).map(|p| (p, vec![add("x", 5)])).collect();
        apply(&mut core, [at(0, submit(T1, spec3(parts)))]);
        for p in 1..=3 {
            apply(&mut core, [at(10 + u64::from(p), vote(p, T1, Vote::Yes))]);
        }
        apply(&mut core, [at(20, persisted(1))]);
        core
    };
    check(
        setup,
        [
            at(21, ack_with(1, T1, Outcome::Committed)),
            at(22, ack_with(2, T1, Outcome::Aborted)),
            at(23, ack(3, T1)),
        ],
        expect![[r#"
            @21 1 -> ack t1 Committed
            @22 2 -> ack t1 Aborted
              3 <- decide t1 Commit
            @23 3 -> ack t1 Committed
              client t1: aborted: ATOMICITY VIOLATED, the outcome is split: participants 1, 3 committed, participant 2 aborted (a termination protocol overrode the logged precommit)
              persist 2: ended t1
        "#]],
    );
}

#[test]
fn three_phase_committed_ack_while_an_adopted_abort_is_logged_is_reported_as_split() {
    // Too late to keep the row at 'commit'; the client still hears the truth, and the
    // participant that committed is not told to abort.
    check(
        transfer3_precommitted,
        [
            at(25, ack_with(2, T1, Outcome::Aborted)),
            at(26, ack_with(1, T1, Outcome::Committed)),
            at(27, persisted(2)),
        ],
        expect![[r#"
            @25 2 -> ack t1 Aborted
              persist 2: abort adopted t1: participant 2 had already aborted (its termination protocol decided while cut off from the coordinator: the partition limit of 3pc)
            @26 1 -> ack t1 Committed
            @27 persisted 2
              client t1: aborted: ATOMICITY VIOLATED, the outcome is split: participant 1 committed, participant 2 aborted (a termination protocol overrode the logged precommit)
        "#]],
    );
}
