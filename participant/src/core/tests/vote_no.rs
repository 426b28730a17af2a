//! Every reason a Prepare gets NO, as one table: the `Aborted` record and the NO vote go
//! out at once, no lock is kept, and the record's durability answers nobody.

use expect_test::expect;

use super::*;

/// Three txns preparing on `k1`..`k3` (lsns 1-3): `active_txns_max` is reached.
fn three_preparing(participant: &mut Participant) {
    for n in 1..=3u64 {
        let key = format!("k{n}");
        participant.handle(
            Millis(0),
            prepare(n, txn(n.into()), vec![put(&key, 1)], &[(&key, None)]),
        );
    }
    while participant.poll_output().is_some() {}
}

/// `txn(9)` in doubt on key `a` (lsn 1).
fn nine_in_doubt_on_a(participant: &mut Participant) {
    in_doubt_on_a(participant, 0, txn(9), 9, 1);
}

/// Naming one more participant than the limit.
fn too_many_participants() -> Vec<NodeId> {
    (1..=PARTICIPANTS_PER_TXN_MAX as u32 + 1)
        .map(NodeId)
        .collect()
}

/// One row: the setup, the Prepare, its outputs, and the locks held afterwards.
type Case = (fn(&mut Participant), Input, expect_test::Expect, usize);

#[test]
fn every_reason_for_no_is_recorded_and_sent_at_once() {
    let t1 = txn(1);
    let long_text = Op::Put {
        key: "a".to_string(),
        value: Value::Text("123456".to_string()),
    };
    let five_gets = vec![get("a"), get("a"), get("a"), get("a"), get("a")];
    let cases: Vec<Case> = vec![
        (
            fresh,
            prepare(1, t1, vec![add("a", -5, Some(0), None)], &[("a", int(3))]),
            expect![[r#"
                persist 1: Aborted { txn: t1, protocol: TwoPhase, coordinator: n1, reason: "adding -5 to key \"a\" would make it -2, below the minimum 0" }
                reply 1#1: Vote { txn: t1, vote: No { reason: "adding -5 to key \"a\" would make it -2, below the minimum 0" }, reads: [] }
            "#]],
            0,
        ),
        (
            fresh,
            prepare(1, t1, vec![add("a", 5, None, Some(6))], &[("a", int(3))]),
            expect![[r#"
                persist 1: Aborted { txn: t1, protocol: TwoPhase, coordinator: n1, reason: "adding 5 to key \"a\" would make it 8, above the maximum 6" }
                reply 1#1: Vote { txn: t1, vote: No { reason: "adding 5 to key \"a\" would make it 8, above the maximum 6" }, reads: [] }
            "#]],
            0,
        ),
        (
            fresh,
            prepare(1, t1, vec![add("a", 1, None, None)], &[("a", text("x"))]),
            expect![[r#"
                persist 1: Aborted { txn: t1, protocol: TwoPhase, coordinator: n1, reason: "key \"a\" holds a non-integer value; cannot add to it" }
                reply 1#1: Vote { txn: t1, vote: No { reason: "key \"a\" holds a non-integer value; cannot add to it" }, reads: [] }
            "#]],
            0,
        ),
        (
            fresh,
            prepare(
                1,
                t1,
                vec![add("a", 1, None, None)],
                &[("a", int(i64::MAX))],
            ),
            expect![[r#"
                persist 1: Aborted { txn: t1, protocol: TwoPhase, coordinator: n1, reason: "adding 1 to key \"a\" (value 9223372036854775807) overflows" }
                reply 1#1: Vote { txn: t1, vote: No { reason: "adding 1 to key \"a\" (value 9223372036854775807) overflows" }, reads: [] }
            "#]],
            0,
        ),
        (
            fresh,
            prepare(1, t1, five_gets, &[("a", None)]),
            expect![[r#"
                persist 1: Aborted { txn: t1, protocol: TwoPhase, coordinator: n1, reason: "txn has 5 ops for this participant; the limit is 4" }
                reply 1#1: Vote { txn: t1, vote: No { reason: "txn has 5 ops for this participant; the limit is 4" }, reads: [] }
            "#]],
            0,
        ),
        (
            fresh,
            prepare(1, t1, vec![get("123456789")], &[("a", None)]),
            expect![[r#"
                persist 1: Aborted { txn: t1, protocol: TwoPhase, coordinator: n1, reason: "key is 9 bytes, limit 8" }
                reply 1#1: Vote { txn: t1, vote: No { reason: "key is 9 bytes, limit 8" }, reads: [] }
            "#]],
            0,
        ),
        (
            fresh,
            prepare(1, t1, vec![get("")], &[("a", None)]),
            expect![[r#"
                persist 1: Aborted { txn: t1, protocol: TwoPhase, coordinator: n1, reason: "empty key" }
                reply 1#1: Vote { txn: t1, vote: No { reason: "empty key" }, reads: [] }
            "#]],
            0,
        ),
        (
            fresh,
            prepare(1, t1, vec![long_text], &[("a", None)]),
            expect![[r#"
                persist 1: Aborted { txn: t1, protocol: TwoPhase, coordinator: n1, reason: "value is 6 bytes, limit 5" }
                reply 1#1: Vote { txn: t1, vote: No { reason: "value is 6 bytes, limit 5" }, reads: [] }
            "#]],
            0,
        ),
        // The shell must read every key's committed value: a missing one is no guess.
        (
            fresh,
            prepare(1, t1, vec![add("a", 1, None, None)], &[]),
            expect![[r#"
                persist 1: Aborted { txn: t1, protocol: TwoPhase, coordinator: n1, reason: "internal error: the committed value of key \"a\" was not read" }
                reply 1#1: Vote { txn: t1, vote: No { reason: "internal error: the committed value of key \"a\" was not read" }, reads: [] }
            "#]],
            0,
        ),
        (
            nine_in_doubt_on_a,
            prepare(1, t1, vec![get("a")], &[("a", int(1))]),
            expect![[r#"
                persist 2: Aborted { txn: t1, protocol: TwoPhase, coordinator: n1, reason: "lock conflict on key \"a\" held by txn t9" }
                reply 1#1: Vote { txn: t1, vote: No { reason: "lock conflict on key \"a\" held by txn t9" }, reads: [] }
            "#]],
            1,
        ),
        (
            three_preparing,
            prepare(4, txn(4), vec![put("k4", 1)], &[("k4", None)]),
            expect![[r#"
                persist 4: Aborted { txn: t4, protocol: TwoPhase, coordinator: n1, reason: "participant overloaded: 3 active txns (limit 3)" }
                reply 1#4: Vote { txn: t4, vote: No { reason: "participant overloaded: 3 active txns (limit 3)" }, reads: [] }
            "#]],
            3,
        ),
        (
            fresh,
            prepare2_with(1, t1, vec![put("a", 1)], &too_many_participants()),
            expect![[r#"
                persist 1: Aborted { txn: t1, protocol: TwoPhase, coordinator: n1, reason: "txn names 1025 participants; the limit is 1024" }
                reply 1#1: Vote { txn: t1, vote: No { reason: "txn names 1025 participants; the limit is 1024" }, reads: [] }
            "#]],
            0,
        ),
        // Clamped to 5000 ms, this node would abort alone while the coordinator, which
        // assumes 60 s, still sends PreCommit to the others (issue 7 bug 3).
        (
            fresh,
            prepare3_with_timeout(1, t1, 60_000, "a"),
            expect![[r#"
                persist 1: Aborted { txn: t1, protocol: ThreePhase, coordinator: n1, reason: "the coordinator asks for a 3pc waiting timeout of 60000 ms, above this participant's maximum of 5000 ms (--waiting-timeout-max-ms): it would give up before the coordinator's PreCommit deadline" }
                reply 1#1: Vote { txn: t1, vote: No { reason: "the coordinator asks for a 3pc waiting timeout of 60000 ms, above this participant's maximum of 5000 ms (--waiting-timeout-max-ms): it would give up before the coordinator's PreCommit deadline" }, reads: [] }
            "#]],
            0,
        ),
    ];
    for (setup, input, expected, locks) in cases {
        let mut participant = check(setup, input, expected);
        assert_eq!(participant.locks_held(), locks);
        if locks == 0 {
            assert_eq!(participant.poll_timeout(), None);
        }
        // The NO record's durability answers nobody: the vote went out already.
        let lsn = Lsn(participant.next_lsn.0 - 1);
        step(&mut participant, 0, Input::Persisted { lsn }, vec![]);
    }
}
