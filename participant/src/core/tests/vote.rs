//! Prepare: the YES vote and its record, read-only votes, and every reason for NO
//! (limits, bounds, lock conflicts, the 3PC mesh and timeout checks).

use super::*;

#[test]
fn yes_vote_waits_for_the_prepared_record() {
    let mut participant = participant();
    let t1 = txn(1);
    check(
        &mut participant,
        0,
        prepare(
            1,
            t1,
            vec![get("g"), put("a", 5)],
            &[("g", text("hi")), ("a", None)],
        ),
        vec![persist(
            1,
            prepared(
                t1,
                vec![
                    entry(0, "g", OpKind::Get, text("hi"), text("hi")),
                    entry(1, "a", OpKind::Put, None, int(5)),
                ],
            ),
        )],
    );
    assert_eq!(participant.locks_held(), 2);
    check(
        &mut participant,
        3,
        Input::Persisted { lsn: Lsn(1) },
        vec![vote(1, t1, Vote::Yes, vec![read("g", text("hi"))])],
    );
    assert_eq!(participant.counts().in_doubt, 1);
}

#[test]
fn ops_apply_in_order_and_a_missing_key_adds_from_zero() {
    let mut participant = participant();
    let t1 = txn(1);
    check(
        &mut participant,
        0,
        prepare(
            1,
            t1,
            vec![
                add("a", 3, Some(0), None),
                get("a"),
                Op::Delete {
                    key: "b".to_string(),
                },
                add("b", -2, None, Some(0)),
            ],
            &[("a", None), ("b", text("x"))],
        ),
        vec![persist(
            1,
            prepared(
                t1,
                vec![
                    entry(0, "a", OpKind::Add, None, int(3)),
                    entry(1, "a", OpKind::Get, int(3), int(3)),
                    entry(2, "b", OpKind::Delete, text("x"), None),
                    entry(3, "b", OpKind::Add, None, int(-2)),
                ],
            ),
        )],
    );
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![vote(1, t1, Vote::Yes, vec![read("a", int(3))])],
    );
}

#[test]
fn add_below_the_minimum_votes_no_at_once_and_records_aborted() {
    let mut participant = participant();
    let t1 = txn(1);
    let reason = "adding -5 to key \"a\" would make it -2, below the minimum 0";
    check(
        &mut participant,
        0,
        prepare(1, t1, vec![add("a", -5, Some(0), None)], &[("a", int(3))]),
        vec![persist(1, aborted(t1, reason)), no(1, t1, reason)],
    );
    assert_eq!(participant.locks_held(), 0);
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![],
    );
}

#[test]
fn add_above_the_maximum_or_to_text_or_overflowing_votes_no() {
    let mut participant = participant();
    let cases = [
        (
            add("a", 5, None, Some(6)),
            int(3),
            "adding 5 to key \"a\" would make it 8, above the maximum 6",
        ),
        (
            add("a", 1, None, None),
            text("x"),
            "key \"a\" holds a non-integer value; cannot add to it",
        ),
        (
            add("a", 1, None, None),
            int(i64::MAX),
            "adding 1 to key \"a\" (value 9223372036854775807) overflows",
        ),
    ];
    for (n, (op, value, reason)) in cases.into_iter().enumerate() {
        let t = txn(n as u128 + 1);
        let lsn = n as u64 + 1;
        check(
            &mut participant,
            0,
            prepare(lsn, t, vec![op], &[("a", value)]),
            vec![persist(lsn, aborted(t, reason)), no(lsn, t, reason)],
        );
    }
}

#[test]
fn read_only_replies_at_once_without_record_or_locks() {
    let mut participant = participant();
    let t1 = txn(1);
    check(
        &mut participant,
        0,
        prepare(
            1,
            t1,
            vec![get("a"), get("b")],
            &[("a", int(1)), ("b", None)],
        ),
        vec![vote(
            1,
            t1,
            Vote::ReadOnly,
            vec![read("a", int(1)), read("b", None)],
        )],
    );
    assert_eq!(participant.locks_held(), 0);
    assert!(!participant.knows(t1));
}

#[test]
fn lock_conflict_votes_no_at_once() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    let reason = format!("lock conflict on key \"a\" held by txn {t1}");
    check(
        &mut participant,
        0,
        prepare(2, t2, vec![get("a")], &[("a", int(1))]),
        vec![persist(2, aborted(t2, &reason)), no(2, t2, &reason)],
    );
}

#[test]
fn limits_violations_vote_no_with_a_clear_reason() {
    let mut participant = participant();
    let long_text = Op::Put {
        key: "a".to_string(),
        value: Value::Text("123456".to_string()),
    };
    let cases = [
        (
            vec![get("a"), get("a"), get("a"), get("a"), get("a")],
            "txn has 5 ops for this participant; the limit is 4",
        ),
        (
            vec![get("123456789")],
            "key of 9 bytes exceeds the limit of 8 bytes",
        ),
        (vec![get("")], "empty key"),
        (
            vec![long_text],
            "value of 6 bytes for key \"a\" exceeds the limit of 5 bytes",
        ),
    ];
    for (n, (ops, reason)) in cases.into_iter().enumerate() {
        let t = txn(n as u128 + 1);
        let lsn = n as u64 + 1;
        check(
            &mut participant,
            0,
            prepare(lsn, t, ops, &[("a", None)]),
            vec![persist(lsn, aborted(t, reason)), no(lsn, t, reason)],
        );
    }
}

#[test]
fn beyond_active_txns_max_votes_participant_overloaded() {
    let mut participant = participant();
    for n in 1..=3 {
        let key = format!("k{n}");
        check(
            &mut participant,
            0,
            prepare(n, txn(n.into()), vec![put(&key, 1)], &[(&key, None)]),
            vec![persist(
                n,
                prepared(
                    txn(n.into()),
                    vec![entry(0, &key, OpKind::Put, None, int(1))],
                ),
            )],
        );
    }
    let t4 = txn(4);
    let reason = "participant overloaded: 3 active txns (limit 3)";
    check(
        &mut participant,
        0,
        prepare(4, t4, vec![put("k4", 1)], &[("k4", None)]),
        vec![persist(4, aborted(t4, reason)), no(4, t4, reason)],
    );
}

#[test]
fn a_value_the_shell_did_not_read_votes_no_rather_than_guess() {
    let mut participant = participant();
    let t1 = txn(1);
    let reason = "internal error: the committed value of key \"a\" was not read";
    check(
        &mut participant,
        0,
        prepare(1, t1, vec![add("a", 1, None, None)], &[]),
        vec![persist(1, aborted(t1, reason)), no(1, t1, reason)],
    );
}

#[test]
fn a_prepare_naming_too_many_participants_gets_no() {
    let mut participant = participant();
    let t1 = txn(1);
    let participants: Vec<NodeId> = (1..=PARTICIPANTS_PER_TXN_MAX as u32 + 1)
        .map(NodeId)
        .collect();
    let reason = "txn names 1025 participants; the limit is 1024";
    check(
        &mut participant,
        0,
        prepare2_with(1, t1, vec![put("a", 1)], &participants),
        vec![persist(1, aborted(t1, reason)), no(1, t1, reason)],
    );
}

#[test]
fn yes_vote_waits_for_the_waiting_record_and_starts_the_waiting_timeout() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[LOW, HIGH]);
    assert_eq!(participant.counts().waiting, 1);
    assert_eq!(participant.locks_held(), 1);
    assert_eq!(
        participant.in_doubt(Millis(40)),
        vec![InDoubtTxn {
            txn: t1,
            coordinator: COORDINATOR,
            age_ms: 40,
            protocol: Protocol::ThreePhase,
            state: TxnState::Waiting,
            peers: vec![LOW, HIGH],
            recovered: false,
            leader: None,
            blocked: false,
        }]
    );
}

#[test]
fn a_waiting_timeout_below_the_minimum_is_raised_to_it() {
    let mut participant = participant();
    let t1 = txn(1);
    // Waiting longer than the coordinator assumes is safe: its PreCommit deadline holds.
    participant.handle(Millis(0), prepare3_with_timeout(1, t1, 10, "b"));
    participant.handle(Millis(0), Input::Persisted { lsn: Lsn(1) });
    let _: Vec<Output> = std::iter::from_fn(|| participant.poll_output()).collect();
    assert_eq!(participant.check_invariants(), Ok(()));
    assert_eq!(participant.poll_timeout(), Some(Millis(1_000)));
}

#[test]
fn a_waiting_timeout_above_the_maximum_votes_no() {
    let mut participant = participant();
    let t1 = txn(1);
    // Clamped to 5000 ms, this node would abort alone while the coordinator, which
    // assumes 60 s, still sends PreCommit to the others (issue 7 bug 3).
    let reason = "the coordinator asks for a 3pc waiting timeout of 60000 ms, above this \
                  participant's maximum of 5000 ms (--waiting-timeout-max-ms): it would give \
                  up before the coordinator's PreCommit deadline";
    check(
        &mut participant,
        0,
        prepare3_with_timeout(1, t1, 60_000, "a"),
        vec![
            persist(
                1,
                Record::Aborted {
                    txn: t1,
                    protocol: Protocol::ThreePhase,
                    coordinator: COORDINATOR,
                    reason: reason.to_string(),
                },
            ),
            no(1, t1, reason),
        ],
    );
    assert_eq!(participant.locks_held(), 0);
    assert_eq!(participant.poll_timeout(), None);
}

/// Seeds 9209 and 13918 (3pc, crash-only): a participant that restarted had no channel to
/// a live peer yet (the peer had not seen the old one go down); both voted YES, the
/// coordinator crashed, and each, seeing no live peer, decided alone by the card's rules:
/// one committed, the other aborted. A YES now needs every peer up on the mesh.
#[test]
fn three_pc_yes_needs_every_peer_up_on_the_mesh() {
    let mut participant = participant();
    let t1 = txn(1);
    check(&mut participant, 0, up(LOW), vec![]);
    let reason = "3pc needs the participant mesh: peer 7 is not connected, so the termination \
                  protocol could not reach it";
    check(
        &mut participant,
        0,
        prepare3(1, t1, &ALL),
        vec![persist(1, aborted3(t1, reason)), no(1, t1, reason)],
    );
    assert_eq!(participant.locks_held(), 0);
    // Read-only, it takes no part in the termination protocol: no mesh needed.
    let t2 = txn(2);
    let mut read_only = prepare3(2, t2, &ALL);
    if let Input::Prepare { ops, .. } = &mut read_only {
        *ops = vec![get("a")];
    }
    check(
        &mut participant,
        0,
        read_only,
        vec![persist(
            2,
            Record::ReadOnly {
                txn: t2,
                protocol: Protocol::ThreePhase,
                coordinator: COORDINATOR,
            },
        )],
    );
    // Its shared lock on a goes once every vote is in.
    check(
        &mut participant,
        5,
        Input::Release {
            from: from_coordinator(),
            id: RequestId(9),
            txn: t2,
        },
        vec![reply(9, Msg::Released { txn: t2 })],
    );
    // With every peer up it votes YES.
    check(&mut participant, 10, up(HIGH), vec![]);
    let t3 = txn(3);
    check(
        &mut participant,
        10,
        prepare3(3, t3, &ALL),
        vec![persist(3, waiting_record(t3, &ALL))],
    );
}

#[test]
fn read_only_vote_with_other_participants_waits_for_its_record() {
    let mut participant = participant();
    let t1 = txn(1);
    let ops = vec![get("g")];
    check(
        &mut participant,
        0,
        prepare2_with(1, t1, ops.clone(), &[ME, LOW]),
        vec![persist(
            1,
            Record::ReadOnly {
                txn: t1,
                protocol: Protocol::TwoPhase,
                coordinator: COORDINATOR,
            },
        )],
    );
    // Its shared lock is taken at once, before the vote is durable.
    assert_eq!(participant.locks_held(), 1);
    check(
        &mut participant,
        0,
        prepare2_with(2, t1, ops.clone(), &[ME, LOW]),
        vec![],
    );
    check(&mut participant, 0, state_query_from(LOW, 3, t1), vec![]);
    let reads = vec![read("g", int(1))];
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![
            vote(1, t1, Vote::ReadOnly, reads.clone()),
            vote(2, t1, Vote::ReadOnly, reads.clone()),
            state_to(LOW, 3, t1, TxnState::Prepared),
        ],
    );
    assert_eq!(participant.counts().read_only, 1);
    // Whatever the others decided is fine with a reader; the decision releases its lock.
    check(
        &mut participant,
        0,
        decide(4, t1, Decision::Commit),
        vec![ack(4, t1, Outcome::Committed)],
    );
    assert_eq!(participant.locks_held(), 0);
    check(
        &mut participant,
        0,
        state_query_from(LOW, 5, t1),
        vec![state_to(LOW, 5, t1, TxnState::Prepared)],
    );
}
