//! Peers asking each other: StateQuery on txns this node never voted YES on, 2PC in-doubt
//! resolution through peers, and read-only votes on txns with other participants.

use super::*;

pub(super) fn prepare2_with(id: u64, txn: TxnId, ops: Vec<Op>, participants: &[NodeId]) -> Input {
    let values = ops
        .iter()
        .map(|op| (op.key().to_string(), int(1)))
        .collect();
    Input::Prepare {
        from: from_coordinator(),
        id: RequestId(id),
        txn,
        protocol: Protocol::TwoPhase,
        ops,
        timeout_ms: 5_000,
        participants: participants.to_vec(),
        values,
        stored: None,
    }
}

/// A 2PC txn on key `a`, participants ME, LOW and HIGH, its YES vote sent at 0 (lsn 1).
fn in_doubt_with_peers(participant: &mut Participant, txn: TxnId) {
    check(
        participant,
        0,
        prepare2_with(1, txn, vec![put("a", 5)], &[ME, LOW, HIGH]),
        vec![persist(
            1,
            Record::Prepared {
                txn,
                protocol: Protocol::TwoPhase,
                coordinator: COORDINATOR,
                entries: vec![entry(0, "a", OpKind::Put, int(1), int(5))],
                participants: vec![ME, LOW, HIGH],
            },
        )],
    );
    check(
        participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![vote(1, txn, Vote::Yes, vec![])],
    );
}

#[test]
fn state_query_on_an_unknown_txn_aborts_it_durably_before_answering() {
    let mut participant = participant();
    let t1 = txn(1);
    let reason = "aborted before voting: asked by peer 3";
    check(
        &mut participant,
        0,
        state_query_from(LOW, 1, t1),
        vec![persist(
            1,
            Record::Aborted {
                txn: t1,
                protocol: Protocol::ThreePhase,
                coordinator: NodeId(0),
                reason: reason.to_string(),
            },
        )],
    );
    check(&mut participant, 0, state_query_from(HIGH, 2, t1), vec![]);
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![
            state_to(LOW, 1, t1, TxnState::Aborted),
            state_to(HIGH, 2, t1, TxnState::Aborted),
        ],
    );
    // The Prepare arriving later gets NO.
    check(
        &mut participant,
        0,
        prepare3(3, t1, &[ME, LOW, HIGH]),
        vec![no(3, t1, reason)],
    );
    assert_eq!(participant.locks_held(), 0);
}

#[test]
fn state_query_on_a_stored_txn_answers_the_stored_outcome() {
    let mut participant = participant();
    let t1 = txn(1);
    let with = |id: u64, state: StoredState| Input::StateQuery {
        from: from(LOW),
        id: RequestId(id),
        txn: t1,
        stored: Some(stored3(t1, state, &[ME, LOW])),
    };
    check(
        &mut participant,
        0,
        with(1, StoredState::Committed),
        vec![state_to(LOW, 1, t1, TxnState::Committed)],
    );
    check(
        &mut participant,
        0,
        with(2, StoredState::Aborted),
        vec![state_to(LOW, 2, t1, TxnState::Aborted)],
    );
    check(
        &mut participant,
        0,
        with(3, StoredState::ReadOnly),
        vec![state_to(LOW, 3, t1, TxnState::Prepared)],
    );
    assert!(!participant.knows(t1));
}

#[test]
fn state_query_before_the_3pc_vote_is_durable_aborts_and_both_answers_wait() {
    let mut participant = participant();
    let t1 = txn(1);
    check(&mut participant, 0, up(LOW), vec![]);
    check(
        &mut participant,
        0,
        prepare3(1, t1, &[ME, LOW]),
        vec![persist(1, waiting_record(t1, &[ME, LOW]))],
    );
    let reason = "aborted before voting: asked by peer 3";
    check(
        &mut participant,
        0,
        state_query_from(LOW, 2, t1),
        vec![persist(2, aborted3(t1, reason))],
    );
    assert_eq!(participant.locks_held(), 0);
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![],
    );
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![no(1, t1, reason), state_to(LOW, 2, t1, TxnState::Aborted)],
    );
}

#[test]
fn state_query_before_the_2pc_vote_is_durable_votes_no_at_once() {
    let mut participant = participant();
    let t1 = txn(1);
    check(
        &mut participant,
        0,
        prepare(1, t1, vec![put("a", 5)], &[("a", None)]),
        vec![persist(
            1,
            prepared(t1, vec![entry(0, "a", OpKind::Put, None, int(5))]),
        )],
    );
    let reason = "aborted before voting: asked by peer 3";
    // Presumed abort lets the NO go at once; the state told to a peer waits.
    check(
        &mut participant,
        0,
        state_query_from(LOW, 2, t1),
        vec![persist(2, aborted(t1, reason)), no(1, t1, reason)],
    );
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![state_to(LOW, 2, t1, TxnState::Aborted)],
    );
}

#[test]
fn state_query_on_a_voted_txn_answers_its_durable_state() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    check(
        &mut participant,
        0,
        state_query_from(LOW, 2, t1),
        vec![state_to(LOW, 2, t1, TxnState::Prepared)],
    );
    // Committing: the answer waits for the record.
    check(
        &mut participant,
        0,
        decide(3, t1, Decision::Commit),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    check(&mut participant, 0, state_query_from(LOW, 4, t1), vec![]);
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            ack(3, t1, Outcome::Committed),
            state_to(LOW, 4, t1, TxnState::Committed),
        ],
    );
    let mut participant = self::participant();
    waiting_txn(&mut participant, t2, &[ME, LOW], &[LOW]);
    check(
        &mut participant,
        10,
        state_query_from(LOW, 2, t2),
        vec![state_to(LOW, 2, t2, TxnState::Waiting)],
    );
}

#[test]
fn in_doubt_2pc_asks_only_the_coordinator_while_it_is_up() {
    let mut participant = participant();
    let t1 = txn(1);
    check(&mut participant, 0, up(COORDINATOR), vec![]);
    check(&mut participant, 0, up(LOW), vec![]);
    in_doubt_with_peers(&mut participant, t1);
    fire(&mut participant, 100, vec![query(t1)]);
    check(&mut participant, 110, up(HIGH), vec![]);
    // The coordinator goes down: the peers are asked at once, and the backoff starts over.
    check(
        &mut participant,
        120,
        down(COORDINATOR),
        vec![ask_state(LOW, t1), ask_state(HIGH, t1)],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(220)));
    check(
        &mut participant,
        130,
        state_reply(LOW, t1, TxnState::Committed),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    check(
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
    check(&mut participant, 0, up(HIGH), vec![]);
    in_doubt_with_peers(&mut participant, t1);
    fire(&mut participant, 100, vec![ask_state(HIGH, t1)]);
    check(
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
    check(&mut participant, 0, up(LOW), vec![]);
    in_doubt_with_peers(&mut participant, t1);
    assert!(!participant.in_doubt(Millis(0))[0].blocked);
    fire(&mut participant, 100, vec![ask_state(LOW, t1)]);
    check(
        &mut participant,
        110,
        state_reply(LOW, t1, TxnState::Prepared),
        vec![],
    );
    assert!(participant.in_doubt(Millis(110))[0].blocked);
    assert_eq!(participant.counts().blocked, 1);
    fire(&mut participant, 300, vec![ask_state(LOW, t1)]);
    // A peer coming up is asked at once, and the query backoff starts over.
    check(&mut participant, 310, up(HIGH), vec![ask_state(HIGH, t1)]);
    assert!(!participant.in_doubt(Millis(310))[0].blocked);
    assert_eq!(participant.poll_timeout(), Some(Millis(410)));
    check(
        &mut participant,
        320,
        state_reply(HIGH, t1, TxnState::Committed),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
}

#[test]
fn read_only_vote_with_other_participants_waits_for_its_record() {
    let mut participant = participant();
    let t1 = txn(1);
    let ops = vec![get("g")];
    check(
        &mut participant,
        0,
        prepare2_with(1, t1, ops.clone(), &[ME, LOW]),
        vec![persist(
            1,
            Record::ReadOnly {
                txn: t1,
                protocol: Protocol::TwoPhase,
                coordinator: COORDINATOR,
            },
        )],
    );
    // Its shared lock is taken at once, before the vote is durable.
    assert_eq!(participant.locks_held(), 1);
    check(
        &mut participant,
        0,
        prepare2_with(2, t1, ops.clone(), &[ME, LOW]),
        vec![],
    );
    check(&mut participant, 0, state_query_from(LOW, 3, t1), vec![]);
    let reads = vec![read("g", int(1))];
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![
            vote(1, t1, Vote::ReadOnly, reads.clone()),
            vote(2, t1, Vote::ReadOnly, reads.clone()),
            state_to(LOW, 3, t1, TxnState::Prepared),
        ],
    );
    assert_eq!(participant.counts().read_only, 1);
    // Whatever the others decided is fine with a reader; the decision releases its lock.
    check(
        &mut participant,
        0,
        decide(4, t1, Decision::Commit),
        vec![ack(4, t1, Outcome::Committed)],
    );
    assert_eq!(participant.locks_held(), 0);
    check(
        &mut participant,
        0,
        state_query_from(LOW, 5, t1),
        vec![state_to(LOW, 5, t1, TxnState::Prepared)],
    );
}

#[test]
fn a_stored_read_only_vote_is_repeated_with_fresh_reads() {
    let mut participant = participant();
    let t1 = txn(1);
    let mut input = prepare2_with(1, t1, vec![get("g")], &[ME, LOW]);
    if let Input::Prepare { stored, .. } = &mut input {
        *stored = Some(StoredTxn {
            txn: t1,
            protocol: Protocol::TwoPhase,
            coordinator: COORDINATOR,
            state: StoredState::ReadOnly,
            reason: None,
            entries: vec![],
            participants: vec![],
        });
    }
    check(
        &mut participant,
        0,
        input,
        vec![vote(1, t1, Vote::ReadOnly, vec![read("g", int(1))])],
    );
    assert!(!participant.knows(t1));
}

#[test]
fn a_prepare_naming_too_many_participants_gets_no() {
    let mut participant = participant();
    let t1 = txn(1);
    let participants: Vec<NodeId> = (1..=PARTICIPANTS_PER_TXN_MAX as u32 + 1)
        .map(NodeId)
        .collect();
    let reason = "txn names 1025 participants; the limit is 1024";
    check(
        &mut participant,
        0,
        prepare2_with(1, t1, vec![put("a", 1)], &participants),
        vec![persist(1, aborted(t1, reason)), no(1, t1, reason)],
    );
}
