//! Shared and exclusive locks: readers coexist, a writer conflicts with any other holder,
//! a txn that reads and writes a key holds it exclusively.

use super::*;

/// `txn` reads `g` (holding 7) and puts `key` = 1, voted YES (lsn `lsn`).
fn in_doubt_reading_g(participant: &mut Participant, txn: TxnId, id: u64, lsn: u64, key: &str) {
    step(
        participant,
        0,
        prepare(
            id,
            txn,
            vec![get("g"), put(key, 1)],
            &[("g", int(7)), (key, None)],
        ),
        vec![persist(
            lsn,
            prepared(
                txn,
                vec![
                    entry(0, "g", OpKind::Get, int(7), int(7)),
                    entry(1, key, OpKind::Put, None, int(1)),
                ],
            ),
        )],
    );
    step(
        participant,
        0,
        Input::Persisted { lsn: Lsn(lsn) },
        vec![vote(id, txn, Vote::Yes, vec![read("g", int(7))])],
    );
}

#[test]
fn shared_locks_of_two_readers_coexist() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    in_doubt_reading_g(&mut participant, t1, 1, 1, "a");
    in_doubt_reading_g(&mut participant, t2, 2, 2, "b");
    // g shared by both, a and b exclusive.
    assert_eq!(participant.locks_held(), 3);
    step(
        &mut participant,
        1,
        decide(3, t1, Decision::Commit),
        vec![persist(3, Record::Committed { txn: t1 })],
    );
    step(
        &mut participant,
        1,
        Input::Persisted { lsn: Lsn(3) },
        vec![ack(3, t1, Outcome::Committed)],
    );
    // t2 still holds g (shared) and b.
    assert_eq!(participant.locks_held(), 2);
}

#[test]
fn a_writer_conflicts_with_a_reader() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    in_doubt_reading_g(&mut participant, t1, 1, 1, "a");
    let reason = format!("lock conflict on key \"g\" held by txn {t1}");
    step(
        &mut participant,
        0,
        prepare(2, t2, vec![put("g", 3)], &[("g", int(7))]),
        vec![persist(2, aborted(t2, &reason)), no(2, t2, &reason)],
    );
    assert_eq!(participant.locks_held(), 2);
}

#[test]
fn a_reader_conflicts_with_a_writer() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    in_doubt_reading_g(&mut participant, t1, 1, 1, "a");
    let reason = format!("lock conflict on key \"a\" held by txn {t1}");
    step(
        &mut participant,
        0,
        prepare(
            2,
            t2,
            vec![get("a"), put("b", 1)],
            &[("a", None), ("b", None)],
        ),
        vec![persist(2, aborted(t2, &reason)), no(2, t2, &reason)],
    );
}

#[test]
fn reading_and_writing_one_key_takes_it_exclusively() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    step(
        &mut participant,
        0,
        prepare(
            1,
            t1,
            vec![get("g"), add("g", 1, None, None)],
            &[("g", int(7))],
        ),
        vec![persist(
            1,
            prepared(
                t1,
                vec![
                    entry(0, "g", OpKind::Get, int(7), int(7)),
                    entry(1, "g", OpKind::Add, int(7), int(8)),
                ],
            ),
        )],
    );
    assert_eq!(participant.locks_held(), 1);
    let reason = format!("lock conflict on key \"g\" held by txn {t1}");
    step(
        &mut participant,
        0,
        prepare(
            2,
            t2,
            vec![get("g"), put("b", 1)],
            &[("g", int(7)), ("b", None)],
        ),
        vec![persist(2, aborted(t2, &reason)), no(2, t2, &reason)],
    );
}
