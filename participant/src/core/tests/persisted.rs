//! Persisted: finished txns are remembered within their bound, and an unknown lsn is
//! ignored.

use super::*;

#[test]
fn finished_txns_beyond_the_bound_are_left_to_the_store() {
    let mut participant = participant();
    for n in 1..=3u64 {
        let t = txn(n.into());
        in_doubt_on_a(&mut participant, 0, t, n, 2 * n - 1);
        step(
            &mut participant,
            0,
            decide(n, t, Decision::Commit),
            vec![persist(2 * n, Record::Committed { txn: t })],
        );
        step(
            &mut participant,
            0,
            Input::Persisted { lsn: Lsn(2 * n) },
            vec![ack(n, t, Outcome::Committed)],
        );
    }
    assert!(!participant.knows(txn(1)));
    assert!(participant.knows(txn(2)));
    assert!(participant.knows(txn(3)));
    assert_eq!(participant.counts().committed, 2);
}

#[test]
fn an_unknown_persisted_lsn_is_logged_and_ignored() {
    let mut participant = participant();
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(42) },
        vec![],
    );
}
