//! 3PC with no live peer: the card's rules (`waiting` -> abort, `precommitted` ->
//! commit) at the timeouts or the coordinator's failure, and late messages afterwards.

use super::*;

#[test]
fn alone_at_the_waiting_timeout_aborts_and_late_messages_get_aborted() {
    let mut participant = participant();
    let t1 = txn(1);
    // The coordinator is up but silent; both peers crash after the vote.
    waiting_txn(&mut participant, t1, &ALL, &[COORDINATOR, LOW, HIGH]);
    peers_crash(&mut participant, 5, &[LOW, HIGH]);
    let reason = "termination protocol: no live peer while waiting (the card's rule)";
    fire(
        &mut participant,
        2_000,
        vec![persist(2, aborted3(t1, reason))],
    );
    assert_eq!(participant.poll_timeout(), None);
    // The coordinator's PreCommit arrives late: it learns the truth once it is durable.
    step(
        &mut participant,
        2_010,
        precommit_from(COORDINATOR, 2, t1),
        vec![],
    );
    step(
        &mut participant,
        2_020,
        Input::Persisted { lsn: Lsn(2) },
        vec![ack(2, t1, Outcome::Aborted)],
    );
    step(
        &mut participant,
        2_030,
        decide(3, t1, Decision::Commit),
        vec![ack(3, t1, Outcome::Aborted)],
    );
}

#[test]
fn alone_when_the_coordinator_goes_down_aborts_a_waiting_txn_at_once() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[COORDINATOR, LOW, HIGH]);
    peers_crash(&mut participant, 5, &[LOW, HIGH]);
    step(
        &mut participant,
        10,
        down(COORDINATOR),
        vec![persist(
            2,
            aborted3(
                t1,
                "termination protocol: no live peer while waiting (the card's rule)",
            ),
        )],
    );
}

#[test]
fn alone_at_the_precommitted_timeout_commits() {
    let mut participant = participant();
    let t1 = txn(1);
    precommitted_txn(&mut participant, t1, &[ME, LOW], &[COORDINATOR, LOW]);
    peers_crash(&mut participant, 20, &[LOW]);
    fire(
        &mut participant,
        2_010,
        vec![persist(3, Record::Committed { txn: t1 })],
    );
    step(
        &mut participant,
        2_020,
        Input::Persisted { lsn: Lsn(3) },
        vec![],
    );
    step(
        &mut participant,
        2_030,
        decide(3, t1, Decision::Commit),
        vec![ack(3, t1, Outcome::Committed)],
    );
    step(
        &mut participant,
        2_030,
        precommit_from(COORDINATOR, 4, t1),
        vec![ack(4, t1, Outcome::Committed)],
    );
}
