//! 3PC txns recovered in doubt never decide alone and never lead: they ask until a
//! participant (or the coordinator) that knows answers.

use super::*;

#[test]
fn recovered_txn_alone_never_decides_and_keeps_asking_with_backoff() {
    let mut participant = participant();
    let t1 = txn(1);
    step(
        &mut participant,
        0,
        Input::Recover {
            txns: vec![stored3(t1, StoredState::PreCommitted, &ALL)],
            holds: Vec::new(),
            wall_ms: 0,
            stored_max: None,
        },
        vec![],
    );
    assert_eq!(participant.locks_held(), 1);
    let mut fired = Vec::new();
    while let Some(at) = participant.poll_timeout()
        && at.0 <= 3_000
    {
        fire(&mut participant, at.0, vec![]);
        fired.push(at.0);
    }
    assert_eq!(
        fired,
        vec![100, 200, 400, 800, 1200, 1600, 2000, 2400, 2800]
    );
    let in_doubt = participant.in_doubt(Millis(3_000));
    assert_eq!(
        (
            in_doubt[0].recovered,
            in_doubt[0].blocked,
            in_doubt[0].state
        ),
        (true, true, TxnState::PreCommitted)
    );
    assert_eq!(participant.counts().blocked, 1);
    // The coordinator comes back: asked at once; undecided changes nothing; commit does.
    step(&mut participant, 3_000, up(COORDINATOR), vec![query(t1)]);
    step(
        &mut participant,
        3_010,
        Input::DecisionAnswer {
            from: COORDINATOR,
            txn: t1,
            answer: Answer::Undecided,
        },
        vec![],
    );
    fire(&mut participant, 3_100, vec![query(t1)]);
    step(
        &mut participant,
        3_110,
        Input::DecisionAnswer {
            from: COORDINATOR,
            txn: t1,
            answer: Answer::Commit,
        },
        vec![persist(1, Record::Committed { txn: t1 })],
    );
}

/// Recovered in doubt, this participant never leads: its peer, taken as operational until
/// it says otherwise, leads, and its decision is applied.
#[test]
fn recovered_txn_never_leads_and_follows_an_operational_peer() {
    let mut participant = participant();
    let t1 = txn(1);
    step(
        &mut participant,
        0,
        Input::Recover {
            txns: vec![stored3(t1, StoredState::Waiting, &LEADING)],
            holds: Vec::new(),
            wall_ms: 0,
            stored_max: None,
        },
        vec![],
    );
    step(&mut participant, 10, up(HIGH), vec![ask_state(HIGH, t1)]);
    assert_eq!(participant.in_doubt(Millis(10))[0].leader, Some(HIGH));
    // HIGH never failed: its state is for HIGH to act on, not for a recovered follower.
    step(
        &mut participant,
        20,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
    fire(&mut participant, 110, vec![ask_state(HIGH, t1)]);
    step(
        &mut participant,
        150,
        decide_from(HIGH, 2, t1, Decision::Abort),
        vec![persist(
            1,
            aborted3(t1, "aborted by participant 7 (termination protocol)"),
        )],
    );
    step(
        &mut participant,
        160,
        Input::Persisted { lsn: Lsn(1) },
        vec![ack_to(HIGH, 2, t1, Outcome::Aborted)],
    );
}

/// Seed 7108 (3pc, crash-only) in one core: a peer committed alone by the card's rule and
/// crashed; the two others restarted `waiting`. Together they know nothing: "all waiting
/// -> abort" would contradict the commit. They stay in doubt, visibly blocked, and ask
/// until a participant that knows is back.
#[test]
fn recovered_peers_alone_decide_nothing_until_one_that_knows_answers() {
    let mut participant = participant();
    let t1 = txn(1);
    step(
        &mut participant,
        0,
        Input::Recover {
            txns: vec![stored3(t1, StoredState::Waiting, &LEADING)],
            holds: Vec::new(),
            wall_ms: 0,
            stored_max: None,
        },
        vec![],
    );
    step(&mut participant, 10, up(HIGH), vec![ask_state(HIGH, t1)]);
    // Asked, it says it is recovered too.
    step(
        &mut participant,
        15,
        state_query_from(HIGH, 1, t1),
        vec![recovered_state_to(HIGH, 1, t1, TxnState::Waiting)],
    );
    // Its presumed leader is recovered: nobody is left to lead; a new round just asks.
    step(
        &mut participant,
        20,
        recovered_reply(HIGH, t1, TxnState::Waiting),
        vec![ask_state(HIGH, t1)],
    );
    let in_doubt = &participant.in_doubt(Millis(20))[0];
    assert_eq!(
        (in_doubt.leader, in_doubt.blocked, in_doubt.state),
        (None, true, TxnState::Waiting)
    );
    step(
        &mut participant,
        30,
        recovered_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
    fire(&mut participant, 220, vec![ask_state(HIGH, t1)]);
    fire(&mut participant, 620, vec![ask_state(HIGH, t1)]);
    assert_eq!(participant.counts().blocked, 1);
    // The participant that committed is back: adopted.
    step(
        &mut participant,
        700,
        up(HIGHER),
        vec![ask_state(HIGH, t1), ask_state(HIGHER, t1)],
    );
    assert_eq!(participant.in_doubt(Millis(700))[0].leader, Some(HIGHER));
    assert_eq!(participant.counts().blocked, 0);
    step(
        &mut participant,
        710,
        state_reply(HIGHER, t1, TxnState::Committed),
        vec![persist(1, Record::Committed { txn: t1 })],
    );
    step(
        &mut participant,
        720,
        Input::Persisted { lsn: Lsn(1) },
        vec![],
    );
}

/// With the coordinator up, recovered peers take its answer, not their states: a recovered
/// `precommitted` peer does not make them commit what the coordinator aborted.
#[test]
fn recovered_peers_take_the_coordinators_answer_over_their_states() {
    let mut participant = participant();
    let t1 = txn(1);
    step(
        &mut participant,
        0,
        Input::Recover {
            txns: vec![stored3(t1, StoredState::Waiting, &LEADING)],
            holds: Vec::new(),
            wall_ms: 0,
            stored_max: None,
        },
        vec![],
    );
    step(&mut participant, 0, up(COORDINATOR), vec![query(t1)]);
    step(
        &mut participant,
        10,
        up(HIGH),
        vec![query(t1), ask_state(HIGH, t1)],
    );
    step(
        &mut participant,
        20,
        recovered_reply(HIGH, t1, TxnState::PreCommitted),
        vec![query(t1), ask_state(HIGH, t1)],
    );
    let in_doubt = &participant.in_doubt(Millis(20))[0];
    assert_eq!((in_doubt.leader, in_doubt.blocked), (None, false));
    step(
        &mut participant,
        30,
        Input::DecisionAnswer {
            from: COORDINATOR,
            txn: t1,
            answer: Answer::Abort,
        },
        vec![persist(1, aborted3(t1, "the coordinator answered abort"))],
    );
}

#[test]
fn recovered_precommitted_txn_adopts_a_peers_abort() {
    let mut participant = participant();
    let t1 = txn(1);
    step(
        &mut participant,
        0,
        Input::Recover {
            txns: vec![stored3(t1, StoredState::PreCommitted, &ALL)],
            holds: Vec::new(),
            wall_ms: 0,
            stored_max: None,
        },
        vec![],
    );
    // LOW leads; the follower still hears the outcome from whoever knows it.
    step(&mut participant, 10, up(LOW), vec![ask_state(LOW, t1)]);
    step(
        &mut participant,
        20,
        state_reply(LOW, t1, TxnState::Aborted),
        vec![persist(
            1,
            aborted3(t1, "participant 3 reported the txn aborted"),
        )],
    );
    step(
        &mut participant,
        30,
        Input::Persisted { lsn: Lsn(1) },
        vec![],
    );
    assert_eq!(participant.locks_held(), 0);
}
