//! Builders of the core's inputs, outputs and records for the tests.

use super::*;
use wire::{FromParticipant, Request, ToCoordinator, ToParticipant};

pub(super) fn txn(n: u128) -> TxnId {
    TxnId(Uuid::from_u128(n))
}

pub(super) fn from_coordinator() -> ReplyTo {
    ReplyTo {
        peer: COORDINATOR,
        conn: CONN,
    }
}

pub(super) fn int(value: i64) -> Option<Value> {
    Some(Value::Int(value))
}

pub(super) fn text(value: &str) -> Option<Value> {
    Some(Value::Text(value.to_string()))
}

pub(super) fn put(key: &str, value: i64) -> Op {
    Op::Put {
        key: key.to_string(),
        value: Value::Int(value),
    }
}

pub(super) fn get(key: &str) -> Op {
    Op::Get {
        key: key.to_string(),
    }
}

pub(super) fn add(key: &str, delta: i64, min: Option<i64>, max: Option<i64>) -> Op {
    Op::Add {
        key: key.to_string(),
        delta,
        min,
        max,
    }
}

pub(super) fn prepare(
    id: u64,
    txn: TxnId,
    ops: Vec<Op>,
    values: &[(&str, Option<Value>)],
) -> Input {
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

pub(super) fn decide(id: u64, txn: TxnId, decision: Decision) -> Input {
    Input::Decide {
        from: from_coordinator(),
        id: RequestId(id),
        txn,
        decision,
        reason: None,
        stored: None,
    }
}

pub(super) fn reply(id: u64, msg: FromParticipant) -> Output {
    Output::Reply {
        to: from_coordinator(),
        id: RequestId(id),
        msg,
    }
}

pub(super) fn vote(id: u64, txn: TxnId, vote: Vote, reads: Vec<Read>) -> Output {
    reply(id, FromParticipant::Vote { txn, vote, reads })
}

pub(super) fn no(id: u64, txn: TxnId, reason: &str) -> Output {
    vote(
        id,
        txn,
        Vote::No {
            reason: reason.to_string(),
        },
        Vec::new(),
    )
}

pub(super) fn ack(id: u64, txn: TxnId, outcome: Outcome) -> Output {
    reply(id, FromParticipant::Ack { txn, outcome })
}

pub(super) fn read(key: &str, value: Option<Value>) -> Read {
    Read {
        key: key.to_string(),
        value,
    }
}

pub(super) fn entry(
    seq: u32,
    key: &str,
    op: OpKind,
    undo: Option<Value>,
    redo: Option<Value>,
) -> LogEntry {
    LogEntry {
        seq,
        key: key.to_string(),
        op,
        undo,
        redo,
    }
}

pub(super) fn persist(lsn: u64, record: Record) -> Output {
    Output::Persist {
        lsn: Lsn(lsn),
        record,
    }
}

pub(super) fn prepared(txn: TxnId, entries: Vec<LogEntry>) -> Record {
    Record::Prepared {
        txn,
        protocol: Protocol::TwoPhase,
        coordinator: COORDINATOR,
        entries,
        participants: vec![ME],
    }
}

pub(super) fn aborted(txn: TxnId, reason: &str) -> Record {
    Record::Aborted {
        txn,
        protocol: Protocol::TwoPhase,
        coordinator: COORDINATOR,
        reason: reason.to_string(),
    }
}

pub(super) fn query(txn: TxnId) -> Output {
    Output::Send {
        to: COORDINATOR,
        msg: ToCoordinator::DecisionQuery { txn }.into(),
    }
}

pub(super) fn stored(
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

pub(super) fn from(peer: NodeId) -> ReplyTo {
    ReplyTo { peer, conn: CONN }
}

/// A 3PC Prepare of `Put a 5` (a was 1) naming `participants`, asking a 2 s waiting timeout.
pub(super) fn prepare3(id: u64, txn: TxnId, participants: &[NodeId]) -> Input {
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

pub(super) fn waiting_record(txn: TxnId, participants: &[NodeId]) -> Record {
    Record::Prepared {
        txn,
        protocol: Protocol::ThreePhase,
        coordinator: COORDINATOR,
        entries: vec![entry(0, "a", OpKind::Put, int(1), int(5))],
        participants: participants.to_vec(),
    }
}

pub(super) fn aborted3(txn: TxnId, reason: &str) -> Record {
    Record::Aborted {
        txn,
        protocol: Protocol::ThreePhase,
        coordinator: COORDINATOR,
        reason: reason.to_string(),
    }
}

pub(super) fn reply_to(peer: NodeId, id: u64, msg: FromParticipant) -> Output {
    Output::Reply {
        to: from(peer),
        id: RequestId(id),
        msg,
    }
}

pub(super) fn ack_to(peer: NodeId, id: u64, txn: TxnId, outcome: Outcome) -> Output {
    reply_to(peer, id, FromParticipant::Ack { txn, outcome })
}

pub(super) fn state_to(peer: NodeId, id: u64, txn: TxnId, state: TxnState) -> Output {
    reply_to(peer, id, state_msg(txn, state, false))
}

/// The state a participant recovered in doubt tells.
pub(super) fn recovered_state_to(peer: NodeId, id: u64, txn: TxnId, state: TxnState) -> Output {
    reply_to(peer, id, state_msg(txn, state, true))
}

pub(super) fn send(to: NodeId, msg: impl Into<Request>) -> Output {
    let msg = msg.into();
    Output::Send { to, msg }
}

pub(super) fn ask_state(to: NodeId, txn: TxnId) -> Output {
    send(to, ToParticipant::StateQuery { txn })
}

pub(super) fn tell(to: NodeId, txn: TxnId, decision: Decision) -> Output {
    send(
        to,
        ToParticipant::Decide {
            txn,
            decision,
            reason: None,
        },
    )
}

/// A termination leader's abort, with the reason it recorded.
pub(super) fn tell_abort(to: NodeId, txn: TxnId, reason: &str) -> Output {
    send(
        to,
        ToParticipant::Decide {
            txn,
            decision: Decision::Abort,
            reason: Some(reason.to_string()),
        },
    )
}

pub(super) const ALL_WAITING: &str =
    "termination protocol: every operational participant was waiting";

pub(super) fn precommit_from(peer: NodeId, id: u64, txn: TxnId) -> Input {
    Input::PreCommit {
        from: from(peer),
        id: RequestId(id),
        txn,
        stored: None,
    }
}

pub(super) fn decide_from(peer: NodeId, id: u64, txn: TxnId, decision: Decision) -> Input {
    Input::Decide {
        from: from(peer),
        id: RequestId(id),
        txn,
        decision,
        reason: None,
        stored: None,
    }
}

pub(super) fn state_query_from(peer: NodeId, id: u64, txn: TxnId) -> Input {
    Input::StateQuery {
        from: from(peer),
        id: RequestId(id),
        txn,
        stored: None,
    }
}

/// A state from an operational peer (it has not restarted since it voted).
pub(super) fn state_reply(from: NodeId, txn: TxnId, state: TxnState) -> Input {
    Input::StateReply {
        from,
        txn,
        state,
        recovered: false,
    }
}

/// A state from a peer recovered in doubt.
pub(super) fn recovered_reply(from: NodeId, txn: TxnId, state: TxnState) -> Input {
    Input::StateReply {
        from,
        txn,
        state,
        recovered: true,
    }
}

pub(super) fn ack_from(from: NodeId, txn: TxnId, outcome: Outcome) -> Input {
    Input::Ack { from, txn, outcome }
}

pub(super) fn up(peer: NodeId) -> Input {
    Input::PeerUp { peer }
}

pub(super) fn down(peer: NodeId) -> Input {
    Input::PeerDown { peer }
}

pub(super) fn stored3(txn: TxnId, state: StoredState, participants: &[NodeId]) -> StoredTxn {
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

/// A 3PC Prepare of `put key 5` for `txn` asking for a waiting timeout of `timeout_ms`.
pub(super) fn prepare3_with_timeout(id: u64, txn: TxnId, timeout_ms: u64, key: &str) -> Input {
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
