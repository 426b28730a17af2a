//! What goes into the core and what comes out: [`Input`], [`Output`], the time and reply
//! addresses they carry, and the limits a caller can see.

use std::collections::BTreeMap;

use wire::{
    Answer, ClientResponse, Decision, FromParticipant, NodeId, Op, Outcome, Protocol, Request,
    RequestId, TxnId, TxnState, Value,
};

use super::{Lsn, Record, StoredReadHold, StoredTxn};

/// Requests for the same transaction waiting on one record (duplicates from retries);
/// past it the oldest waiter is answered with [`SUPERSEDED_REASON`] (its sender retries
/// or has gone). It is answered rather than forgotten because every request holds one of
/// its sender's in-flight slots until a response frees it.
pub const WAITERS_PER_TXN_MAX: usize = 16;

/// The `FromParticipant::Refused` reason a waiter pushed out by [`WAITERS_PER_TXN_MAX`] hears.
pub const SUPERSEDED_REASON: &str = "superseded by a newer duplicate of this request";

/// Participants one txn may name; a Prepare naming more gets NO.
pub const PARTICIPANTS_PER_TXN_MAX: usize = 1024;

/// The reason recorded for a txn aborted because a peer asked about it before this
/// participant voted YES on it.
pub fn asked_before_voting_reason(peer: NodeId) -> String {
    format!("aborted before voting: asked by peer {peer}")
}

pub use wire::Millis;

/// Where a reply goes: the peer and the connection (channel epoch) the request came on,
/// since request ids are per connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ReplyTo {
    pub peer: NodeId,
    pub conn: u64,
}

#[derive(Clone, Debug)]
pub enum Input {
    /// A coordinator asks for a vote (3PC: CanCommit). `values` holds the committed value
    /// of every key the ops name (`None`: absent); `stored` is the store's record of `txn`,
    /// read when [`Participant::knows`] was false. `timeout_ms` is the 3PC `waiting`
    /// timeout the coordinator assumes; `participants` every participant of the txn.
    Prepare {
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        protocol: Protocol,
        ops: Vec<Op>,
        timeout_ms: u64,
        participants: Vec<NodeId>,
        values: BTreeMap<String, Option<Value>>,
        stored: Option<StoredTxn>,
    },
    /// 3PC: the coordinator (or a termination leader) moves the txn to `precommitted`.
    /// `stored` as for `Prepare`.
    PreCommit {
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        stored: Option<StoredTxn>,
    },
    /// A decision from the coordinator (or a termination leader). `stored` as for `Prepare`.
    Decide {
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        decision: Decision,
        /// Why it aborted, as the sender says (`None` for a commit, or a sender that
        /// gives none): recorded as the abort's reason.
        reason: Option<String>,
        stored: Option<StoredTxn>,
    },
    /// The coordinator has every vote of `txn` (or aborted it): a read hold may go.
    Release {
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
    },
    /// A peer (or a recovering coordinator) asks for this participant's state of `txn`.
    /// `stored` as for `Prepare`.
    StateQuery {
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        stored: Option<StoredTxn>,
    },
    /// An operator decides an in-doubt txn by hand (`participant resolve --addr`): a
    /// heuristic commit or abort, answered with [`Output::ClientReply`] once durable
    /// (`resolve.rs`). `stored` as for `Prepare`.
    Resolve {
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        decision: Decision,
        /// The operator's why, kept in the txn's reason.
        note: String,
        stored: Option<StoredTxn>,
    },
    /// The answer to a `DecisionQuery` this core sent.
    DecisionAnswer {
        from: NodeId,
        txn: TxnId,
        answer: Answer,
    },
    /// The answer to a `StateQuery` this core sent. `recovered`: the peer restarted since
    /// it voted and is still undecided (3PC: it never leads, and its undecided state is no
    /// evidence for the termination protocol).
    StateReply {
        from: NodeId,
        txn: TxnId,
        state: TxnState,
        recovered: bool,
    },
    /// The answer to a `PreCommit` or `Decide` this core sent as a termination leader.
    Ack {
        from: NodeId,
        txn: TxnId,
        outcome: Outcome,
    },
    /// The record with this lsn is durable (reported in lsn order).
    Persisted { lsn: Lsn },
    /// A coordinator or a peer participant connected.
    PeerUp { peer: NodeId },
    /// A coordinator or a peer participant is down (closed, or silent too long).
    PeerDown { peer: NodeId },
    /// At startup: every transaction the store holds in doubt, with its log entries; and
    /// the ReadOnly votes whose hold's deadline had not passed by the store's wall clock
    /// reading `wall_ms` (Unix milliseconds), read just before; and the largest txn id
    /// the store holds (a `txn` or a read-only vote row; `None`: none), so that a Prepare
    /// for a newer id is known to be new without a read (`Participant::may_be_stored`).
    Recover {
        txns: Vec<StoredTxn>,
        holds: Vec<StoredReadHold>,
        wall_ms: u64,
        stored_max: Option<TxnId>,
    },
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Output {
    /// Make `record` durable, then report `Persisted { lsn }`. Records must become durable
    /// in lsn order.
    Persist { lsn: Lsn, record: Record },
    /// Respond to request `id` on the connection `to`.
    Reply {
        to: ReplyTo,
        id: RequestId,
        msg: FromParticipant,
    },
    /// Send `msg` as a new request to `to` (only emitted while `to` is up).
    Send { to: NodeId, msg: Request },
    /// Respond to an operator's request `id` on the client connection `to` (a resolve).
    ClientReply {
        to: ReplyTo,
        id: RequestId,
        msg: ClientResponse,
    },
}
