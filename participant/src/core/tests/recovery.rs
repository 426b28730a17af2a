//! Recover: in-doubt txns relock their keys and learn their outcome; others are skipped.

use super::*;

#[test]
fn recovered_txns_relock_their_keys_and_learn_the_outcome() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    let entries = vec![
        entry(0, "g", OpKind::Get, int(4), int(4)),
        entry(1, "a", OpKind::Put, None, int(5)),
    ];
    step(
        &mut participant,
        0,
        Input::Recover {
            txns: vec![stored(t1, StoredState::Prepared, None, entries)],
            holds: Vec::new(),
            wall_ms: 0,
            stored_max: None,
        },
        vec![],
    );
    assert_eq!(participant.locks_held(), 2);
    assert_eq!(
        participant.in_doubt(Millis(30)),
        vec![InDoubtTxn {
            txn: t1,
            coordinator: COORDINATOR,
            age_ms: 30,
            protocol: Protocol::TwoPhase,
            state: TxnState::Prepared,
            peers: vec![],
            recovered: true,
            leader: None,
            blocked: true,
        }]
    );
    // The recovered txn read g (shared) and wrote a (exclusive): a writer of g conflicts.
    let reason = format!("lock conflict on key \"g\" held by txn {t1}");
    step(
        &mut participant,
        0,
        prepare(1, t2, vec![put("g", 1)], &[("g", int(4))]),
        vec![persist(1, aborted(t2, &reason)), no(1, t2, &reason)],
    );
    // The coordinator, not having seen the vote, asks again: same vote, same reads.
    step(
        &mut participant,
        0,
        prepare(
            2,
            t1,
            vec![get("g"), put("a", 5)],
            &[("g", int(4)), ("a", None)],
        ),
        vec![vote(2, t1, Vote::Yes, vec![read("g", int(4))])],
    );
    step(
        &mut participant,
        5,
        Input::PeerUp { peer: COORDINATOR },
        vec![query(t1)],
    );
    step(
        &mut participant,
        6,
        Input::DecisionAnswer {
            from: COORDINATOR,
            txn: t1,
            answer: Answer::Commit,
        },
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    step(
        &mut participant,
        7,
        Input::Persisted { lsn: Lsn(1) },
        vec![],
    );
    step(
        &mut participant,
        7,
        Input::Persisted { lsn: Lsn(2) },
        vec![],
    );
    assert_eq!(participant.locks_held(), 0);
    assert_eq!(participant.in_doubt(Millis(8)), vec![]);
}

#[test]
fn recovery_skips_txns_that_are_not_in_doubt() {
    let mut participant = participant();
    let t1 = txn(1);
    step(
        &mut participant,
        0,
        Input::Recover {
            txns: vec![stored(
                t1,
                StoredState::Committed,
                None,
                vec![entry(0, "a", OpKind::Put, None, int(1))],
            )],
            holds: Vec::new(),
            wall_ms: 0,
            stored_max: None,
        },
        vec![],
    );
    assert_eq!(participant.locks_held(), 0);
    assert!(!participant.knows(t1));
}
