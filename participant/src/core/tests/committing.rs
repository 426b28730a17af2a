//! A txn whose commit is decided but not yet durable stops blocking: a later txn takes
//! its keys and reads the values it leaves, and whatever that txn announces waits for a
//! record logged after the commit.

use super::*;

/// `t1` (puts a = 5 over 1) decided Commit at lsn 2, not yet durable.
fn committing_on_a(participant: &mut Participant, t1: TxnId) {
    in_doubt_on_a(participant, 0, t1, 1, 1);
    step(
        participant,
        0,
        decide(2, t1, Decision::Commit),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
}

/// `txn` puts a = `value` (request and lsn `id`); the shell read the durable 1, the core
/// reads `read` (a committing writer's value): YES pending, its record logged.
fn put_a_reading(participant: &mut Participant, id: u64, txn: TxnId, value: i64, read: i64) {
    step(
        participant,
        0,
        prepare(id, txn, vec![put("a", value)], &[("a", int(1))]),
        vec![persist(
            id,
            prepared(txn, vec![entry(0, "a", OpKind::Put, int(read), int(value))]),
        )],
    );
}

#[test]
fn a_writer_after_a_committing_writer_reads_its_value_and_votes_after_its_record() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    committing_on_a(&mut participant, t1);
    // The shell's value is the durable one (1): the core reads t1's 5 instead.
    step(
        &mut participant,
        0,
        prepare(3, t2, vec![add("a", 2, Some(0), None)], &[("a", int(1))]),
        vec![persist(
            3,
            prepared(t2, vec![entry(0, "a", OpKind::Add, int(5), int(7))]),
        )],
    );
    participant.check_invariants().unwrap();
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![ack(2, t1, Outcome::Committed)],
    );
    // t2 holds a now.
    assert_eq!(participant.locks_held(), 1);
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(3) },
        vec![vote(3, t2, Vote::Yes, vec![])],
    );
    participant.check_invariants().unwrap();
}

#[test]
fn a_txn_after_the_committing_one_still_conflicts_with_a_live_holder() {
    let mut participant = participant();
    let (t1, t2, t3) = (txn(1), txn(2), txn(3));
    committing_on_a(&mut participant, t1);
    put_a_reading(&mut participant, 3, t2, 9, 5);
    let reason = format!("lock conflict on key \"a\" held by txn {t2}");
    step(
        &mut participant,
        0,
        prepare(4, t3, vec![put("a", 3)], &[("a", int(1))]),
        vec![persist(4, aborted(t3, &reason)), no(4, t3, &reason)],
    );
    participant.check_invariants().unwrap();
}

#[test]
fn an_abort_after_a_committing_writer_leaves_the_key_locked_by_the_commit() {
    let mut participant = participant();
    let (t1, t2, t3) = (txn(1), txn(2), txn(3));
    committing_on_a(&mut participant, t1);
    put_a_reading(&mut participant, 3, t2, 9, 5);
    // t2 is aborted before its vote: its lock goes, t1's commit still holds the key.
    step(
        &mut participant,
        0,
        decide(4, t2, Decision::Abort),
        vec![
            persist(4, aborted(t2, "aborted by the coordinator before the vote")),
            no(3, t2, "aborted by the coordinator before the vote"),
            ack(4, t2, Outcome::Aborted),
        ],
    );
    assert_eq!(participant.locks_held(), 1);
    // The next one still reads t1's value, not the durable one.
    put_a_reading(&mut participant, 5, t3, 3, 5);
    participant.check_invariants().unwrap();
}

#[test]
fn a_chain_of_committing_writers_reads_the_last_one() {
    let mut participant = participant();
    let (t1, t2, t3) = (txn(1), txn(2), txn(3));
    committing_on_a(&mut participant, t1);
    put_a_reading(&mut participant, 3, t2, 9, 5);
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(3) },
        vec![vote(3, t2, Vote::Yes, vec![])],
    );
    step(
        &mut participant,
        0,
        decide(4, t2, Decision::Commit),
        vec![persist(4, Record::Committed { txn: t2 })],
    );
    assert_eq!(participant.committing_value("a"), Some((t2, int(9))));
    put_a_reading(&mut participant, 5, t3, 3, 9);
    participant.check_invariants().unwrap();
    // t1 durable: t2's commit still pending, still read through.
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![ack(2, t1, Outcome::Committed)],
    );
    assert_eq!(participant.committing_value("a"), Some((t2, int(9))));
    participant.check_invariants().unwrap();
}

#[test]
fn a_read_of_this_participant_alone_does_not_read_a_commit_not_yet_durable() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    committing_on_a(&mut participant, t1);
    // Its ReadOnly vote would go out at once, before t1's commit is durable here.
    let reason =
        format!("lock conflict on key \"a\" held by txn {t1}, whose commit is not yet durable");
    step(
        &mut participant,
        0,
        prepare(3, t2, vec![get("a")], &[("a", int(1))]),
        vec![persist(3, aborted(t2, &reason)), no(3, t2, &reason)],
    );
}

#[test]
fn a_read_with_other_participants_reads_the_commit_and_votes_after_its_record() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    committing_on_a(&mut participant, t1);
    step(
        &mut participant,
        0,
        prepare2_with(3, t2, vec![get("a")], &[ME, LOW]),
        vec![persist(
            3,
            Record::ReadOnly {
                txn: t2,
                protocol: Protocol::TwoPhase,
                coordinator: COORDINATOR,
                keys: vec!["a".to_string()],
                hold_ms: 5_000,
            },
        )],
    );
    participant.check_invariants().unwrap();
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![ack(2, t1, Outcome::Committed)],
    );
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(3) },
        vec![vote(3, t2, Vote::ReadOnly, vec![read("a", int(5))])],
    );
}

/// A 2PC commit's record may wait for company in the writer (only its ack waits on it);
/// the vote's record may not.
#[test]
fn only_a_two_phase_commit_record_may_linger() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    committing_on_a(&mut participant, t1);
    assert!(participant.may_linger(Lsn(2), &Record::Committed { txn: t1 }));
    put_a_reading(&mut participant, 3, t2, 9, 5);
    let vote_record = prepared(t2, vec![entry(0, "a", OpKind::Put, int(5), int(9))]);
    assert!(!participant.may_linger(Lsn(3), &vote_record));
    // Durable: the txn is done, and a record for it would not be a lingering commit.
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![ack(2, t1, Outcome::Committed)],
    );
    assert!(!participant.may_linger(Lsn(2), &Record::Committed { txn: t1 }));
}

/// A 3PC commit's client waits for the participants' acks: its record never lingers.
#[test]
fn a_three_phase_commit_record_does_not_linger() {
    let mut participant = participant();
    let t1 = txn(1);
    precommitted_txn(&mut participant, t1, &ALL, &[COORDINATOR, LOW, HIGH]);
    step(
        &mut participant,
        20,
        decide_from(COORDINATOR, 3, t1, Decision::Commit),
        vec![persist(3, Record::Committed { txn: t1 })],
    );
    assert!(!participant.may_linger(Lsn(3), &Record::Committed { txn: t1 }));
}
