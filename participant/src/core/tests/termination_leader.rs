//! A termination leader: collects states, decides by Skeen's rules (precommitting the
//! waiting peers first on the way to a commit), waits for live peers, and tells its
//! decision once durable.

use super::*;
use wire::ToParticipant;

#[test]
fn leader_aborts_when_all_are_waiting_and_tells_them_once_durable() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &LEADING, &[COORDINATOR, HIGH, HIGHER]);
    fire(
        &mut participant,
        2_000,
        vec![query(t1), ask_state(HIGH, t1), ask_state(HIGHER, t1)],
    );
    assert_eq!(participant.counts().terminating, 1);
    step(
        &mut participant,
        2_010,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
    step(
        &mut participant,
        2_010,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
    step(
        &mut participant,
        2_020,
        state_reply(HIGHER, t1, TxnState::Waiting),
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
        vec![
            tell_abort(HIGH, t1, ALL_WAITING),
            tell_abort(HIGHER, t1, ALL_WAITING),
        ],
    );
    // Late and duplicate messages after the decision: the truth, no state change.
    step(
        &mut participant,
        2_040,
        ack_from(HIGH, t1, Outcome::Aborted),
        vec![],
    );
    step(
        &mut participant,
        2_040,
        state_reply(HIGHER, t1, TxnState::PreCommitted),
        vec![],
    );
    step(
        &mut participant,
        2_050,
        Input::DecisionAnswer {
            from: COORDINATOR,
            txn: t1,
            answer: Answer::Commit,
        },
        vec![],
    );
    step(
        &mut participant,
        2_050,
        precommit_from(COORDINATOR, 5, t1),
        vec![ack(5, t1, Outcome::Aborted)],
    );
    step(
        &mut participant,
        2_050,
        state_query_from(HIGH, 6, t1),
        vec![state_to(HIGH, 6, t1, TxnState::Aborted)],
    );
    fire(&mut participant, 5_000, vec![]);
}

#[test]
fn precommitted_leader_precommits_the_waiting_peers_then_commits() {
    let mut participant = participant();
    let t1 = txn(1);
    precommitted_txn(&mut participant, t1, &LEADING, &[COORDINATOR, HIGH, HIGHER]);
    fire(
        &mut participant,
        2_010,
        vec![query(t1), ask_state(HIGH, t1), ask_state(HIGHER, t1)],
    );
    step(
        &mut participant,
        2_020,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
    step(
        &mut participant,
        2_030,
        state_reply(HIGHER, t1, TxnState::PreCommitted),
        vec![send(HIGH, ToParticipant::PreCommit { txn: t1 })],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(2_330)));
    // Only the peers sent PreCommit count.
    step(
        &mut participant,
        2_040,
        ack_from(HIGHER, t1, Outcome::PreCommitted),
        vec![],
    );
    step(
        &mut participant,
        2_050,
        ack_from(HIGH, t1, Outcome::PreCommitted),
        vec![persist(3, Record::Committed { txn: t1 })],
    );
    step(
        &mut participant,
        2_060,
        Input::Persisted { lsn: Lsn(3) },
        vec![
            tell(HIGH, t1, Decision::Commit),
            tell(HIGHER, t1, Decision::Commit),
        ],
    );
    // The coordinator's DoCommit, late, is acked with the outcome.
    step(
        &mut participant,
        2_070,
        decide(4, t1, Decision::Commit),
        vec![ack(4, t1, Outcome::Committed)],
    );
}

#[test]
fn waiting_leader_commits_when_a_peer_is_precommitted_and_none_is_waiting() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &[ME, HIGH], &[COORDINATOR, HIGH]);
    step(
        &mut participant,
        10,
        down(COORDINATOR),
        vec![ask_state(HIGH, t1)],
    );
    step(
        &mut participant,
        20,
        state_reply(HIGH, t1, TxnState::PreCommitted),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    step(
        &mut participant,
        30,
        Input::Persisted { lsn: Lsn(2) },
        vec![tell(HIGH, t1, Decision::Commit)],
    );
}

#[test]
fn leader_waits_through_the_precommit_round_for_a_live_peer_and_commits_once_it_is_down() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &LEADING, &[COORDINATOR, HIGH, HIGHER]);
    step(
        &mut participant,
        10,
        down(COORDINATOR),
        vec![ask_state(HIGH, t1), ask_state(HIGHER, t1)],
    );
    step(
        &mut participant,
        20,
        state_reply(HIGH, t1, TxnState::PreCommitted),
        vec![],
    );
    step(
        &mut participant,
        30,
        state_reply(HIGHER, t1, TxnState::Waiting),
        vec![send(HIGHER, ToParticipant::PreCommit { txn: t1 })],
    );
    // The round is over but HIGHER is up: slow (its PreCommitted record is being
    // written), not failed. Committing without its ack is safe here, but the rule is one:
    // only the failure detector takes a peer out. It is asked again (a reconnect may
    // have lost the first PreCommit).
    fire(
        &mut participant,
        330,
        vec![send(HIGHER, ToParticipant::PreCommit { txn: t1 })],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(630)));
    step(
        &mut participant,
        340,
        down(HIGHER),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    step(
        &mut participant,
        350,
        Input::Persisted { lsn: Lsn(2) },
        vec![tell(HIGH, t1, Decision::Commit)],
    );
}

#[test]
fn leader_never_decides_without_a_live_peer_that_has_not_answered() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &LEADING, &[COORDINATOR, HIGH, HIGHER]);
    step(
        &mut participant,
        10,
        down(COORDINATOR),
        vec![ask_state(HIGH, t1), ask_state(HIGHER, t1)],
    );
    step(
        &mut participant,
        20,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
    // Round after round: HIGHER is up but silent (its reply waits for a slow write; it
    // may be precommitted). "All waiting: abort" now could split the outcome.
    fire(&mut participant, 310, vec![ask_state(HIGHER, t1)]);
    fire(&mut participant, 810, vec![ask_state(HIGHER, t1)]);
    assert_eq!(participant.counts().in_doubt, 1);
    step(
        &mut participant,
        900,
        state_reply(HIGHER, t1, TxnState::PreCommitted),
        vec![send(HIGH, ToParticipant::PreCommit { txn: t1 })],
    );
}

#[test]
fn leader_decides_at_once_when_the_last_awaited_peer_goes_down() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &LEADING, &[COORDINATOR, HIGH, HIGHER]);
    step(
        &mut participant,
        10,
        down(COORDINATOR),
        vec![ask_state(HIGH, t1), ask_state(HIGHER, t1)],
    );
    step(
        &mut participant,
        20,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
    step(
        &mut participant,
        30,
        down(HIGHER),
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
        40,
        Input::Persisted { lsn: Lsn(2) },
        vec![tell_abort(HIGH, t1, ALL_WAITING)],
    );
}

#[test]
fn leader_adopts_a_decided_peer_and_tells_the_others() {
    const ABORTED_AT_7: &str = "participant 7 reported the txn aborted";
    for (state, record, told) in [
        (TxnState::Committed, Record::Committed { txn: txn(1) }, None),
        (
            TxnState::Aborted,
            aborted3(txn(1), ABORTED_AT_7),
            Some(ABORTED_AT_7),
        ),
    ] {
        let mut participant = participant();
        let t1 = txn(1);
        precommitted_txn(&mut participant, t1, &LEADING, &[COORDINATOR, HIGH, HIGHER]);
        step(
            &mut participant,
            20,
            down(COORDINATOR),
            vec![ask_state(HIGH, t1), ask_state(HIGHER, t1)],
        );
        step(
            &mut participant,
            30,
            state_reply(HIGH, t1, state),
            vec![persist(3, record)],
        );
        step(
            &mut participant,
            40,
            Input::Persisted { lsn: Lsn(3) },
            match told {
                None => vec![
                    tell(HIGH, t1, Decision::Commit),
                    tell(HIGHER, t1, Decision::Commit),
                ],
                Some(reason) => vec![tell_abort(HIGH, t1, reason), tell_abort(HIGHER, t1, reason)],
            },
        );
    }
}

#[test]
fn a_peer_aborted_during_the_precommit_round_makes_the_leader_abort() {
    let mut participant = participant();
    let t1 = txn(1);
    precommitted_txn(&mut participant, t1, &[ME, HIGH], &[COORDINATOR, HIGH]);
    step(
        &mut participant,
        20,
        down(COORDINATOR),
        vec![ask_state(HIGH, t1)],
    );
    step(
        &mut participant,
        30,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![send(HIGH, ToParticipant::PreCommit { txn: t1 })],
    );
    step(
        &mut participant,
        40,
        ack_from(HIGH, t1, Outcome::Aborted),
        vec![persist(
            3,
            aborted3(t1, "termination protocol: participant 7 had aborted"),
        )],
    );
}

/// The counterexample to counting a recovered peer's state: the operational peers aborted
/// (all waiting) while HIGH was down `precommitted`; the leader of that abort crashed
/// before telling this participant. Its own `waiting` shows nobody committed; HIGH's
/// `precommitted` predates the abort, so it is no evidence: abort, and tell HIGH.
#[test]
fn operational_leader_takes_no_evidence_from_a_recovered_precommitted_peer() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &LEADING, &[COORDINATOR, HIGH, HIGHER]);
    step(
        &mut participant,
        10,
        down(COORDINATOR),
        vec![ask_state(HIGH, t1), ask_state(HIGHER, t1)],
    );
    step(
        &mut participant,
        20,
        recovered_reply(HIGH, t1, TxnState::PreCommitted),
        vec![],
    );
    step(
        &mut participant,
        30,
        state_reply(HIGHER, t1, TxnState::Waiting),
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
        40,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            tell_abort(HIGH, t1, ALL_WAITING),
            tell_abort(HIGHER, t1, ALL_WAITING),
        ],
    );
}

/// An operational leader decides as usual with recovered peers in the round, and moves a
/// recovered `waiting` peer through PreCommit on the way to a commit.
#[test]
fn operational_leader_precommits_a_recovered_waiting_peer_then_commits() {
    let mut participant = participant();
    let t1 = txn(1);
    precommitted_txn(&mut participant, t1, &[ME, HIGH], &[COORDINATOR, HIGH]);
    step(
        &mut participant,
        20,
        down(COORDINATOR),
        vec![ask_state(HIGH, t1)],
    );
    step(
        &mut participant,
        30,
        recovered_reply(HIGH, t1, TxnState::Waiting),
        vec![send(HIGH, ToParticipant::PreCommit { txn: t1 })],
    );
    step(
        &mut participant,
        40,
        ack_from(HIGH, t1, Outcome::PreCommitted),
        vec![persist(3, Record::Committed { txn: t1 })],
    );
    step(
        &mut participant,
        50,
        Input::Persisted { lsn: Lsn(3) },
        vec![tell(HIGH, t1, Decision::Commit)],
    );
}
