//! A termination follower: answers its leader, applies its PreCommit and decision, and
//! elects again when the leader goes down, stays silent, or is no candidate.

use super::*;

#[test]
fn follower_answers_its_leader_and_applies_the_leaders_precommit_and_commit() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[COORDINATOR, LOW, HIGH]);
    step(
        &mut participant,
        10,
        down(COORDINATOR),
        vec![ask_state(LOW, t1), ask_state(HIGH, t1)],
    );
    assert_eq!(participant.in_doubt(Millis(10))[0].leader, Some(LOW));
    assert_eq!(participant.poll_timeout(), Some(Millis(310)));
    // A request from the leader shows it alive: the follower's round starts over.
    step(
        &mut participant,
        100,
        state_query_from(LOW, 2, t1),
        vec![state_to(LOW, 2, t1, TxnState::Waiting)],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(400)));
    step(
        &mut participant,
        150,
        precommit_from(LOW, 3, t1),
        vec![persist(2, Record::PreCommitted { txn: t1 })],
    );
    step(
        &mut participant,
        160,
        Input::Persisted { lsn: Lsn(2) },
        vec![ack_to(LOW, 3, t1, Outcome::PreCommitted)],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(450)));
    step(
        &mut participant,
        200,
        decide_from(LOW, 4, t1, Decision::Commit),
        vec![persist(3, Record::Committed { txn: t1 })],
    );
    step(
        &mut participant,
        210,
        Input::Persisted { lsn: Lsn(3) },
        vec![ack_to(LOW, 4, t1, Outcome::Committed)],
    );
    // Answers to our own round's queries, arriving late, change nothing.
    step(
        &mut participant,
        220,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
}

#[test]
fn follower_elects_again_when_its_leader_goes_down() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[LOW, HIGH]);
    fire(
        &mut participant,
        2_000,
        vec![ask_state(LOW, t1), ask_state(HIGH, t1)],
    );
    step(
        &mut participant,
        2_050,
        down(LOW),
        vec![ask_state(HIGH, t1)],
    );
    assert_eq!(participant.in_doubt(Millis(2_050))[0].leader, Some(ME));
    step(
        &mut participant,
        2_060,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![persist(
            2,
            aborted3(
                t1,
                "termination protocol: every operational participant was waiting",
            ),
        )],
    );
    step(
        &mut participant,
        2_070,
        Input::Persisted { lsn: Lsn(2) },
        vec![tell_abort(HIGH, t1, ALL_WAITING)],
    );
}

#[test]
fn follower_with_a_silent_leader_asks_again_each_round_and_adopts_an_outcome() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[LOW, HIGH]);
    fire(
        &mut participant,
        2_000,
        vec![ask_state(LOW, t1), ask_state(HIGH, t1)],
    );
    fire(
        &mut participant,
        2_300,
        vec![ask_state(LOW, t1), ask_state(HIGH, t1)],
    );
    step(
        &mut participant,
        2_310,
        state_reply(LOW, t1, TxnState::Waiting),
        vec![],
    );
    step(
        &mut participant,
        2_320,
        state_reply(LOW, t1, TxnState::Committed),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    // A follower does not tell anyone: the leader does.
    step(
        &mut participant,
        2_330,
        Input::Persisted { lsn: Lsn(2) },
        vec![],
    );
}

#[test]
fn a_leader_that_is_not_a_voter_is_skipped() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[LOW, HIGH]);
    fire(
        &mut participant,
        2_000,
        vec![ask_state(LOW, t1), ask_state(HIGH, t1)],
    );
    // LOW voted read-only: it answers like an undecided 2PC participant.
    step(
        &mut participant,
        2_010,
        state_reply(LOW, t1, TxnState::Prepared),
        vec![ask_state(HIGH, t1)],
    );
    step(
        &mut participant,
        2_020,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![persist(
            2,
            aborted3(
                t1,
                "termination protocol: every operational participant was waiting",
            ),
        )],
    );
    step(
        &mut participant,
        2_030,
        Input::Persisted { lsn: Lsn(2) },
        vec![tell_abort(HIGH, t1, ALL_WAITING)],
    );
}

#[test]
fn follower_elects_again_when_its_leader_turns_out_recovered() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[COORDINATOR, LOW, HIGH]);
    step(
        &mut participant,
        10,
        down(COORDINATOR),
        vec![ask_state(LOW, t1), ask_state(HIGH, t1)],
    );
    assert_eq!(participant.in_doubt(Millis(10))[0].leader, Some(LOW));
    step(
        &mut participant,
        20,
        recovered_reply(LOW, t1, TxnState::Waiting),
        vec![ask_state(LOW, t1), ask_state(HIGH, t1)],
    );
    assert_eq!(participant.in_doubt(Millis(20))[0].leader, Some(ME));
    step(
        &mut participant,
        30,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
    step(
        &mut participant,
        40,
        recovered_reply(LOW, t1, TxnState::Waiting),
        vec![persist(
            2,
            aborted3(
                t1,
                "termination protocol: every operational participant was waiting",
            ),
        )],
    );
    step(
        &mut participant,
        50,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            tell_abort(LOW, t1, ALL_WAITING),
            tell_abort(HIGH, t1, ALL_WAITING),
        ],
    );
}
