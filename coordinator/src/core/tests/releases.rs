//! Unanswered `Release`s: re-sent when the participant comes back up, forgotten on its
//! `Released`, and bounded per participant by `RELEASES_UNANSWERED_MAX`.

use expect_test::expect;
use wire::Vote;

use super::*;
use crate::core::RELEASES_UNANSWERED_MAX;

/// A read on 1, a write on 2.
fn read_and_write() -> TxnSpec {
    spec(vec![(1, vec![get("a")]), (2, vec![add("b", 5)])])
}

/// Reads on 1 and 2: both vote ReadOnly, so both get a `Release` and the txn is over.
fn read_both() -> TxnSpec {
    spec(vec![(1, vec![get("a")]), (2, vec![get("b")])])
}

#[test]
fn a_release_lost_with_its_connection_is_sent_again_on_peer_up() {
    // The Release to 1 goes out at the lock point, then 1's connection resets before 1
    // read it: the new connection carries it again, alongside what the txn still owes 2.
    check(
        coordinator,
        [
            at(0, submit(T1, read_and_write())),
            at(1, vote(1, T1, Vote::ReadOnly)),
            at(2, vote(2, T1, Vote::Yes)),
            at(3, down(1)),
            at(4, up(1)),
            at(5, persisted(1)),
            at(6, down(1)),
            at(7, up(1)),
        ],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [get a]; 2 [add b 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: get a
              2 <- prepare t1 2pc 500 ms of [1, 2]: add b 5 min 0
            @1 1 -> vote t1 ReadOnly
            @2 2 -> vote t1 Yes
              1 <- release t1
              persist 1: decided t1 2pc Commit [2]
            @3 down 1
            @4 up 1
              1 <- release t1
            @5 persisted 1
              2 <- decide t1 Commit
              client t1: committed
            @6 down 1
            @7 up 1
              1 <- release t1
        "#]],
    );
}

#[test]
fn a_read_only_voter_down_at_the_abort_gets_its_release_when_back() {
    // 1 voted ReadOnly and went down: the txn aborts at once, and 1 (which takes its read
    // hold again from its record at a restart) is released as soon as it is back.
    check(
        coordinator,
        [
            at(0, submit(T1, read_and_write())),
            at(1, vote(1, T1, Vote::ReadOnly)),
            at(2, down(1)),
            at(3, up(1)),
        ],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [get a]; 2 [add b 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: get a
              2 <- prepare t1 2pc 500 ms of [1, 2]: add b 5 min 0
            @1 1 -> vote t1 ReadOnly
            @2 down 1
              2 <- decide t1 Abort (participant 1 is down)
              client t1: aborted: participant 1 is down
            @3 up 1
              1 <- release t1
        "#]],
    );
}

#[test]
fn released_forgets_the_release_only_for_its_sender() {
    // 1 answers, 2 does not: after both reconnect only 2 gets the Release again. A
    // duplicate or unknown Released changes nothing.
    check(
        coordinator,
        [
            at(0, submit(T1, read_both())),
            at(1, vote(1, T1, Vote::ReadOnly)),
            at(2, vote(2, T1, Vote::ReadOnly)),
            at(3, released(1, T1)),
            at(4, released(1, T1)),
            at(5, released(3, T1)),
            at(6, down(1)),
            at(7, down(2)),
            at(8, up(1)),
            at(9, up(2)),
            at(10, released(2, T1)),
            at(11, down(2)),
            at(12, up(2)),
        ],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [get a]; 2 [get b]
              1 <- prepare t1 2pc 500 ms of [1, 2]: get a
              2 <- prepare t1 2pc 500 ms of [1, 2]: get b
            @1 1 -> vote t1 ReadOnly
            @2 2 -> vote t1 ReadOnly
              1 <- release t1
              2 <- release t1
              client t1: committed
            @3 1 -> released t1
            @4 1 -> released t1
            @5 3 -> released t1
            @6 down 1
            @7 down 2
            @8 up 1
            @9 up 2
              2 <- release t1
            @10 2 -> released t1
            @11 down 2
            @12 up 2
        "#]],
    );
}

#[test]
fn unanswered_releases_past_the_bound_forget_the_oldest() {
    // One more unanswered Release than the bound: a reconnect re-sends the newest
    // `RELEASES_UNANSWERED_MAX`, and the oldest is left to the participant's own hold
    // timeout (safe: the hold ends by itself).
    let mut core = coordinator();
    let txns = RELEASES_UNANSWERED_MAX as u128 + 1;
    for txn in 1..=txns {
        apply(
            &mut core,
            [
                at(0, submit(txn, read_both())),
                at(1, vote(1, txn, Vote::ReadOnly)),
                at(1, vote(2, txn, Vote::ReadOnly)),
            ],
        );
    }
    apply(&mut core, [at(2, down(1))]);
    let transcript = run(&mut core, [at(3, up(1))]);
    let resent: Vec<&str> = transcript
        .lines()
        .filter(|line| line.starts_with("  1 <- release "))
        .collect();
    let summary = format!(
        "{} re-sent of {txns}, first {:?}, last {:?}",
        resent.len(),
        resent.first(),
        resent.last()
    );
    expect![[r#"1024 re-sent of 1025, first Some("  1 <- release t2"), last Some("  1 <- release t1025")"#]]
        .assert_eq(&summary);
}
