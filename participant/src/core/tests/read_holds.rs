//! Read holds: a ReadOnly voter of a txn with other participants keeps its shared locks
//! until the coordinator's Release, a Decide, or its own timeout (`timeout_ms` after the
//! vote), so a read across participants has one lock point.

use super::*;
use wire::FromParticipant;

/// The Prepare's `timeout_ms` in `prepare2_with`.
const HOLD_MS: u64 = 5_000;

fn read_only_record(txn: TxnId) -> Record {
    Record::ReadOnly {
        txn,
        protocol: Protocol::TwoPhase,
        coordinator: COORDINATOR,
        keys: vec!["g".to_string()],
        hold_ms: HOLD_MS,
    }
}

fn release(id: u64, txn: TxnId) -> Input {
    Input::Release {
        from: from_coordinator(),
        id: RequestId(id),
        txn,
    }
}

/// `txn` reads g on ME and has the other participant LOW; voted ReadOnly at `now_ms`.
fn read_only_voted(participant: &mut Participant, now_ms: u64, txn: TxnId, id: u64, lsn: u64) {
    step(
        participant,
        now_ms,
        peers_prepare(id, txn, vec![get("g")]),
        vec![persist(lsn, read_only_record(txn))],
    );
    step(
        participant,
        now_ms,
        Input::Persisted { lsn: Lsn(lsn) },
        vec![vote(id, txn, Vote::ReadOnly, vec![read("g", int(1))])],
    );
}

fn peers_prepare(id: u64, txn: TxnId, ops: Vec<Op>) -> Input {
    prepare2_with(id, txn, ops, &[ME, LOW])
}

fn writer_of_g_conflicts(
    participant: &mut Participant,
    now_ms: u64,
    reader: TxnId,
    writer: TxnId,
    id: u64,
    lsn: u64,
) {
    let reason = format!("lock conflict on key \"g\" held by txn {reader}");
    step(
        participant,
        now_ms,
        peers_prepare(id, writer, vec![put("g", 2)]),
        vec![
            persist(
                lsn,
                Record::Aborted {
                    txn: writer,
                    protocol: Protocol::TwoPhase,
                    coordinator: COORDINATOR,
                    reason: reason.clone(),
                },
            ),
            no(id, writer, &reason),
        ],
    );
}

fn writer_of_g_votes_yes(
    participant: &mut Participant,
    now_ms: u64,
    writer: TxnId,
    id: u64,
    lsn: u64,
) {
    step(
        participant,
        now_ms,
        peers_prepare(id, writer, vec![put("g", 2)]),
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
fn read_only_voter_keeps_its_shared_lock_until_release() {
    let mut participant = participant();
    let (t1, t2, t3, t4) = (txn(1), txn(2), txn(3), txn(4));
    read_only_voted(&mut participant, 0, t1, 1, 1);
    assert_eq!((participant.locks_held(), participant.read_holds()), (1, 1));
    // Another reader shares it.
    read_only_voted(&mut participant, 0, t2, 2, 2);
    assert_eq!((participant.locks_held(), participant.read_holds()), (1, 2));
    // A writer does not.
    writer_of_g_conflicts(&mut participant, 10, t1, t3, 3, 3);
    step(
        &mut participant,
        20,
        release(4, t1),
        vec![reply(4, FromParticipant::Released { txn: t1 })],
    );
    // A duplicate release, and one for a txn never seen, are answered the same.
    step(
        &mut participant,
        21,
        release(5, t1),
        vec![reply(5, FromParticipant::Released { txn: t1 })],
    );
    step(
        &mut participant,
        21,
        release(6, t4),
        vec![reply(6, FromParticipant::Released { txn: t4 })],
    );
    // (a fresh writer: t3's NO is final)
    writer_of_g_conflicts(&mut participant, 22, t2, txn(5), 7, 4);
    step(
        &mut participant,
        23,
        release(8, t2),
        vec![reply(8, FromParticipant::Released { txn: t2 })],
    );
    assert_eq!((participant.locks_held(), participant.read_holds()), (0, 0));
    writer_of_g_votes_yes(&mut participant, 24, t4, 9, 5);
}

#[test]
fn read_only_voter_releases_at_the_decision() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    read_only_voted(&mut participant, 0, t1, 1, 1);
    step(
        &mut participant,
        30,
        decide(2, t1, Decision::Abort),
        vec![ack(2, t1, Outcome::Aborted)],
    );
    assert_eq!((participant.locks_held(), participant.read_holds()), (0, 0));
    writer_of_g_votes_yes(&mut participant, 31, t2, 3, 2);
}

#[test]
fn read_only_voter_releases_at_its_own_timeout_if_nothing_comes() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    read_only_voted(&mut participant, 100, t1, 1, 1);
    assert_eq!(participant.poll_timeout(), Some(Millis(100 + HOLD_MS)));
    participant.handle_timeout(Millis(100 + HOLD_MS - 1));
    assert_eq!(participant.check_invariants(), Ok(()));
    assert_eq!(participant.read_holds(), 1);
    writer_of_g_conflicts(&mut participant, 100 + HOLD_MS - 1, t1, t2, 2, 2);
    participant.handle_timeout(Millis(100 + HOLD_MS));
    assert_eq!(participant.check_invariants(), Ok(()));
    assert_eq!(participant.poll_output(), None);
    assert_eq!((participant.locks_held(), participant.read_holds()), (0, 0));
    assert_eq!(participant.poll_timeout(), None);
    writer_of_g_votes_yes(&mut participant, 100 + HOLD_MS, txn(3), 3, 3);
}

#[test]
fn a_single_participant_read_keeps_no_lock() {
    let mut participant = participant();
    step(
        &mut participant,
        0,
        prepare2_with(1, txn(1), vec![get("g")], &[ME]),
        vec![vote(1, txn(1), Vote::ReadOnly, vec![read("g", int(1))])],
    );
    assert_eq!((participant.locks_held(), participant.read_holds()), (0, 0));
    assert_eq!(participant.poll_timeout(), None);
}

#[test]
fn read_holds_count_against_active_txns_max() {
    let mut participant = participant();
    for n in 1..=3 {
        read_only_voted(&mut participant, 0, txn(n), n as u64, n as u64);
    }
    let reason = "participant overloaded: 3 active txns (limit 3)";
    step(
        &mut participant,
        0,
        peers_prepare(4, txn(4), vec![get("h")]),
        vec![
            persist(
                4,
                Record::Aborted {
                    txn: txn(4),
                    protocol: Protocol::TwoPhase,
                    coordinator: COORDINATOR,
                    reason: reason.to_string(),
                },
            ),
            no(4, txn(4), reason),
        ],
    );
}
