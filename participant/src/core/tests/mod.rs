//! Core unit tests: one input in, the exact outputs out, invariants checked after each.
//! This file: shared helpers and 2PC; `three_phase.rs`: 3PC and the termination protocol;
//! `peers.rs`: peers asking each other (StateQuery), read-only votes, 2PC peer resolution.

mod locks;
mod peers;
mod read_holds;
mod three_phase;

use std::collections::BTreeMap;

use uuid::Uuid;
use wire::{
    Answer, Decision, FromParticipant, NodeId, Op, Outcome, Protocol, Read, Request, RequestId,
    ToCoordinator, ToParticipant, TxnId, TxnState, Value, Vote,
};

use super::*;

const COORDINATOR: NodeId = NodeId(1);
const OTHER: NodeId = NodeId(9);
/// This participant.
const ME: NodeId = NodeId(5);
/// Peer participants: one with a lower id (leads before us), one with a higher id.
const LOW: NodeId = NodeId(3);
const HIGH: NodeId = NodeId(7);
const CONN: u64 = 7;

fn txn(n: u128) -> TxnId {
    TxnId(Uuid::from_u128(n))
}

fn from_coordinator() -> ReplyTo {
    ReplyTo {
        peer: COORDINATOR,
        conn: CONN,
    }
}

fn config() -> Config {
    Config {
        active_txns_max: 3,
        finished_txns_max: 2,
        ops_per_txn_max: 4,
        key_bytes_max: 8,
        value_bytes_max: 5,
        decision_query_backoff_min_ms: 100,
        decision_query_backoff_max_ms: 400,
        waiting_timeout_min_ms: 1_000,
        waiting_timeout_max_ms: 5_000,
        precommitted_timeout_ms: 2_000,
        termination_round_ms: 300,
    }
}

fn participant() -> Participant {
    let participant = Participant::new(ME, config()).expect("valid config");
    participant.check_invariants();
    participant
}

/// Feeds one input at `now_ms` and asserts the exact outputs and the invariants.
fn check(participant: &mut Participant, now_ms: u64, input: Input, expected: Vec<Output>) {
    participant.handle(Millis(now_ms), input);
    let outputs: Vec<Output> = std::iter::from_fn(|| participant.poll_output()).collect();
    assert_eq!(outputs, expected);
    participant.check_invariants();
}

fn int(value: i64) -> Option<Value> {
    Some(Value::Int(value))
}

fn text(value: &str) -> Option<Value> {
    Some(Value::Text(value.to_string()))
}

fn put(key: &str, value: i64) -> Op {
    Op::Put {
        key: key.to_string(),
        value: Value::Int(value),
    }
}

fn get(key: &str) -> Op {
    Op::Get {
        key: key.to_string(),
    }
}

fn add(key: &str, delta: i64, min: Option<i64>, max: Option<i64>) -> Op {
    Op::Add {
        key: key.to_string(),
        delta,
        min,
        max,
    }
}

fn prepare(id: u64, txn: TxnId, ops: Vec<Op>, values: &[(&str, Option<Value>)]) -> Input {
    Input::Prepare {
        from: from_coordinator(),
        id: RequestId(id),
        txn,
        protocol: Protocol::TwoPhase,
        ops,
        timeout_ms: 5_000,
        participants: vec![ME],
        values: values
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect::<BTreeMap<_, _>>(),
        stored: None,
    }
}

fn decide(id: u64, txn: TxnId, decision: Decision) -> Input {
    Input::Decide {
        from: from_coordinator(),
        id: RequestId(id),
        txn,
        decision,
        stored: None,
    }
}

fn decide_stored(id: u64, txn: TxnId, decision: Decision, stored: StoredTxn) -> Input {
    Input::Decide {
        from: from_coordinator(),
        id: RequestId(id),
        txn,
        decision,
        stored: Some(stored),
    }
}

fn reply(id: u64, msg: FromParticipant) -> Output {
    Output::Reply {
        to: from_coordinator(),
        id: RequestId(id),
        msg,
    }
}

fn vote(id: u64, txn: TxnId, vote: Vote, reads: Vec<Read>) -> Output {
    reply(id, FromParticipant::Vote { txn, vote, reads })
}

fn no(id: u64, txn: TxnId, reason: &str) -> Output {
    vote(
        id,
        txn,
        Vote::No {
            reason: reason.to_string(),
        },
        Vec::new(),
    )
}

fn ack(id: u64, txn: TxnId, outcome: Outcome) -> Output {
    reply(id, FromParticipant::Ack { txn, outcome })
}

fn read(key: &str, value: Option<Value>) -> Read {
    Read {
        key: key.to_string(),
        value,
    }
}

fn entry(seq: u32, key: &str, op: OpKind, undo: Option<Value>, redo: Option<Value>) -> LogEntry {
    LogEntry {
        seq,
        key: key.to_string(),
        op,
        undo,
        redo,
    }
}

fn persist(lsn: u64, record: Record) -> Output {
    Output::Persist {
        lsn: Lsn(lsn),
        record,
    }
}

fn prepared(txn: TxnId, entries: Vec<LogEntry>) -> Record {
    Record::Prepared {
        txn,
        protocol: Protocol::TwoPhase,
        coordinator: COORDINATOR,
        entries,
        participants: vec![ME],
    }
}

fn aborted(txn: TxnId, reason: &str) -> Record {
    Record::Aborted {
        txn,
        protocol: Protocol::TwoPhase,
        coordinator: COORDINATOR,
        reason: reason.to_string(),
    }
}

fn query(txn: TxnId) -> Output {
    Output::Send {
        to: COORDINATOR,
        msg: ToCoordinator::DecisionQuery { txn }.into(),
    }
}

fn stored(
    txn: TxnId,
    state: StoredState,
    reason: Option<&str>,
    entries: Vec<LogEntry>,
) -> StoredTxn {
    StoredTxn {
        txn,
        protocol: Protocol::TwoPhase,
        coordinator: COORDINATOR,
        state,
        reason: reason.map(str::to_string),
        entries,
        participants: vec![ME],
    }
}

/// `txn` prepared on key `a` (Put 5 over 1) with lsn `lsn`, its YES vote sent at `now_ms`.
fn in_doubt_on_a(participant: &mut Participant, now_ms: u64, txn: TxnId, id: u64, lsn: u64) {
    check(
        participant,
        now_ms,
        prepare(id, txn, vec![put("a", 5)], &[("a", int(1))]),
        vec![persist(
            lsn,
            prepared(txn, vec![entry(0, "a", OpKind::Put, int(1), int(5))]),
        )],
    );
    check(
        participant,
        now_ms,
        Input::Persisted { lsn: Lsn(lsn) },
        vec![vote(id, txn, Vote::Yes, vec![])],
    );
}

#[test]
fn yes_vote_waits_for_the_prepared_record() {
    let mut participant = participant();
    let t1 = txn(1);
    check(
        &mut participant,
        0,
        prepare(
            1,
            t1,
            vec![get("g"), put("a", 5)],
            &[("g", text("hi")), ("a", None)],
        ),
        vec![persist(
            1,
            prepared(
                t1,
                vec![
                    entry(0, "g", OpKind::Get, text("hi"), text("hi")),
                    entry(1, "a", OpKind::Put, None, int(5)),
                ],
            ),
        )],
    );
    assert_eq!(participant.locks_held(), 2);
    check(
        &mut participant,
        3,
        Input::Persisted { lsn: Lsn(1) },
        vec![vote(1, t1, Vote::Yes, vec![read("g", text("hi"))])],
    );
    assert_eq!(participant.counts().in_doubt, 1);
}

#[test]
fn ops_apply_in_order_and_a_missing_key_adds_from_zero() {
    let mut participant = participant();
    let t1 = txn(1);
    check(
        &mut participant,
        0,
        prepare(
            1,
            t1,
            vec![
                add("a", 3, Some(0), None),
                get("a"),
                Op::Delete {
                    key: "b".to_string(),
                },
                add("b", -2, None, Some(0)),
            ],
            &[("a", None), ("b", text("x"))],
        ),
        vec![persist(
            1,
            prepared(
                t1,
                vec![
                    entry(0, "a", OpKind::Add, None, int(3)),
                    entry(1, "a", OpKind::Get, int(3), int(3)),
                    entry(2, "b", OpKind::Delete, text("x"), None),
                    entry(3, "b", OpKind::Add, None, int(-2)),
                ],
            ),
        )],
    );
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![vote(1, t1, Vote::Yes, vec![read("a", int(3))])],
    );
}

#[test]
fn add_below_the_minimum_votes_no_at_once_and_records_aborted() {
    let mut participant = participant();
    let t1 = txn(1);
    let reason = "adding -5 to key \"a\" would make it -2, below the minimum 0";
    check(
        &mut participant,
        0,
        prepare(1, t1, vec![add("a", -5, Some(0), None)], &[("a", int(3))]),
        vec![persist(1, aborted(t1, reason)), no(1, t1, reason)],
    );
    assert_eq!(participant.locks_held(), 0);
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![],
    );
}

#[test]
fn add_above_the_maximum_or_to_text_or_overflowing_votes_no() {
    let mut participant = participant();
    let cases = [
        (
            add("a", 5, None, Some(6)),
            int(3),
            "adding 5 to key \"a\" would make it 8, above the maximum 6",
        ),
        (
            add("a", 1, None, None),
            text("x"),
            "key \"a\" holds a non-integer value; cannot add to it",
        ),
        (
            add("a", 1, None, None),
            int(i64::MAX),
            "adding 1 to key \"a\" (value 9223372036854775807) overflows",
        ),
    ];
    for (n, (op, value, reason)) in cases.into_iter().enumerate() {
        let t = txn(n as u128 + 1);
        let lsn = n as u64 + 1;
        check(
            &mut participant,
            0,
            prepare(lsn, t, vec![op], &[("a", value)]),
            vec![persist(lsn, aborted(t, reason)), no(lsn, t, reason)],
        );
    }
}

#[test]
fn read_only_replies_at_once_without_record_or_locks() {
    let mut participant = participant();
    let t1 = txn(1);
    check(
        &mut participant,
        0,
        prepare(
            1,
            t1,
            vec![get("a"), get("b")],
            &[("a", int(1)), ("b", None)],
        ),
        vec![vote(
            1,
            t1,
            Vote::ReadOnly,
            vec![read("a", int(1)), read("b", None)],
        )],
    );
    assert_eq!(participant.locks_held(), 0);
    assert!(!participant.knows(t1));
}

#[test]
fn lock_conflict_votes_no_at_once() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    let reason = format!("lock conflict on key \"a\" held by txn {t1}");
    check(
        &mut participant,
        0,
        prepare(2, t2, vec![get("a")], &[("a", int(1))]),
        vec![persist(2, aborted(t2, &reason)), no(2, t2, &reason)],
    );
}

#[test]
fn limits_violations_vote_no_with_a_clear_reason() {
    let mut participant = participant();
    let long_text = Op::Put {
        key: "a".to_string(),
        value: Value::Text("123456".to_string()),
    };
    let cases = [
        (
            vec![get("a"), get("a"), get("a"), get("a"), get("a")],
            "txn has 5 ops for this participant; the limit is 4",
        ),
        (
            vec![get("123456789")],
            "key of 9 bytes exceeds the limit of 8 bytes",
        ),
        (vec![get("")], "empty key"),
        (
            vec![long_text],
            "value of 6 bytes for key \"a\" exceeds the limit of 5 bytes",
        ),
    ];
    for (n, (ops, reason)) in cases.into_iter().enumerate() {
        let t = txn(n as u128 + 1);
        let lsn = n as u64 + 1;
        check(
            &mut participant,
            0,
            prepare(lsn, t, ops, &[("a", None)]),
            vec![persist(lsn, aborted(t, reason)), no(lsn, t, reason)],
        );
    }
}

#[test]
fn beyond_active_txns_max_votes_participant_overloaded() {
    let mut participant = participant();
    for n in 1..=3 {
        let key = format!("k{n}");
        check(
            &mut participant,
            0,
            prepare(n, txn(n.into()), vec![put(&key, 1)], &[(&key, None)]),
            vec![persist(
                n,
                prepared(
                    txn(n.into()),
                    vec![entry(0, &key, OpKind::Put, None, int(1))],
                ),
            )],
        );
    }
    let t4 = txn(4);
    let reason = "participant overloaded: 3 active txns (limit 3)";
    check(
        &mut participant,
        0,
        prepare(4, t4, vec![put("k4", 1)], &[("k4", None)]),
        vec![persist(4, aborted(t4, reason)), no(4, t4, reason)],
    );
}

#[test]
fn a_value_the_shell_did_not_read_votes_no_rather_than_guess() {
    let mut participant = participant();
    let t1 = txn(1);
    let reason = "internal error: the committed value of key \"a\" was not read";
    check(
        &mut participant,
        0,
        prepare(1, t1, vec![add("a", 1, None, None)], &[]),
        vec![persist(1, aborted(t1, reason)), no(1, t1, reason)],
    );
}

#[test]
fn duplicate_prepare_while_persisting_gets_yes_once_durable() {
    let mut participant = participant();
    let t1 = txn(1);
    let ops = vec![put("a", 5)];
    check(
        &mut participant,
        0,
        prepare(1, t1, ops.clone(), &[("a", None)]),
        vec![persist(
            1,
            prepared(t1, vec![entry(0, "a", OpKind::Put, None, int(5))]),
        )],
    );
    check(
        &mut participant,
        0,
        prepare(2, t1, ops, &[("a", None)]),
        vec![],
    );
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![
            vote(1, t1, Vote::Yes, vec![]),
            vote(2, t1, Vote::Yes, vec![]),
        ],
    );
}

#[test]
fn duplicate_prepare_after_the_vote_repeats_it_without_a_record() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    check(
        &mut participant,
        0,
        prepare(2, t1, vec![put("a", 5)], &[("a", int(1))]),
        vec![vote(2, t1, Vote::Yes, vec![])],
    );
    let reason = "adding -5 to key \"b\" would make it -5, below the minimum 0";
    check(
        &mut participant,
        0,
        prepare(3, t2, vec![add("b", -5, Some(0), None)], &[("b", None)]),
        vec![persist(2, aborted(t2, reason)), no(3, t2, reason)],
    );
    check(
        &mut participant,
        0,
        prepare(4, t2, vec![add("b", -5, Some(0), None)], &[("b", int(100))]),
        vec![no(4, t2, reason)],
    );
}

#[test]
fn prepare_after_commit_repeats_yes_with_the_reads() {
    let mut participant = participant();
    let t1 = txn(1);
    check(
        &mut participant,
        0,
        prepare(
            1,
            t1,
            vec![get("g"), put("a", 5)],
            &[("g", int(2)), ("a", None)],
        ),
        vec![persist(
            1,
            prepared(
                t1,
                vec![
                    entry(0, "g", OpKind::Get, int(2), int(2)),
                    entry(1, "a", OpKind::Put, None, int(5)),
                ],
            ),
        )],
    );
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![vote(1, t1, Vote::Yes, vec![read("g", int(2))])],
    );
    check(
        &mut participant,
        0,
        decide(2, t1, Decision::Commit),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![ack(2, t1, Outcome::Committed)],
    );
    check(
        &mut participant,
        0,
        prepare(3, t1, vec![], &[]),
        vec![vote(3, t1, Vote::Yes, vec![read("g", int(2))])],
    );
}

#[test]
fn prepare_for_a_txn_the_store_decided_repeats_the_stored_vote() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    let logged = vec![
        entry(0, "g", OpKind::Get, int(2), int(2)),
        entry(1, "a", OpKind::Put, None, int(5)),
    ];
    let mut input = prepare(1, t1, vec![put("a", 6)], &[("a", int(5))]);
    if let Input::Prepare { stored, .. } = &mut input {
        *stored = Some(self::stored(t1, StoredState::Committed, None, logged));
    }
    check(
        &mut participant,
        0,
        input,
        vec![vote(1, t1, Vote::Yes, vec![read("g", int(2))])],
    );
    let mut input = prepare(2, t2, vec![put("a", 6)], &[("a", int(5))]);
    if let Input::Prepare { stored, .. } = &mut input {
        *stored = Some(self::stored(
            t2,
            StoredState::Aborted,
            Some("lock conflict"),
            vec![],
        ));
    }
    check(&mut participant, 0, input, vec![no(2, t2, "lock conflict")]);
    assert_eq!(participant.locks_held(), 0);
}

#[test]
fn commit_is_acked_and_locks_released_only_once_durable() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    check(
        &mut participant,
        0,
        decide(2, t1, Decision::Commit),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    assert_eq!(participant.locks_held(), 1);
    let reason = format!("lock conflict on key \"a\" held by txn {t1}");
    check(
        &mut participant,
        0,
        prepare(3, t2, vec![put("a", 7)], &[("a", int(1))]),
        vec![persist(3, aborted(t2, &reason)), no(3, t2, &reason)],
    );
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![ack(2, t1, Outcome::Committed)],
    );
    assert_eq!(participant.locks_held(), 0);
    assert_eq!(participant.poll_timeout(), None);
}

#[test]
fn decide_commit_twice_gets_the_same_ack() {
    let mut participant = participant();
    let t1 = txn(1);
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    check(
        &mut participant,
        0,
        decide(2, t1, Decision::Commit),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    check(&mut participant, 0, decide(3, t1, Decision::Commit), vec![]);
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            ack(2, t1, Outcome::Committed),
            ack(3, t1, Outcome::Committed),
        ],
    );
    check(
        &mut participant,
        0,
        decide(4, t1, Decision::Commit),
        vec![ack(4, t1, Outcome::Committed)],
    );
    // A contradicting abort is logged and answered with the truth.
    check(
        &mut participant,
        0,
        decide(5, t1, Decision::Abort),
        vec![ack(5, t1, Outcome::Committed)],
    );
}

#[test]
fn abort_while_committing_waits_for_the_commit_ack() {
    let mut participant = participant();
    let t1 = txn(1);
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    check(
        &mut participant,
        0,
        decide(2, t1, Decision::Commit),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    check(&mut participant, 0, decide(3, t1, Decision::Abort), vec![]);
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            ack(2, t1, Outcome::Committed),
            ack(3, t1, Outcome::Committed),
        ],
    );
}

#[test]
fn abort_in_doubt_releases_locks_and_acks_at_once() {
    let mut participant = participant();
    let t1 = txn(1);
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    check(
        &mut participant,
        0,
        decide(2, t1, Decision::Abort),
        vec![
            persist(2, aborted(t1, "aborted by the coordinator")),
            ack(2, t1, Outcome::Aborted),
        ],
    );
    assert_eq!(participant.locks_held(), 0);
    assert_eq!(participant.poll_timeout(), None);
    check(
        &mut participant,
        0,
        decide(3, t1, Decision::Abort),
        vec![ack(3, t1, Outcome::Aborted)],
    );
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![],
    );
    check(
        &mut participant,
        0,
        decide(4, t1, Decision::Commit),
        vec![ack(4, t1, Outcome::Aborted)],
    );
    check(
        &mut participant,
        0,
        prepare(5, t1, vec![put("a", 5)], &[("a", int(1))]),
        vec![no(5, t1, "aborted by the coordinator")],
    );
}

#[test]
fn abort_during_pending_prepare_records_aborted_after_it_and_votes_no() {
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
    let reason = "aborted by the coordinator before the vote";
    check(
        &mut participant,
        0,
        decide(2, t1, Decision::Abort),
        vec![
            persist(2, aborted(t1, reason)),
            no(1, t1, reason),
            ack(2, t1, Outcome::Aborted),
        ],
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
        vec![],
    );
    assert_eq!(participant.counts().aborted, 1);
}

#[test]
fn commit_before_the_vote_is_refused_with_an_error() {
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
    check(
        &mut participant,
        0,
        decide(2, t1, Decision::Commit),
        vec![reply(
            2,
            FromParticipant::Refused {
                reason: format!("commit for txn {t1} before this participant voted"),
            },
        )],
    );
}

#[test]
fn decide_for_an_unknown_txn_follows_presumed_abort_and_the_store() {
    let mut participant = participant();
    let t1 = txn(1);
    check(
        &mut participant,
        0,
        decide(1, t1, Decision::Abort),
        vec![ack(1, t1, Outcome::Aborted)],
    );
    check(
        &mut participant,
        0,
        decide(2, t1, Decision::Commit),
        vec![ack(2, t1, Outcome::Unknown)],
    );
    let committed = stored(t1, StoredState::Committed, None, vec![]);
    check(
        &mut participant,
        0,
        decide_stored(3, t1, Decision::Commit, committed.clone()),
        vec![ack(3, t1, Outcome::Committed)],
    );
    check(
        &mut participant,
        0,
        decide_stored(4, t1, Decision::Abort, committed),
        vec![ack(4, t1, Outcome::Committed)],
    );
    let aborted = stored(t1, StoredState::Aborted, Some("no"), vec![]);
    check(
        &mut participant,
        0,
        decide_stored(5, t1, Decision::Commit, aborted),
        vec![ack(5, t1, Outcome::Aborted)],
    );
    assert!(!participant.knows(t1));
}

#[test]
fn in_doubt_queries_back_off_from_min_to_max() {
    let mut participant = participant();
    let t1 = txn(1);
    check(
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
        participant.check_invariants();
        fired.push(at.0);
    }
    assert_eq!(fired, vec![1100, 1300, 1700, 2100, 2500, 2900]);
    check(
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
    participant.check_invariants();
    assert_eq!(participant.poll_timeout(), Some(Millis(300)));
    check(
        &mut participant,
        150,
        Input::PeerUp { peer: COORDINATOR },
        vec![query(t1)],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(250)));
    check(
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
    check(
        &mut participant,
        0,
        prepare(2, t2, vec![put("b", 1)], &[("b", None)]),
        vec![persist(
            2,
            prepared(t2, vec![entry(0, "b", OpKind::Put, None, int(1))]),
        )],
    );
    // Still preparing: not in doubt, not queried.
    check(&mut participant, 10, Input::PeerUp { peer: OTHER }, vec![]);
    check(
        &mut participant,
        10,
        Input::PeerUp { peer: COORDINATOR },
        vec![query(t1)],
    );
    check(
        &mut participant,
        10,
        Input::Persisted { lsn: Lsn(2) },
        vec![vote(2, t2, Vote::Yes, vec![])],
    );
    check(
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
    check(
        &mut participant,
        0,
        Input::DecisionAnswer {
            from: OTHER,
            txn: t1,
            answer: Answer::Commit,
        },
        vec![],
    );
    check(
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
    check(
        &mut participant,
        0,
        Input::DecisionAnswer {
            from: COORDINATOR,
            txn: t1,
            answer: Answer::Abort,
        },
        vec![],
    );
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![],
    );
    assert_eq!(participant.locks_held(), 0);

    check(
        &mut participant,
        0,
        prepare(3, t2, vec![put("a", 9)], &[("a", int(5))]),
        vec![persist(
            3,
            prepared(t2, vec![entry(0, "a", OpKind::Put, int(5), int(9))]),
        )],
    );
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(3) },
        vec![vote(3, t2, Vote::Yes, vec![])],
    );
    check(
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
    check(
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
fn recovered_txns_relock_their_keys_and_learn_the_outcome() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    let entries = vec![
        entry(0, "g", OpKind::Get, int(4), int(4)),
        entry(1, "a", OpKind::Put, None, int(5)),
    ];
    check(
        &mut participant,
        0,
        Input::Recover {
            txns: vec![stored(t1, StoredState::Prepared, None, entries)],
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
    check(
        &mut participant,
        0,
        prepare(1, t2, vec![put("g", 1)], &[("g", int(4))]),
        vec![persist(1, aborted(t2, &reason)), no(1, t2, &reason)],
    );
    // The coordinator, not having seen the vote, asks again: same vote, same reads.
    check(
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
    check(
        &mut participant,
        5,
        Input::PeerUp { peer: COORDINATOR },
        vec![query(t1)],
    );
    check(
        &mut participant,
        6,
        Input::DecisionAnswer {
            from: COORDINATOR,
            txn: t1,
            answer: Answer::Commit,
        },
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    check(
        &mut participant,
        7,
        Input::Persisted { lsn: Lsn(1) },
        vec![],
    );
    check(
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
    check(
        &mut participant,
        0,
        Input::Recover {
            txns: vec![stored(
                t1,
                StoredState::Committed,
                None,
                vec![entry(0, "a", OpKind::Put, None, int(1))],
            )],
        },
        vec![],
    );
    assert_eq!(participant.locks_held(), 0);
    assert!(!participant.knows(t1));
}

#[test]
fn finished_txns_beyond_the_bound_are_left_to_the_store() {
    let mut participant = participant();
    for n in 1..=3u64 {
        let t = txn(n.into());
        in_doubt_on_a(&mut participant, 0, t, n, 2 * n - 1);
        check(
            &mut participant,
            0,
            decide(n, t, Decision::Commit),
            vec![persist(2 * n, Record::Committed { txn: t })],
        );
        check(
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
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(42) },
        vec![],
    );
}

/// The oldest waiter pushed out is answered, not forgotten: an unanswered request would
/// hold one of the coordinator's in-flight slots for as long as the connection lives.
#[test]
fn too_many_duplicate_waiters_answer_the_oldest_as_superseded() {
    let mut participant = participant();
    let t1 = txn(1);
    check(
        &mut participant,
        0,
        prepare(0, t1, vec![put("a", 5)], &[("a", None)]),
        vec![persist(
            1,
            prepared(t1, vec![entry(0, "a", OpKind::Put, None, int(5))]),
        )],
    );
    // Request 0 waits too: these fill the table up to the bound.
    let duplicates = WAITERS_PER_TXN_MAX as u64;
    for id in 1..duplicates {
        check(
            &mut participant,
            0,
            prepare(id, t1, vec![put("a", 5)], &[("a", None)]),
            vec![],
        );
    }
    let superseded = FromParticipant::Refused {
        reason: SUPERSEDED_REASON.to_string(),
    };
    check(
        &mut participant,
        0,
        prepare(duplicates, t1, vec![put("a", 5)], &[("a", None)]),
        vec![reply(0, superseded)],
    );
    check(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        (1..=duplicates)
            .map(|id| vote(id, t1, Vote::Yes, vec![]))
            .collect(),
    );
}

#[test]
fn config_validation_names_the_bad_field() {
    let mut config = config();
    config.key_bytes_max = 0;
    assert_eq!(
        Participant::new(ME, config)
            .err()
            .map(|error| error.to_string()),
        Some("invalid participant configuration: key_bytes_max must be at least 1".to_string())
    );
    let mut config = self::config();
    config.decision_query_backoff_min_ms = 500;
    assert_eq!(
        config.validate().err().map(|error| error.to_string()),
        Some(
            "invalid participant configuration: decision_query_backoff_min_ms 500 exceeds \
             decision_query_backoff_max_ms 400"
                .to_string()
        )
    );
    assert_eq!(Config::default().validate(), Ok(()));
}

// Shared by the 3PC and peer tests.

/// Another peer with a higher id than `HIGH`.
const HIGHER: NodeId = NodeId(8);

fn from(peer: NodeId) -> ReplyTo {
    ReplyTo { peer, conn: CONN }
}

/// A 3PC Prepare of `Put a 5` (a was 1) naming `participants`, asking a 2 s waiting timeout.
fn prepare3(id: u64, txn: TxnId, participants: &[NodeId]) -> Input {
    Input::Prepare {
        from: from_coordinator(),
        id: RequestId(id),
        txn,
        protocol: Protocol::ThreePhase,
        ops: vec![put("a", 5)],
        timeout_ms: 2_000,
        participants: participants.to_vec(),
        values: [("a".to_string(), int(1))].into_iter().collect(),
        stored: None,
    }
}

fn waiting_record(txn: TxnId, participants: &[NodeId]) -> Record {
    Record::Prepared {
        txn,
        protocol: Protocol::ThreePhase,
        coordinator: COORDINATOR,
        entries: vec![entry(0, "a", OpKind::Put, int(1), int(5))],
        participants: participants.to_vec(),
    }
}

fn aborted3(txn: TxnId, reason: &str) -> Record {
    Record::Aborted {
        txn,
        protocol: Protocol::ThreePhase,
        coordinator: COORDINATOR,
        reason: reason.to_string(),
    }
}

fn reply_to(peer: NodeId, id: u64, msg: FromParticipant) -> Output {
    Output::Reply {
        to: from(peer),
        id: RequestId(id),
        msg,
    }
}

fn ack_to(peer: NodeId, id: u64, txn: TxnId, outcome: Outcome) -> Output {
    reply_to(peer, id, FromParticipant::Ack { txn, outcome })
}

fn state_to(peer: NodeId, id: u64, txn: TxnId, state: TxnState) -> Output {
    reply_to(peer, id, state_msg(txn, state, false))
}

/// The state a participant recovered in doubt tells.
fn recovered_state_to(peer: NodeId, id: u64, txn: TxnId, state: TxnState) -> Output {
    reply_to(peer, id, state_msg(txn, state, true))
}

fn send(to: NodeId, msg: impl Into<Request>) -> Output {
    Output::Send {
        to,
        msg: msg.into(),
    }
}

fn ask_state(to: NodeId, txn: TxnId) -> Output {
    send(to, ToParticipant::StateQuery { txn })
}

fn tell(to: NodeId, txn: TxnId, decision: Decision) -> Output {
    send(to, ToParticipant::Decide { txn, decision })
}

fn precommit_from(peer: NodeId, id: u64, txn: TxnId) -> Input {
    Input::PreCommit {
        from: from(peer),
        id: RequestId(id),
        txn,
        stored: None,
    }
}

fn decide_from(peer: NodeId, id: u64, txn: TxnId, decision: Decision) -> Input {
    Input::Decide {
        from: from(peer),
        id: RequestId(id),
        txn,
        decision,
        stored: None,
    }
}

fn state_query_from(peer: NodeId, id: u64, txn: TxnId) -> Input {
    Input::StateQuery {
        from: from(peer),
        id: RequestId(id),
        txn,
        stored: None,
    }
}

/// A state from an operational peer (it has not restarted since it voted).
fn state_reply(from: NodeId, txn: TxnId, state: TxnState) -> Input {
    Input::StateReply {
        from,
        txn,
        state,
        recovered: false,
    }
}

/// A state from a peer recovered in doubt.
fn recovered_reply(from: NodeId, txn: TxnId, state: TxnState) -> Input {
    Input::StateReply {
        from,
        txn,
        state,
        recovered: true,
    }
}

fn ack_from(from: NodeId, txn: TxnId, outcome: Outcome) -> Input {
    Input::Ack { from, txn, outcome }
}

fn up(peer: NodeId) -> Input {
    Input::PeerUp { peer }
}

fn down(peer: NodeId) -> Input {
    Input::PeerDown { peer }
}

/// `peers` crash (their channels go down) at `now_ms`, after the vote: nothing happens
/// until a timeout or the coordinator's failure starts the termination protocol.
fn peers_crash(participant: &mut Participant, now_ms: u64, peers: &[NodeId]) {
    for peer in peers {
        check(participant, now_ms, down(*peer), vec![]);
    }
}

/// Fires the timers due at `now_ms` and asserts the exact outputs and the invariants.
fn fire(participant: &mut Participant, now_ms: u64, expected: Vec<Output>) {
    participant.handle_timeout(Millis(now_ms));
    let outputs: Vec<Output> = std::iter::from_fn(|| participant.poll_output()).collect();
    assert_eq!(outputs, expected);
    participant.check_invariants();
}

/// Brings `up_peers` up, then `txn` (3PC, `participants`) to `waiting` at time 0 with
/// request id 1 and lsn 1: the YES vote sent, the waiting timeout due at 2000.
fn waiting_txn(
    participant: &mut Participant,
    txn: TxnId,
    participants: &[NodeId],
    up_peers: &[NodeId],
) {
    for peer in up_peers {
        check(participant, 0, up(*peer), vec![]);
    }
    check(
        participant,
        0,
        prepare3(1, txn, participants),
        vec![persist(1, waiting_record(txn, participants))],
    );
    check(
        participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![vote(1, txn, Vote::Yes, vec![])],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(2_000)));
}

/// `waiting_txn`, then a PreCommit from the coordinator at 10 (request id 2, lsn 2): acked
/// at 10, the precommitted timeout due at 2010.
fn precommitted_txn(
    participant: &mut Participant,
    txn: TxnId,
    participants: &[NodeId],
    up_peers: &[NodeId],
) {
    waiting_txn(participant, txn, participants, up_peers);
    check(
        participant,
        10,
        precommit_from(COORDINATOR, 2, txn),
        vec![persist(2, Record::PreCommitted { txn })],
    );
    check(
        participant,
        10,
        Input::Persisted { lsn: Lsn(2) },
        vec![ack(2, txn, Outcome::PreCommitted)],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(2_010)));
}

fn stored3(txn: TxnId, state: StoredState, participants: &[NodeId]) -> StoredTxn {
    StoredTxn {
        txn,
        protocol: Protocol::ThreePhase,
        coordinator: COORDINATOR,
        state,
        reason: None,
        entries: vec![entry(0, "a", OpKind::Put, int(1), int(5))],
        participants: participants.to_vec(),
    }
}

#[test]
fn config_timings_must_span_three_heartbeats() {
    let config = config();
    assert_eq!(config.validate_for_heartbeat(100), Ok(()));
    assert_eq!(
        config
            .validate_for_heartbeat(101)
            .err()
            .map(|error| error.to_string()),
        Some(
            "invalid participant configuration: termination_round_ms 300 is shorter than 3 \
             heartbeat intervals (303 ms at 101 ms per heartbeat)"
                .to_string()
        )
    );
    let mut bad = self::config();
    bad.waiting_timeout_min_ms = 6_000;
    assert_eq!(
        bad.validate().err().map(|error| error.to_string()),
        Some(
            "invalid participant configuration: waiting_timeout_min_ms 6000 exceeds \
             waiting_timeout_max_ms 5000"
                .to_string()
        )
    );
    let mut bad = self::config();
    bad.precommitted_timeout_ms = 0;
    assert_eq!(
        bad.validate().err().map(|error| error.to_string()),
        Some(
            "invalid participant configuration: precommitted_timeout_ms must be at least 1"
                .to_string()
        )
    );
    assert_eq!(Config::default().validate_for_heartbeat(100), Ok(()));
}
