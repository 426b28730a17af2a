//! Core unit tests: one input in, the exact outputs out, invariants checked after each.
//! One file per handler (`vote.rs`, `decide.rs`, `precommit.rs`, `query.rs`,
//! `state_query.rs`, `recovery.rs`, `persisted.rs`, `resolve.rs`, `read_holds.rs`, `recovered_holds.rs`, the termination
//! protocol's `termination_*.rs`); this file holds the shared constants, the drivers that
//! bring a txn to a state, and the `check` helpers; `build.rs` the input and output
//! builders.

mod build;
mod committing;
mod config;
mod decide;
mod forgotten;
mod invariants;
mod locks;
mod persisted;
mod precommit;
mod query;
mod read_holds;
mod recovered_holds;
mod recovery;
mod repeat_vote;
mod resolve;
mod state_query;
mod stored_answers;
mod termination_alone;
mod termination_follower;
mod termination_leader;
mod termination_recovered;
mod termination_rules;
mod vote;
mod vote_no;

use std::collections::BTreeMap;

use uuid::Uuid;
use wire::{
    Answer, Decision, NodeId, Op, Outcome, Protocol, Read, RequestId, TxnId, TxnState, Value, Vote,
};

use super::answer::state_msg;
use super::*;
use build::*;

const COORDINATOR: NodeId = NodeId(1);

const OTHER: NodeId = NodeId(9);

/// This participant.
const ME: NodeId = NodeId(5);

/// Peer participants: one with a lower id (leads before us), one with a higher id.
const LOW: NodeId = NodeId(3);

const HIGH: NodeId = NodeId(7);

// Shared by the 3PC and peer tests.

/// Another peer with a higher id than `HIGH`.
const HIGHER: NodeId = NodeId(8);

const CONN: u64 = 7;

const ALL: [NodeId; 3] = [ME, LOW, HIGH];

/// A txn this participant leads (every peer has a higher id).
const LEADING: [NodeId; 3] = [ME, HIGH, HIGHER];

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
    assert_eq!(participant.check_invariants(), Ok(()));
    participant
}

/// Feeds one input at `now_ms` and asserts the exact outputs and the invariants.
fn step(participant: &mut Participant, now_ms: u64, input: Input, expected: Vec<Output>) {
    participant.handle(Millis(now_ms), input);
    let outputs: Vec<Output> = std::iter::from_fn(|| participant.poll_output()).collect();
    assert_eq!(outputs, expected);
    assert_eq!(participant.check_invariants(), Ok(()));
}

/// Table-driven: a fresh participant brought to a state by `setup`, then one `input` at 0;
/// the outputs, one per line in the shape [`render`] gives them, must equal the snapshot
/// `expected` (`UPDATE_EXPECT=1` rewrites snapshots after a deliberate change). The
/// invariants hold after each step. Returns the participant for further assertions.
fn check(
    setup: impl FnOnce(&mut Participant),
    input: Input,
    expected: expect_test::Expect,
) -> Participant {
    let mut participant = participant();
    setup(&mut participant);
    assert_eq!(participant.check_invariants(), Ok(()));
    participant.handle(Millis(0), input);
    let outputs: Vec<Output> = std::iter::from_fn(|| participant.poll_output()).collect();
    expected.assert_eq(&render(&outputs));
    assert_eq!(participant.check_invariants(), Ok(()));
    participant
}

/// No setup: a fresh participant.
fn fresh(_: &mut Participant) {}

/// Outputs as snapshot text, one per line: `persist LSN: RECORD`, `reply PEER#ID: MSG`
/// (the connection only when it is not `CONN`), `send PEER: MSG`, `client PEER/conn
/// C#ID: MSG`, with the tests' txn ids shortened to `tN` and node ids to `nN`.
fn render(outputs: &[Output]) -> String {
    let mut text = String::new();
    for output in outputs {
        let line = match output {
            Output::Persist { lsn, record } => format!("persist {lsn}: {record:?}"),
            Output::Reply { to, id, msg } if to.conn == CONN => {
                format!("reply {}#{}: {msg:?}", to.peer, id.0)
            }
            Output::Reply { to, id, msg } => {
                format!("reply {}/conn {}#{}: {msg:?}", to.peer, to.conn, id.0)
            }
            Output::Send { to, msg } => format!("send {to}: {msg:?}"),
            Output::ClientReply { to, id, msg } => {
                format!("client {}/conn {}#{}: {msg:?}", to.peer, to.conn, id.0)
            }
        };
        text.push_str(&shorten(&line));
        text.push('\n');
    }
    text
}

/// Txn ids `txn(0..=64)` become `tN`, node ids below 16 become `nN`.
fn shorten(line: &str) -> String {
    let mut line = line.to_string();
    for n in 0..=64u128 {
        let id = txn(n);
        line = line
            .replace(&format!("TxnId({})", id.0), &format!("t{n}"))
            .replace(&id.to_string(), &format!("t{n}"));
    }
    for n in 0..16u32 {
        line = line.replace(&format!("NodeId({n})"), &format!("n{n}"));
    }
    line
}

/// Fires the timers due at `now_ms` and asserts the exact outputs and the invariants.
fn fire(participant: &mut Participant, now_ms: u64, expected: Vec<Output>) {
    participant.handle_timeout(Millis(now_ms));
    let outputs: Vec<Output> = std::iter::from_fn(|| participant.poll_output()).collect();
    assert_eq!(outputs, expected);
    assert_eq!(participant.check_invariants(), Ok(()));
}

/// `txn` prepared on key `a` (Put 5 over 1) with lsn `lsn`, its YES vote sent at `now_ms`.
fn in_doubt_on_a(participant: &mut Participant, now_ms: u64, txn: TxnId, id: u64, lsn: u64) {
    step(
        participant,
        now_ms,
        prepare(id, txn, vec![put("a", 5)], &[("a", int(1))]),
        vec![persist(
            lsn,
            prepared(txn, vec![entry(0, "a", OpKind::Put, int(1), int(5))]),
        )],
    );
    step(
        participant,
        now_ms,
        Input::Persisted { lsn: Lsn(lsn) },
        vec![vote(id, txn, Vote::Yes, vec![])],
    );
}

/// A 2PC txn on key `a`, participants ME, LOW and HIGH, its YES vote sent at 0 (lsn 1).
fn in_doubt_with_peers(participant: &mut Participant, txn: TxnId) {
    step(
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
    step(
        participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![vote(1, txn, Vote::Yes, vec![])],
    );
}

/// `peers` crash (their channels go down) at `now_ms`, after the vote: nothing happens
/// until a timeout or the coordinator's failure starts the termination protocol.
fn peers_crash(participant: &mut Participant, now_ms: u64, peers: &[NodeId]) {
    for peer in peers {
        step(participant, now_ms, down(*peer), vec![]);
    }
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
        step(participant, 0, up(*peer), vec![]);
    }
    step(
        participant,
        0,
        prepare3(1, txn, participants),
        vec![persist(1, waiting_record(txn, participants))],
    );
    step(
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
    step(
        participant,
        10,
        precommit_from(COORDINATOR, 2, txn),
        vec![persist(2, Record::PreCommitted { txn })],
    );
    step(
        participant,
        10,
        Input::Persisted { lsn: Lsn(2) },
        vec![ack(2, txn, Outcome::PreCommitted)],
    );
    assert_eq!(participant.poll_timeout(), Some(Millis(2_010)));
}
