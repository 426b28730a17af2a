//! A 2PC txn in doubt asks: the coordinator with backoff while it is up (DecisionQuery,
//! DecisionAnswer), its peers while it is down, and says when it is blocked.

use super::*;

#[test]
fn in_doubt_queries_back_off_from_min_to_max() {
    let mut participant = participant();
    let t1 = txn(1);
    step(
        &mut participant,
        0,
        Input::PeerUp { peer: COORDINATOR },
        vec![],
    );
    in_doubt_on_a(&mut participant, 1000, t1, 1, 1);
    let mut fired = Vec::new();
    while let Some(at) = participant.poll_timeout()
        && at.0 <= 3000
    {
        participant.handle_timeout(at);
        let outputs: Vec<Output> = std::iter::from_fn(|| participant.poll_output()).collect();
        assert_eq!(outputs, vec![query(t1)]);
        assert_eq!(participant.check_invariants(), Ok(()));
        fired.push(at.0);
    }
    assert_eq!(fired, vec![1100, 1300, 1700, 2100, 2500, 2900]);
    step(
        &mut participant,
        2950,
        Input::DecisionAnswer {
            from: COORDINATOR,
            txn: t1,
            answer: Answer::Undecided,
        },
        vec![],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(3300)));
}

#[test]
fn no_query_while_the_coordinator_is_down() {
    let mut participant = participant();
    let t1 = txn(1);
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    participant.handle_timeout(Millis(100));
    assert_eq!(participant.poll_output(), None);
    assert_eq!(participant.check_invariants(), Ok(()));
    assert_eq!(participant.poll_timeout(), Some(Millis(300)));
    step(
        &mut participant,
        150,
        Input::PeerUp { peer: COORDINATOR },
        vec![query(t1)],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(250)));
    step(
        &mut participant,
        160,
        Input::PeerDown { peer: COORDINATOR },
        vec![],
    );
    participant.handle_timeout(Millis(250));
    assert_eq!(participant.poll_output(), None);
}

#[test]
fn peer_up_queries_every_in_doubt_txn_of_that_coordinator() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    step(
        &mut participant,
        0,
        prepare(2, t2, vec![put("b", 1)], &[("b", None)]),
        vec![persist(
            2,
            prepared(t2, vec![entry(0, "b", OpKind::Put, None, int(1))]),
        )],
    );
    // Still preparing: not in doubt, not queried.
    step(&mut participant, 10, Input::PeerUp { peer: OTHER }, vec![]);
    step(
        &mut participant,
        10,
        Input::PeerUp { peer: COORDINATOR },
        vec![query(t1)],
    );
    step(
        &mut participant,
        10,
        Input::Persisted { lsn: Lsn(2) },
        vec![vote(2, t2, Vote::Yes, vec![])],
    );
    step(
        &mut participant,
        20,
        Input::PeerUp { peer: COORDINATOR },
        vec![query(t1), query(t2)],
    );
}

#[test]
fn decision_answers_act_like_decide_without_a_reply() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    step(
        &mut participant,
        0,
        Input::DecisionAnswer {
            from: OTHER,
            txn: t1,
            answer: Answer::Commit,
        },
        vec![],
    );
    step(
        &mut participant,
        0,
        Input::DecisionAnswer {
            from: COORDINATOR,
            txn: t1,
            answer: Answer::Commit,
        },
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    // A late duplicate answer changes nothing.
    step(
        &mut participant,
        0,
        Input::DecisionAnswer {
            from: COORDINATOR,
            txn: t1,
            answer: Answer::Abort,
        },
        vec![],
    );
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![],
    );
    assert_eq!(participant.locks_held(), 0);

    step(
        &mut participant,
        0,
        prepare(3, t2, vec![put("a", 9)], &[("a", int(5))]),
        vec![persist(
            3,
            prepared(t2, vec![entry(0, "a", OpKind::Put, int(5), int(9))]),
        )],
    );
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(3) },
        vec![vote(3, t2, Vote::Yes, vec![])],
    );
    step(
        &mut participant,
        0,
        Input::DecisionAnswer {
            from: COORDINATOR,
            txn: t2,
            answer: Answer::Abort,
        },
        vec![persist(4, aborted(t2, "the coordinator answered abort"))],
    );
    assert_eq!(participant.locks_held(), 0);
    step(
        &mut participant,
        0,
        Input::DecisionAnswer {
            from: COORDINATOR,
            txn: t2,
            answer: Answer::Commit,
        },
        vec![],
    );
}

#[test]
fn in_doubt_2pc_asks_only_the_coordinator_while_it_is_up() {
    let mut participant = participant();
    let t1 = txn(1);
    step(&mut participant, 0, up(COORDINATOR), vec![]);
    step(&mut participant, 0, up(LOW), vec![]);
    in_doubt_with_peers(&mut participant, t1);
    fire(&mut participant, 100, vec![query(t1)]);
    step(&mut participant, 110, up(HIGH), vec![]);
    // The coordinator goes down: the peers are asked at once, and the backoff starts over.
    step(
        &mut participant,
        120,
        down(COORDINATOR),
        vec![ask_state(LOW, t1), ask_state(HIGH, t1)],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(220)));
    step(
        &mut participant,
        130,
        state_reply(LOW, t1, TxnState::Committed),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    step(
        &mut participant,
        140,
        Input::Persisted { lsn: Lsn(2) },
        vec![],
    );
    assert_eq!(participant.locks_held(), 0);
}

#[test]
fn in_doubt_2pc_adopts_a_peers_abort_including_one_that_never_voted() {
    let mut participant = participant();
    let t1 = txn(1);
    step(&mut participant, 0, up(HIGH), vec![]);
    in_doubt_with_peers(&mut participant, t1);
    fire(&mut participant, 100, vec![ask_state(HIGH, t1)]);
    step(
        &mut participant,
        110,
        state_reply(HIGH, t1, TxnState::Aborted),
        vec![persist(
            2,
            aborted(t1, "participant 7 reported the txn aborted"),
        )],
    );
    assert_eq!(participant.locks_held(), 0);
}

#[test]
fn in_doubt_2pc_stays_blocked_while_every_reachable_peer_is_in_doubt() {
    let mut participant = participant();
    let t1 = txn(1);
    step(&mut participant, 0, up(LOW), vec![]);
    in_doubt_with_peers(&mut participant, t1);
    assert!(!participant.in_doubt(Millis(0))[0].blocked);
    fire(&mut participant, 100, vec![ask_state(LOW, t1)]);
    step(
        &mut participant,
        110,
        state_reply(LOW, t1, TxnState::Prepared),
        vec![],
    );
    assert!(participant.in_doubt(Millis(110))[0].blocked);
    assert_eq!(participant.counts().blocked, 1);
    fire(&mut participant, 300, vec![ask_state(LOW, t1)]);
    // A peer coming up is asked at once, and the query backoff starts over.
    step(&mut participant, 310, up(HIGH), vec![ask_state(HIGH, t1)]);
    assert!(!participant.in_doubt(Millis(310))[0].blocked);
    assert_eq!(participant.poll_timeout(), Some(Millis(410)));
    step(
        &mut participant,
        320,
        state_reply(HIGH, t1, TxnState::Committed),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
}
