//! Prepare: the YES vote and its record, read-only votes, and every reason for NO
//! (limits, bounds, lock conflicts, the 3PC mesh and timeout checks).

use super::*;
use wire::FromParticipant;

#[test]
fn yes_vote_waits_for_the_prepared_record() {
    let mut participant = participant();
    let t1 = txn(1);
    step(
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
    step(
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
    step(
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
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![vote(1, t1, Vote::Yes, vec![read("a", int(3))])],
    );
}

#[test]
fn read_only_replies_at_once_without_record_or_locks() {
    let mut participant = participant();
    let t1 = txn(1);
    step(
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

/// Seeds 9209 and 13918 (3pc, crash-only): a participant that restarted had no channel to
/// a live peer yet (the peer had not seen the old one go down); both voted YES, the
/// coordinator crashed, and each, seeing no live peer, decided alone by the card's rules:
/// one committed, the other aborted. A YES now needs every peer up on the mesh.
#[test]
fn three_pc_yes_needs_every_peer_up_on_the_mesh() {
    let mut participant = participant();
    let t1 = txn(1);
    step(&mut participant, 0, up(LOW), vec![]);
    let reason = "3pc needs the participant mesh: peer 7 is not connected, so the termination \
                  protocol could not reach it";
    step(
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
    step(
        &mut participant,
        0,
        read_only,
        vec![persist(
            2,
            Record::ReadOnly {
                txn: t2,
                protocol: Protocol::ThreePhase,
                coordinator: COORDINATOR,
                keys: vec!["a".to_string()],
                hold_ms: 2_000,
            },
        )],
    );
    // Its shared lock on a goes once every vote is in.
    step(
        &mut participant,
        5,
        Input::Release {
            from: from_coordinator(),
            id: RequestId(9),
            txn: t2,
        },
        vec![reply(9, FromParticipant::Released { txn: t2 })],
    );
    // With every peer up it votes YES.
    step(&mut participant, 10, up(HIGH), vec![]);
    let t3 = txn(3);
    step(
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
    step(
        &mut participant,
        0,
        prepare2_with(1, t1, ops.clone(), &[ME, LOW]),
        vec![persist(
            1,
            Record::ReadOnly {
                txn: t1,
                protocol: Protocol::TwoPhase,
                coordinator: COORDINATOR,
                keys: vec!["g".to_string()],
                hold_ms: 5_000,
            },
        )],
    );
    // Its shared lock is taken at once, before the vote is durable.
    assert_eq!(participant.locks_held(), 1);
    step(
        &mut participant,
        0,
        prepare2_with(2, t1, ops.clone(), &[ME, LOW]),
        vec![],
    );
    step(&mut participant, 0, state_query_from(LOW, 3, t1), vec![]);
    let reads = vec![read("g", int(1))];
    step(
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
    step(
        &mut participant,
        0,
        decide(4, t1, Decision::Commit),
        vec![ack(4, t1, Outcome::Committed)],
    );
    assert_eq!(participant.locks_held(), 0);
    step(
        &mut participant,
        0,
        state_query_from(LOW, 5, t1),
        vec![state_to(LOW, 5, t1, TxnState::Prepared)],
    );
}
