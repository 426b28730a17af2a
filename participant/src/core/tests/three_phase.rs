//! 3PC: the waiting and precommitted states, their timeouts, the card's alone rules, the
//! termination protocol (leader and follower, leader replacement), late and duplicate
//! messages after a decision, and recovery that never decides alone.

use super::*;

const ALL: [NodeId; 3] = [ME, LOW, HIGH];
/// A txn this participant leads (every peer has a higher id).
const LEADING: [NodeId; 3] = [ME, HIGH, HIGHER];

#[test]
fn yes_vote_waits_for_the_waiting_record_and_starts_the_waiting_timeout() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[LOW, HIGH]);
    assert_eq!(participant.counts().waiting, 1);
    assert_eq!(participant.locks_held(), 1);
    assert_eq!(
        participant.in_doubt(Millis(40)),
        vec![InDoubtTxn {
            txn: t1,
            coordinator: COORDINATOR,
            age_ms: 40,
            protocol: Protocol::ThreePhase,
            state: TxnState::Waiting,
            peers: vec![LOW, HIGH],
            recovered: false,
            leader: None,
            blocked: false,
        }]
    );
}

/// A 3PC Prepare of `put key 5` for `txn` asking for a waiting timeout of `timeout_ms`.
fn prepare3_with_timeout(id: u64, txn: TxnId, timeout_ms: u64, key: &str) -> Input {
    let mut input = prepare3(id, txn, &[ME]);
    if let Input::Prepare {
        timeout_ms: requested,
        ops,
        values,
        ..
    } = &mut input
    {
        *requested = timeout_ms;
        *ops = vec![put(key, 5)];
        *values = [(key.to_string(), None)].into_iter().collect();
    }
    input
}

#[test]
fn a_waiting_timeout_below_the_minimum_is_raised_to_it() {
    let mut participant = participant();
    let t1 = txn(1);
    // Waiting longer than the coordinator assumes is safe: its PreCommit deadline holds.
    participant.handle(Millis(0), prepare3_with_timeout(1, t1, 10, "b"));
    participant.handle(Millis(0), Input::Persisted { lsn: Lsn(1) });
    let _: Vec<Output> = std::iter::from_fn(|| participant.poll_output()).collect();
    participant.check_invariants();
    assert_eq!(participant.poll_timeout(), Some(Millis(1_000)));
}

#[test]
fn a_waiting_timeout_above_the_maximum_votes_no() {
    let mut participant = participant();
    let t1 = txn(1);
    // Clamped to 5000 ms, this node would abort alone while the coordinator, which
    // assumes 60 s, still sends PreCommit to the others (issue 7 bug 3).
    let reason = "the coordinator asks for a 3pc waiting timeout of 60000 ms, above this \
                  participant's maximum of 5000 ms (--waiting-timeout-max-ms): it would give \
                  up before the coordinator's PreCommit deadline";
    check(
        &mut participant,
        0,
        prepare3_with_timeout(1, t1, 60_000, "a"),
        vec![
            persist(
                1,
                Record::Aborted {
                    txn: t1,
                    protocol: Protocol::ThreePhase,
                    coordinator: COORDINATOR,
                    reason: reason.to_string(),
                },
            ),
            no(1, t1, reason),
        ],
    );
    assert_eq!(participant.locks_held(), 0);
    assert_eq!(participant.poll_timeout(), None);
}

#[test]
fn precommit_is_acked_once_durable_then_docommit_commits() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[COORDINATOR, LOW, HIGH]);
    check(
        &mut participant,
        10,
        precommit_from(COORDINATOR, 2, t1),
        vec![persist(2, Record::PreCommitted { txn: t1 })],
    );
    // A duplicate waits for the same record; a peer asking hears the state it makes durable.
    check(
        &mut participant,
        10,
        precommit_from(COORDINATOR, 3, t1),
        vec![],
    );
    check(&mut participant, 10, state_query_from(LOW, 4, t1), vec![]);
    check(
        &mut participant,
        20,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            ack(2, t1, Outcome::PreCommitted),
            ack(3, t1, Outcome::PreCommitted),
            state_to(LOW, 4, t1, TxnState::PreCommitted),
        ],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(2_020)));
    assert_eq!(participant.counts().precommitted, 1);
    check(
        &mut participant,
        30,
        precommit_from(COORDINATOR, 5, t1),
        vec![ack(5, t1, Outcome::PreCommitted)],
    );
    check(
        &mut participant,
        40,
        decide(6, t1, Decision::Commit),
        vec![persist(3, Record::Committed { txn: t1 })],
    );
    check(
        &mut participant,
        50,
        Input::Persisted { lsn: Lsn(3) },
        vec![ack(6, t1, Outcome::Committed)],
    );
    assert_eq!(participant.poll_timeout(), None);
    assert_eq!(participant.locks_held(), 0);
    // Late messages get the outcome.
    check(
        &mut participant,
        60,
        precommit_from(COORDINATOR, 7, t1),
        vec![ack(7, t1, Outcome::Committed)],
    );
    check(
        &mut participant,
        60,
        state_query_from(LOW, 8, t1),
        vec![state_to(LOW, 8, t1, TxnState::Committed)],
    );
}

/// The model checker's path (`mc --protocol 3pc --txns 1 --crashes 1
/// --timer-firings-max 1`): a termination leader's commit is being persisted when the
/// coordinator's PreCommit arrives. `precommitted` is durable, so that is the Ack, at once
/// (the same a duplicate PreCommit gets); it used to wait on the commit's record.
#[test]
fn precommit_while_the_commit_is_persisted_is_acked_from_the_durable_precommit() {
    let mut participant = participant();
    let t1 = txn(1);
    precommitted_txn(&mut participant, t1, &ALL, &[COORDINATOR, LOW, HIGH]);
    check(
        &mut participant,
        20,
        decide_from(LOW, 3, t1, Decision::Commit),
        vec![persist(3, Record::Committed { txn: t1 })],
    );
    check(
        &mut participant,
        30,
        precommit_from(COORDINATOR, 4, t1),
        vec![ack(4, t1, Outcome::PreCommitted)],
    );
    check(
        &mut participant,
        40,
        Input::Persisted { lsn: Lsn(3) },
        vec![ack_to(LOW, 3, t1, Outcome::Committed)],
    );
    check(
        &mut participant,
        50,
        precommit_from(COORDINATOR, 5, t1),
        vec![ack(5, t1, Outcome::Committed)],
    );
}

/// Committing straight from `waiting` (a DoCommit from a termination leader): a PreCommit
/// then has nothing durable to be answered from, so it waits for the commit and hears
/// Committed; the state never goes back to `precommitted`.
#[test]
fn precommit_while_a_commit_from_waiting_is_persisted_hears_committed() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[COORDINATOR, LOW, HIGH]);
    check(
        &mut participant,
        20,
        decide_from(LOW, 2, t1, Decision::Commit),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    check(
        &mut participant,
        30,
        precommit_from(COORDINATOR, 3, t1),
        vec![],
    );
    check(
        &mut participant,
        40,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            ack_to(LOW, 2, t1, Outcome::Committed),
            ack(3, t1, Outcome::Committed),
        ],
    );
}

#[test]
fn abort_in_waiting_is_acked_only_once_the_aborted_record_is_durable() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[COORDINATOR, LOW, HIGH]);
    let reason = "aborted by the coordinator";
    check(
        &mut participant,
        10,
        decide(2, t1, Decision::Abort),
        vec![persist(2, aborted3(t1, reason))],
    );
    assert_eq!(participant.locks_held(), 0);
    check(&mut participant, 10, decide(3, t1, Decision::Abort), vec![]);
    check(
        &mut participant,
        10,
        precommit_from(COORDINATOR, 4, t1),
        vec![],
    );
    check(
        &mut participant,
        20,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            ack(2, t1, Outcome::Aborted),
            ack(3, t1, Outcome::Aborted),
            ack(4, t1, Outcome::Aborted),
        ],
    );
    check(
        &mut participant,
        30,
        prepare3(5, t1, &ALL),
        vec![no(5, t1, reason)],
    );
    check(
        &mut participant,
        30,
        decide(6, t1, Decision::Commit),
        vec![ack(6, t1, Outcome::Aborted)],
    );
}

/// Seeds 9209 and 13918 (3pc, crash-only): a participant that restarted had no channel to
/// a live peer yet (the peer had not seen the old one go down); both voted YES, the
/// coordinator crashed, and each, seeing no live peer, decided alone by the card's rules:
/// one committed, the other aborted. A YES now needs every peer up on the mesh.
#[test]
fn three_pc_yes_needs_every_peer_up_on_the_mesh() {
    let mut participant = participant();
    let t1 = txn(1);
    check(&mut participant, 0, up(LOW), vec![]);
    let reason = "3pc needs the participant mesh: peer 7 is not connected, so the termination \
                  protocol could not reach it";
    check(
        &mut participant,
        0,
        prepare3(1, t1, &ALL),
        vec![persist(1, aborted3(t1, reason)), no(1, t1, reason)],
    );
    assert_eq!(participant.locks_held(), 0);
    // Read-only, it takes no part in the termination protocol: no mesh needed.
    let t2 = txn(2);
    let mut read_only = prepare3(2, t2, &ALL);
    if let Input::Prepare { ops, .. } = &mut read_only {
        *ops = vec![get("a")];
    }
    check(
        &mut participant,
        0,
        read_only,
        vec![persist(
            2,
            Record::ReadOnly {
                txn: t2,
                protocol: Protocol::ThreePhase,
                coordinator: COORDINATOR,
            },
        )],
    );
    // Its shared lock on a goes once every vote is in.
    check(
        &mut participant,
        5,
        Input::Release {
            from: from_coordinator(),
            id: RequestId(9),
            txn: t2,
        },
        vec![reply(9, FromParticipant::Released { txn: t2 })],
    );
    // With every peer up it votes YES.
    check(&mut participant, 10, up(HIGH), vec![]);
    let t3 = txn(3);
    check(
        &mut participant,
        10,
        prepare3(3, t3, &ALL),
        vec![persist(3, waiting_record(t3, &ALL))],
    );
}

#[test]
fn precommit_before_the_vote_or_on_a_2pc_txn_is_refused() {
    let mut participant = participant();
    let t1 = txn(1);
    check(
        &mut participant,
        0,
        prepare3(1, t1, &[ME]),
        vec![persist(1, waiting_record(t1, &[ME]))],
    );
    check(
        &mut participant,
        0,
        precommit_from(COORDINATOR, 2, t1),
        vec![reply(
            2,
            FromParticipant::Refused {
                reason: format!("PreCommit for txn {t1} before this participant voted"),
            },
        )],
    );
    let mut participant = self::participant();
    let t2 = txn(2);
    in_doubt_on_a(&mut participant, 0, t2, 1, 1);
    check(
        &mut participant,
        0,
        precommit_from(COORDINATOR, 2, t2),
        vec![reply(
            2,
            FromParticipant::Refused {
                reason: format!("PreCommit for txn {t2}, which runs 2PC"),
            },
        )],
    );
}

#[test]
fn precommit_for_a_forgotten_txn_answers_what_the_store_says() {
    let mut participant = participant();
    let t1 = txn(1);
    let with = |id: u64, state: Option<StoredState>| Input::PreCommit {
        from: from_coordinator(),
        id: RequestId(id),
        txn: t1,
        stored: state.map(|state| stored3(t1, state, &ALL)),
    };
    check(
        &mut participant,
        0,
        with(1, None),
        vec![ack(1, t1, Outcome::Unknown)],
    );
    check(
        &mut participant,
        0,
        with(2, Some(StoredState::Committed)),
        vec![ack(2, t1, Outcome::Committed)],
    );
    check(
        &mut participant,
        0,
        with(3, Some(StoredState::Aborted)),
        vec![ack(3, t1, Outcome::Aborted)],
    );
    assert!(!participant.knows(t1));
}

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
    check(
        &mut participant,
        2_010,
        precommit_from(COORDINATOR, 2, t1),
        vec![],
    );
    check(
        &mut participant,
        2_020,
        Input::Persisted { lsn: Lsn(2) },
        vec![ack(2, t1, Outcome::Aborted)],
    );
    check(
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
    check(
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
    check(
        &mut participant,
        2_020,
        Input::Persisted { lsn: Lsn(3) },
        vec![],
    );
    check(
        &mut participant,
        2_030,
        decide(3, t1, Decision::Commit),
        vec![ack(3, t1, Outcome::Committed)],
    );
    check(
        &mut participant,
        2_030,
        precommit_from(COORDINATOR, 4, t1),
        vec![ack(4, t1, Outcome::Committed)],
    );
}

#[test]
fn follower_answers_its_leader_and_applies_the_leaders_precommit_and_commit() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[COORDINATOR, LOW, HIGH]);
    check(
        &mut participant,
        10,
        down(COORDINATOR),
        vec![ask_state(LOW, t1), ask_state(HIGH, t1)],
    );
    assert_eq!(participant.in_doubt(Millis(10))[0].leader, Some(LOW));
    assert_eq!(participant.poll_timeout(), Some(Millis(310)));
    // A request from the leader shows it alive: the follower's round starts over.
    check(
        &mut participant,
        100,
        state_query_from(LOW, 2, t1),
        vec![state_to(LOW, 2, t1, TxnState::Waiting)],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(400)));
    check(
        &mut participant,
        150,
        precommit_from(LOW, 3, t1),
        vec![persist(2, Record::PreCommitted { txn: t1 })],
    );
    check(
        &mut participant,
        160,
        Input::Persisted { lsn: Lsn(2) },
        vec![ack_to(LOW, 3, t1, Outcome::PreCommitted)],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(450)));
    check(
        &mut participant,
        200,
        decide_from(LOW, 4, t1, Decision::Commit),
        vec![persist(3, Record::Committed { txn: t1 })],
    );
    check(
        &mut participant,
        210,
        Input::Persisted { lsn: Lsn(3) },
        vec![ack_to(LOW, 4, t1, Outcome::Committed)],
    );
    // Answers to our own round's queries, arriving late, change nothing.
    check(
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
    check(
        &mut participant,
        2_050,
        down(LOW),
        vec![ask_state(HIGH, t1)],
    );
    assert_eq!(participant.in_doubt(Millis(2_050))[0].leader, Some(ME));
    check(
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
    check(
        &mut participant,
        2_070,
        Input::Persisted { lsn: Lsn(2) },
        vec![tell(HIGH, t1, Decision::Abort)],
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
    check(
        &mut participant,
        2_310,
        state_reply(LOW, t1, TxnState::Waiting),
        vec![],
    );
    check(
        &mut participant,
        2_320,
        state_reply(LOW, t1, TxnState::Committed),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    // A follower does not tell anyone: the leader does.
    check(
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
    check(
        &mut participant,
        2_010,
        state_reply(LOW, t1, TxnState::Prepared),
        vec![ask_state(HIGH, t1)],
    );
    check(
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
    check(
        &mut participant,
        2_030,
        Input::Persisted { lsn: Lsn(2) },
        vec![tell(HIGH, t1, Decision::Abort)],
    );
}

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
    check(
        &mut participant,
        2_010,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
    check(
        &mut participant,
        2_010,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
    check(
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
    check(
        &mut participant,
        2_030,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            tell(HIGH, t1, Decision::Abort),
            tell(HIGHER, t1, Decision::Abort),
        ],
    );
    // Late and duplicate messages after the decision: the truth, no state change.
    check(
        &mut participant,
        2_040,
        ack_from(HIGH, t1, Outcome::Aborted),
        vec![],
    );
    check(
        &mut participant,
        2_040,
        state_reply(HIGHER, t1, TxnState::PreCommitted),
        vec![],
    );
    check(
        &mut participant,
        2_050,
        Input::DecisionAnswer {
            from: COORDINATOR,
            txn: t1,
            answer: Answer::Commit,
        },
        vec![],
    );
    check(
        &mut participant,
        2_050,
        precommit_from(COORDINATOR, 5, t1),
        vec![ack(5, t1, Outcome::Aborted)],
    );
    check(
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
    check(
        &mut participant,
        2_020,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
    check(
        &mut participant,
        2_030,
        state_reply(HIGHER, t1, TxnState::PreCommitted),
        vec![send(HIGH, ToParticipant::PreCommit { txn: t1 })],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(2_330)));
    // Only the peers sent PreCommit count.
    check(
        &mut participant,
        2_040,
        ack_from(HIGHER, t1, Outcome::PreCommitted),
        vec![],
    );
    check(
        &mut participant,
        2_050,
        ack_from(HIGH, t1, Outcome::PreCommitted),
        vec![persist(3, Record::Committed { txn: t1 })],
    );
    check(
        &mut participant,
        2_060,
        Input::Persisted { lsn: Lsn(3) },
        vec![
            tell(HIGH, t1, Decision::Commit),
            tell(HIGHER, t1, Decision::Commit),
        ],
    );
    // The coordinator's DoCommit, late, is acked with the outcome.
    check(
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
    check(
        &mut participant,
        10,
        down(COORDINATOR),
        vec![ask_state(HIGH, t1)],
    );
    check(
        &mut participant,
        20,
        state_reply(HIGH, t1, TxnState::PreCommitted),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    check(
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
    check(
        &mut participant,
        10,
        down(COORDINATOR),
        vec![ask_state(HIGH, t1), ask_state(HIGHER, t1)],
    );
    check(
        &mut participant,
        20,
        state_reply(HIGH, t1, TxnState::PreCommitted),
        vec![],
    );
    check(
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
    check(
        &mut participant,
        340,
        down(HIGHER),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    check(
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
    check(
        &mut participant,
        10,
        down(COORDINATOR),
        vec![ask_state(HIGH, t1), ask_state(HIGHER, t1)],
    );
    check(
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
    check(
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
    check(
        &mut participant,
        10,
        down(COORDINATOR),
        vec![ask_state(HIGH, t1), ask_state(HIGHER, t1)],
    );
    check(
        &mut participant,
        20,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
    check(
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
    check(
        &mut participant,
        40,
        Input::Persisted { lsn: Lsn(2) },
        vec![tell(HIGH, t1, Decision::Abort)],
    );
}

#[test]
fn leader_adopts_a_decided_peer_and_tells_the_others() {
    for (state, record, decision) in [
        (
            TxnState::Committed,
            Record::Committed { txn: txn(1) },
            Decision::Commit,
        ),
        (
            TxnState::Aborted,
            aborted3(txn(1), "participant 7 reported the txn aborted"),
            Decision::Abort,
        ),
    ] {
        let mut participant = participant();
        let t1 = txn(1);
        precommitted_txn(&mut participant, t1, &LEADING, &[COORDINATOR, HIGH, HIGHER]);
        check(
            &mut participant,
            20,
            down(COORDINATOR),
            vec![ask_state(HIGH, t1), ask_state(HIGHER, t1)],
        );
        check(
            &mut participant,
            30,
            state_reply(HIGH, t1, state),
            vec![persist(3, record)],
        );
        check(
            &mut participant,
            40,
            Input::Persisted { lsn: Lsn(3) },
            vec![tell(HIGH, t1, decision), tell(HIGHER, t1, decision)],
        );
    }
}

#[test]
fn a_peer_aborted_during_the_precommit_round_makes_the_leader_abort() {
    let mut participant = participant();
    let t1 = txn(1);
    precommitted_txn(&mut participant, t1, &[ME, HIGH], &[COORDINATOR, HIGH]);
    check(
        &mut participant,
        20,
        down(COORDINATOR),
        vec![ask_state(HIGH, t1)],
    );
    check(
        &mut participant,
        30,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![send(HIGH, ToParticipant::PreCommit { txn: t1 })],
    );
    check(
        &mut participant,
        40,
        ack_from(HIGH, t1, Outcome::Aborted),
        vec![persist(
            3,
            aborted3(t1, "termination protocol: participant 7 had aborted"),
        )],
    );
}

#[test]
fn recovered_txn_alone_never_decides_and_keeps_asking_with_backoff() {
    let mut participant = participant();
    let t1 = txn(1);
    check(
        &mut participant,
        0,
        Input::Recover {
            txns: vec![stored3(t1, StoredState::PreCommitted, &ALL)],
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
    check(&mut participant, 3_000, up(COORDINATOR), vec![query(t1)]);
    check(
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
    check(
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
    check(
        &mut participant,
        0,
        Input::Recover {
            txns: vec![stored3(t1, StoredState::Waiting, &LEADING)],
        },
        vec![],
    );
    check(&mut participant, 10, up(HIGH), vec![ask_state(HIGH, t1)]);
    assert_eq!(participant.in_doubt(Millis(10))[0].leader, Some(HIGH));
    // HIGH never failed: its state is for HIGH to act on, not for a recovered follower.
    check(
        &mut participant,
        20,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
    fire(&mut participant, 110, vec![ask_state(HIGH, t1)]);
    check(
        &mut participant,
        150,
        decide_from(HIGH, 2, t1, Decision::Abort),
        vec![persist(
            1,
            aborted3(t1, "aborted by participant 7 (termination protocol)"),
        )],
    );
    check(
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
    check(
        &mut participant,
        0,
        Input::Recover {
            txns: vec![stored3(t1, StoredState::Waiting, &LEADING)],
        },
        vec![],
    );
    check(&mut participant, 10, up(HIGH), vec![ask_state(HIGH, t1)]);
    // Asked, it says it is recovered too.
    check(
        &mut participant,
        15,
        state_query_from(HIGH, 1, t1),
        vec![recovered_state_to(HIGH, 1, t1, TxnState::Waiting)],
    );
    // Its presumed leader is recovered: nobody is left to lead; a new round just asks.
    check(
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
    check(
        &mut participant,
        30,
        recovered_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
    fire(&mut participant, 220, vec![ask_state(HIGH, t1)]);
    fire(&mut participant, 620, vec![ask_state(HIGH, t1)]);
    assert_eq!(participant.counts().blocked, 1);
    // The participant that committed is back: adopted.
    check(
        &mut participant,
        700,
        up(HIGHER),
        vec![ask_state(HIGH, t1), ask_state(HIGHER, t1)],
    );
    assert_eq!(participant.in_doubt(Millis(700))[0].leader, Some(HIGHER));
    assert_eq!(participant.counts().blocked, 0);
    check(
        &mut participant,
        710,
        state_reply(HIGHER, t1, TxnState::Committed),
        vec![persist(1, Record::Committed { txn: t1 })],
    );
    check(
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
    check(
        &mut participant,
        0,
        Input::Recover {
            txns: vec![stored3(t1, StoredState::Waiting, &LEADING)],
        },
        vec![],
    );
    check(&mut participant, 0, up(COORDINATOR), vec![query(t1)]);
    check(
        &mut participant,
        10,
        up(HIGH),
        vec![query(t1), ask_state(HIGH, t1)],
    );
    check(
        &mut participant,
        20,
        recovered_reply(HIGH, t1, TxnState::PreCommitted),
        vec![query(t1), ask_state(HIGH, t1)],
    );
    let in_doubt = &participant.in_doubt(Millis(20))[0];
    assert_eq!((in_doubt.leader, in_doubt.blocked), (None, false));
    check(
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

/// The counterexample to counting a recovered peer's state: the operational peers aborted
/// (all waiting) while HIGH was down `precommitted`; the leader of that abort crashed
/// before telling this participant. Its own `waiting` shows nobody committed; HIGH's
/// `precommitted` predates the abort, so it is no evidence: abort, and tell HIGH.
#[test]
fn operational_leader_takes_no_evidence_from_a_recovered_precommitted_peer() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &LEADING, &[COORDINATOR, HIGH, HIGHER]);
    check(
        &mut participant,
        10,
        down(COORDINATOR),
        vec![ask_state(HIGH, t1), ask_state(HIGHER, t1)],
    );
    check(
        &mut participant,
        20,
        recovered_reply(HIGH, t1, TxnState::PreCommitted),
        vec![],
    );
    check(
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
    check(
        &mut participant,
        40,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            tell(HIGH, t1, Decision::Abort),
            tell(HIGHER, t1, Decision::Abort),
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
    check(
        &mut participant,
        20,
        down(COORDINATOR),
        vec![ask_state(HIGH, t1)],
    );
    check(
        &mut participant,
        30,
        recovered_reply(HIGH, t1, TxnState::Waiting),
        vec![send(HIGH, ToParticipant::PreCommit { txn: t1 })],
    );
    check(
        &mut participant,
        40,
        ack_from(HIGH, t1, Outcome::PreCommitted),
        vec![persist(3, Record::Committed { txn: t1 })],
    );
    check(
        &mut participant,
        50,
        Input::Persisted { lsn: Lsn(3) },
        vec![tell(HIGH, t1, Decision::Commit)],
    );
}

#[test]
fn follower_elects_again_when_its_leader_turns_out_recovered() {
    let mut participant = participant();
    let t1 = txn(1);
    waiting_txn(&mut participant, t1, &ALL, &[COORDINATOR, LOW, HIGH]);
    check(
        &mut participant,
        10,
        down(COORDINATOR),
        vec![ask_state(LOW, t1), ask_state(HIGH, t1)],
    );
    assert_eq!(participant.in_doubt(Millis(10))[0].leader, Some(LOW));
    check(
        &mut participant,
        20,
        recovered_reply(LOW, t1, TxnState::Waiting),
        vec![ask_state(LOW, t1), ask_state(HIGH, t1)],
    );
    assert_eq!(participant.in_doubt(Millis(20))[0].leader, Some(ME));
    check(
        &mut participant,
        30,
        state_reply(HIGH, t1, TxnState::Waiting),
        vec![],
    );
    check(
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
    check(
        &mut participant,
        50,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            tell(LOW, t1, Decision::Abort),
            tell(HIGH, t1, Decision::Abort),
        ],
    );
}

#[test]
fn recovered_precommitted_txn_adopts_a_peers_abort() {
    let mut participant = participant();
    let t1 = txn(1);
    check(
        &mut participant,
        0,
        Input::Recover {
            txns: vec![stored3(t1, StoredState::PreCommitted, &ALL)],
        },
        vec![],
    );
    // LOW leads; the follower still hears the outcome from whoever knows it.
    check(&mut participant, 10, up(LOW), vec![ask_state(LOW, t1)]);
    check(
        &mut participant,
        20,
        state_reply(LOW, t1, TxnState::Aborted),
        vec![persist(
            1,
            aborted3(t1, "participant 3 reported the txn aborted"),
        )],
    );
    check(
        &mut participant,
        30,
        Input::Persisted { lsn: Lsn(1) },
        vec![],
    );
    assert_eq!(participant.locks_held(), 0);
}
