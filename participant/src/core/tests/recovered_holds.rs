//! Read holds across a restart: a ReadOnly record whose deadline has not passed takes its
//! shared locks again at recovery, until Release, a Decide or the deadline; one past its
//! deadline takes nothing. Without this a writer could slip in between a restarted read-only
//! voter's read and the txn's last vote.

use super::*;
use expect_test::expect;

/// The store's wall clock at recovery (Unix ms; any value: only differences count).
const WALL_MS: u64 = 1_000_000;

/// The hold's length as voted (the txn's `timeout_ms`).
const HOLD_MS: u64 = 5_000;

/// A stored hold on `keys`, `left_ms` from its deadline at `WALL_MS`.
fn stored_hold(txn: TxnId, keys: &[&str], left_ms: i64) -> StoredReadHold {
    StoredReadHold {
        txn,
        keys: keys.iter().map(|key| key.to_string()).collect(),
        hold_ms: HOLD_MS,
        until_wall_ms: WALL_MS.saturating_add_signed(left_ms),
    }
}

fn recover(txns: Vec<StoredTxn>, holds: Vec<StoredReadHold>) -> Input {
    Input::Recover {
        txns,
        holds,
        wall_ms: WALL_MS,
        stored_max: None,
    }
}

/// Restarted with t1's hold on g, 3 s before its deadline.
fn restarted_holding_g(participant: &mut Participant) {
    step(
        participant,
        0,
        recover(Vec::new(), vec![stored_hold(txn(1), &["g"], 3_000)]),
        vec![],
    );
    assert_eq!((participant.locks_held(), participant.read_holds()), (1, 1));
}

fn writer_of_g(id: u64, txn: TxnId) -> Input {
    prepare2_with(id, txn, vec![put("g", 2)], &[ME, LOW])
}

#[test]
fn restart_within_the_deadline_takes_the_read_hold_again() {
    let mut participant = participant();
    restarted_holding_g(&mut participant);
    assert_eq!((participant.locks_held(), participant.read_holds()), (1, 1));
    // It runs out when the stored deadline comes, by this restart's clock.
    assert_eq!(participant.poll_timeout(), Some(Millis(3_000)));
}

#[test]
fn a_writer_conflicting_with_a_recovered_hold_gets_the_no_wait_answer() {
    check(
        restarted_holding_g,
        writer_of_g(2, txn(2)),
        expect![[r#"
            persist 1: Aborted { txn: t2, protocol: TwoPhase, coordinator: n1, reason: "lock conflict on key \"g\" held by txn t1" }
            reply 1#2: Vote { txn: t2, vote: No { reason: "lock conflict on key \"g\" held by txn t1" }, reads: [] }
        "#]],
    );
    // Another reader shares the key.
    check(
        restarted_holding_g,
        prepare2_with(3, txn(3), vec![get("g")], &[ME]),
        expect![[r#"
            reply 1#3: Vote { txn: t3, vote: ReadOnly, reads: [Read { key: "g", value: Some(Int(1)) }] }
        "#]],
    );
}

#[test]
fn a_recovered_hold_drops_at_release() {
    let mut participant = check(
        restarted_holding_g,
        Input::Release {
            from: from_coordinator(),
            id: RequestId(2),
            txn: txn(1),
        },
        expect![[r#"
            reply 1#2: Released { txn: t1 }
        "#]],
    );
    assert_eq!((participant.locks_held(), participant.read_holds()), (0, 0));
    assert_eq!(participant.poll_timeout(), None);
    writer_votes_yes(&mut participant, 1);
}

#[test]
fn a_recovered_hold_drops_at_a_decision() {
    let mut participant = check(
        restarted_holding_g,
        decide(2, txn(1), Decision::Commit),
        expect![[r#"
            reply 1#2: Ack { txn: t1, outcome: Unknown }
        "#]],
    );
    assert_eq!((participant.locks_held(), participant.read_holds()), (0, 0));
    writer_votes_yes(&mut participant, 1);
}

#[test]
fn a_recovered_hold_drops_at_its_deadline() {
    let mut participant = participant();
    restarted_holding_g(&mut participant);
    participant.handle_timeout(Millis(2_999));
    assert_eq!(participant.read_holds(), 1);
    participant.handle_timeout(Millis(3_000));
    assert_eq!(participant.check_invariants(), Ok(()));
    assert_eq!(participant.poll_output(), None);
    assert_eq!((participant.locks_held(), participant.read_holds()), (0, 0));
    writer_votes_yes(&mut participant, 1);
}

/// A writer of g from here on votes YES (its Prepared record is lsn `lsn`).
fn writer_votes_yes(participant: &mut Participant, lsn: u64) {
    let writer = txn(9);
    step(
        participant,
        3_000,
        writer_of_g(9, writer),
        vec![persist(
            lsn,
            Record::Prepared {
                txn: writer,
                protocol: Protocol::TwoPhase,
                coordinator: COORDINATOR,
                entries: vec![entry(0, "g", OpKind::Put, int(1), int(2))],
                participants: vec![ME, LOW],
            },
        )],
    );
}

#[test]
fn a_stored_hold_past_its_deadline_takes_nothing() {
    let mut participant = participant();
    let holds = vec![
        stored_hold(txn(1), &["g"], 0),
        stored_hold(txn(2), &["g"], -1),
    ];
    step(&mut participant, 0, recover(Vec::new(), holds), vec![]);
    assert_eq!((participant.locks_held(), participant.read_holds()), (0, 0));
    assert_eq!(participant.poll_timeout(), None);
    writer_votes_yes(&mut participant, 1);
}

#[test]
fn a_recovered_hold_lasts_no_longer_than_its_timeout_from_the_restart() {
    // A deadline far ahead (a wall clock set backwards since the vote): one hold_ms at most.
    let mut participant = participant();
    let hold = stored_hold(txn(1), &["g"], 3_600_000);
    step(
        &mut participant,
        10,
        recover(Vec::new(), vec![hold]),
        vec![],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(10 + HOLD_MS)));
}

#[test]
fn a_stored_hold_on_a_key_a_recovered_writer_locks_had_ended() {
    // The writer could only lock g after the hold ended: the hold is not taken again.
    let mut participant = participant();
    let writer = stored(
        txn(2),
        StoredState::Prepared,
        None,
        vec![entry(0, "g", OpKind::Put, int(1), int(2))],
    );
    let hold = stored_hold(txn(1), &["f", "g"], 3_000);
    step(
        &mut participant,
        0,
        recover(vec![writer], vec![hold]),
        vec![],
    );
    assert_eq!((participant.locks_held(), participant.read_holds()), (1, 0));
    assert!(participant.knows(txn(2)));
}

#[test]
fn holds_past_active_txns_max_refuse_every_write_until_their_deadline() {
    // The tests' active_txns_max is 3: the fourth hold is covered by refusing writes.
    let mut participant = participant();
    let holds = (1..=4)
        .map(|n| stored_hold(txn(n), &[&format!("k{n}")], 1_000 * n as i64))
        .collect();
    step(&mut participant, 0, recover(Vec::new(), holds), vec![]);
    assert_eq!((participant.locks_held(), participant.read_holds()), (3, 3));
    // The first hold ends; a writer of a key nobody holds is still refused.
    participant.handle_timeout(Millis(1_000));
    check_step(
        &mut participant,
        1_000,
        writer_of_g(5, txn(5)),
        expect![[r#"
            persist 1: Aborted { txn: t5, protocol: TwoPhase, coordinator: n1, reason: "writes refused until 4000 ms: this participant restarted with more read-only holds than it can track (active_txns_max 3)" }
            reply 1#5: Vote { txn: t5, vote: No { reason: "writes refused until 4000 ms: this participant restarted with more read-only holds than it can track (active_txns_max 3)" }, reads: [] }
        "#]],
    );
    // A reader is not.
    check_step(
        &mut participant,
        1_000,
        prepare2_with(6, txn(6), vec![get("g")], &[ME]),
        expect![[r#"
            reply 1#6: Vote { txn: t6, vote: ReadOnly, reads: [Read { key: "g", value: Some(Int(1)) }] }
        "#]],
    );
    participant.handle_timeout(Millis(4_000));
    assert_eq!(participant.read_holds(), 0);
    writer_votes_yes_at(&mut participant, 4_000, 2);
}

fn writer_votes_yes_at(participant: &mut Participant, now_ms: u64, lsn: u64) {
    let writer = txn(9);
    participant.handle(Millis(now_ms), writer_of_g(9, writer));
    let outputs: Vec<Output> = std::iter::from_fn(|| participant.poll_output()).collect();
    assert!(
        matches!(&outputs[..], [Output::Persist { lsn: at, record: Record::Prepared { .. } }] if *at == Lsn(lsn)),
        "{outputs:?}"
    );
    assert_eq!(participant.check_invariants(), Ok(()));
}

/// One input at `now_ms` on a participant already set up, compared with a snapshot.
fn check_step(
    participant: &mut Participant,
    now_ms: u64,
    input: Input,
    expected: expect_test::Expect,
) {
    participant.handle(Millis(now_ms), input);
    let outputs: Vec<Output> = std::iter::from_fn(|| participant.poll_output()).collect();
    expected.assert_eq(&render(&outputs));
    assert_eq!(participant.check_invariants(), Ok(()));
}
