//! What the core remembers per transaction: active txns (voting, in doubt, committing),
//! read holds, finished txns, and the requests waiting on their records.

use std::collections::{BTreeSet, VecDeque};

use tracing::warn;
use wire::{FromParticipant, NodeId, Protocol, Read, RequestId, TxnId, TxnState};

use super::termination::Termination;
use super::{LogEntry, Lsn, Millis, Output, ReplyTo, SUPERSEDED_REASON, WAITERS_PER_TXN_MAX};

/// What a request held on a record wants to hear once the record is durable.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Wants {
    Vote,
    /// `Ack` to a PreCommit: once `precommitted` (or beyond) is durable.
    PreCommitAck,
    /// `Ack` to a Decide: once the outcome is durable.
    DecideAck,
    /// `StateReply`: the state once the next record is durable.
    State,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) struct Waiter {
    pub(super) to: ReplyTo,
    pub(super) id: RequestId,
    pub(super) wants: Wants,
}

/// A transaction holding locks: voting, in doubt, or committing.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(super) struct Active {
    pub(super) protocol: Protocol,
    pub(super) coordinator: NodeId,
    /// The txn's other participants, sorted.
    pub(super) peers: Vec<NodeId>,
    /// One per op; their keys are the locks held.
    pub(super) entries: Vec<LogEntry>,
    pub(super) reads: Vec<Read>,
    /// When the Prepare (or recovery) made it active: the age in status reports.
    pub(super) since: Millis,
    /// 3PC: how long it waits in `waiting` for a PreCommit.
    pub(super) waiting_timeout_ms: u64,
    /// Found in doubt at startup: asks, never applies the alone rules.
    pub(super) recovered: bool,
    /// The state its durable records have reached (`None`: the vote's record is not yet).
    pub(super) durable: Option<TxnState>,
    /// The state its records move it to: equal to `durable` when none is pending.
    /// `Prepared` or `Committed` under 2PC; `Waiting`, `PreCommitted` or `Committed`
    /// under 3PC.
    pub(super) target: TxnState,
    /// Requests answered once the next record is durable.
    pub(super) waiters: Vec<Waiter>,
    /// Set while voted and undecided: the next query (2PC, recovered), or the 3PC timeout
    /// or termination round deadline.
    pub(super) timer_at: Option<Millis>,
    /// The wait that ends at the next query; the next one is twice as long, up to the max.
    pub(super) backoff_ms: u64,
    /// 3PC: the termination protocol, once started.
    pub(super) termination: Option<Termination>,
    /// 2PC: peers that answered they do not know the outcome either.
    pub(super) undecided_peers: BTreeSet<NodeId>,
}

impl Active {
    /// Voted YES (durably), no outcome yet.
    pub(super) fn is_undecided(&self) -> bool {
        self.durable.is_some() && self.target != TxnState::Committed
    }
}

/// A ReadOnly vote on a txn with other participants, holding shared locks on the keys it
/// read until every vote is in (see the module docs).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(super) struct ReadHold {
    pub(super) keys: Vec<String>,
    /// When it releases by itself: the vote plus the txn's `timeout_ms`.
    pub(super) until: Millis,
}

/// How a finished transaction ended.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(super) enum End {
    Committed,
    Aborted {
        reason: String,
    },
    /// Voted ReadOnly on a txn with other participants (it does not know the outcome).
    ReadOnly,
}

/// A finished transaction, remembered to answer duplicates.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(super) struct Done {
    pub(super) protocol: Protocol,
    pub(super) end: End,
    /// The reads of a committed or read-only transaction (a repeated Prepare repeats its
    /// vote).
    pub(super) reads: Vec<Read>,
    /// The `Aborted` or `ReadOnly` record not yet durable (a commit is only `Done` once
    /// durable).
    pub(super) pending: Option<Lsn>,
    /// Requests answered once `pending` is durable.
    pub(super) waiters: Vec<Waiter>,
}

/// The state a YES vote records.
pub(super) fn voted_state(protocol: Protocol) -> TxnState {
    match protocol {
        Protocol::TwoPhase => TxnState::Prepared,
        Protocol::ThreePhase => TxnState::Waiting,
    }
}

/// States in the order they move forward (`Aborted` is never an active txn's state).
pub(super) fn rank(state: TxnState) -> u8 {
    match state {
        TxnState::Prepared | TxnState::Waiting => 1,
        TxnState::PreCommitted => 2,
        TxnState::Committed => 3,
        TxnState::Aborted => 4,
    }
}

/// Moves a txn's timer (`slot`) to `at` in the timer table.
pub(super) fn set_timer(
    timers: &mut BTreeSet<(Millis, TxnId)>,
    txn: TxnId,
    slot: &mut Option<Millis>,
    at: Option<Millis>,
) {
    if let Some(old) = slot.take() {
        timers.remove(&(old, txn));
    }
    if let Some(at) = at {
        timers.insert((at, txn));
        *slot = Some(at);
    }
}

/// Holds a request until its txn's next record is durable. Past `WAITERS_PER_TXN_MAX` the
/// oldest waiter is answered with an error now (into `outputs`), so its sender's slot frees.
pub(super) fn push_waiter(
    waiters: &mut Vec<Waiter>,
    outputs: &mut VecDeque<Output>,
    txn: TxnId,
    waiter: Waiter,
) {
    if waiters.len() >= WAITERS_PER_TXN_MAX {
        let oldest = waiters.remove(0);
        warn!(%txn, peer = %oldest.to.peer, "too many duplicate requests waiting; the oldest is answered as superseded");
        outputs.push_back(Output::Reply {
            to: oldest.to,
            id: oldest.id,
            msg: FromParticipant::Refused {
                reason: SUPERSEDED_REASON.to_string(),
            },
        });
    }
    waiters.push(waiter);
}
