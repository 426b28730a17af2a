//! What crosses the core's boundary: `Input` (what the shell feeds it), `Output` (what
//! it asks the shell to do), the decision-log `Record`, and the small types they carry.

use wire::{
    Decision, FromCoordinator, FromParticipant, NodeId, Outcome, Protocol, RequestId,
    ToCoordinator, ToParticipant, TxnId, TxnResult, TxnSpec,
};

pub use wire::{Lsn, Millis};

/// The shell's opaque handle on a waiting client request; the core only hands it back.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ClientRef {
    pub channel: u64,
    pub request: u64,
}

/// Why the shell could not hand a message to a participant's channel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SendFailure {
    /// The channel's send queue is full: the participant is not keeping up.
    Overloaded,
    /// No open channel to the participant.
    Closed,
    /// The message's frame of `len` bytes is over the `max` the participant's channel
    /// sends (the participant announced a smaller limit than `Input::PeerFrameLimit` said).
    TooLarge { len: usize, max: usize },
}

/// A logged commit without an end, as the store recovers it at startup (3PC: a logged
/// precommit; `unfinished` computes the same from a list of records).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RecoveredTxn {
    pub txn: TxnId,
    pub protocol: Protocol,
    /// The participants that voted Yes and must apply the commit.
    pub participants: Vec<NodeId>,
}

/// Everything that can happen to the coordinator.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Input {
    /// A client submits a transaction; the shell made `txn` (a fresh v7 id).
    Submit {
        client: ClientRef,
        txn: TxnId,
        spec: TxnSpec,
    },
    /// A participant's response to one of our requests (`Vote`, `Ack`, `StateReply`).
    Response {
        from: NodeId,
        msg: FromParticipant,
    },
    /// A participant's request (`DecisionQuery`); answered with `Output::Reply`.
    Request {
        from: NodeId,
        id: RequestId,
        msg: ToCoordinator,
    },
    /// The record handed over as `Persist{lsn}` is durable.
    Persisted {
        lsn: Lsn,
    },
    /// A `Send` to `to` about `txn` did not reach the channel.
    SendFailed {
        to: NodeId,
        txn: TxnId,
        failure: SendFailure,
    },
    /// The largest frame body the channel to `peer` sends (the smaller of ours and what
    /// the participant announced); the shell reports it before that channel's `PeerUp`.
    PeerFrameLimit {
        peer: NodeId,
        bytes: usize,
    },
    PeerUp {
        peer: NodeId,
    },
    PeerDown {
        peer: NodeId,
    },
    /// Startup: the log's commits without an end.
    Recovered {
        txns: Vec<RecoveredTxn>,
    },
}

/// A decision-log record.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Record {
    /// The commit decision (3PC: the precommit). Only commits are logged.
    Decided {
        txn: TxnId,
        protocol: Protocol,
        decision: Decision,
        /// The participants that must learn the decision (the Yes voters).
        participants: Vec<NodeId>,
    },
    /// Every participant acked: recovery can skip the transaction.
    Ended { txn: TxnId },
    /// 3PC: a participant reported that it aborted (its termination protocol decided
    /// while the coordinator was down or cut off), so the logged precommit is turned
    /// into an abort and the transaction ends (the decision row becomes 'abort', ended).
    AbortAdopted { txn: TxnId, reason: String },
    /// A participant reported an outcome an operator forced by hand that contradicts the
    /// logged `decision`: a row in `heuristic_hazard` (repeated: a no-op). Nothing waits
    /// on it; it is for the operator, who must repair that participant's data.
    Hazard {
        txn: TxnId,
        participant: NodeId,
        decision: Decision,
        outcome: Outcome,
    },
}

/// Everything the core asks the shell to do.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Output {
    /// A request to a participant (`Prepare`, `PreCommit`, `Decide`, `StateQuery`).
    Send { to: NodeId, msg: ToParticipant },
    /// The response to a participant's request.
    Reply {
        to: NodeId,
        id: RequestId,
        msg: FromCoordinator,
    },
    /// Make `record` durable, then report `Persisted{lsn}` (in lsn order).
    Persist { lsn: Lsn, record: Record },
    ClientResult {
        client: ClientRef,
        txn: TxnId,
        result: TxnResult,
    },
}
