//! Every type that crosses the network: ids, operations, protocol messages and frames.
//!
//! Only this crate derives `Serialize`/`Deserialize`; the bytes are pinned by the
//! golden-bytes tests in `tests/` (the bytes are in `tests/golden.rs`), so a serde or
//! field change that would break a running cluster fails a test first.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::admin::{InDoubtEntry, TxnLookup};

mod describe;

/// First field of every `Hello`: a connection that does not start with it is not ours.
pub const MAGIC: u32 = 0x4143_4D54; // "ACMT": atomic commit
/// Bumped on any incompatible change to the frames below.
pub const PROTOCOL_VERSION: u16 = 6;

/// A node of the cluster (coordinator or participant), unique within a cluster.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
#[serde(transparent)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A transaction id: a UUID, v7 when the coordinator makes it (time-ordered ids keep
/// SQLite indexes append-only).
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[serde(transparent)]
pub struct TxnId(pub Uuid);

impl TxnId {
    /// A fresh time-ordered id. Only shells call this (cores take ids as input).
    pub fn new_v7() -> Self {
        TxnId(Uuid::now_v7())
    }
}

/// The order of the id's bytes (the UUID's own order) compared as one big-endian number:
/// the cores' ordered maps are keyed by txn ids, and the byte-wise comparison was a
/// `memcmp` call for every step of every lookup.
impl Ord for TxnId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.as_u128().cmp(&other.0.as_u128())
    }
}

impl PartialOrd for TxnId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

/// A request's sequence number on one channel epoch: 1, 2, 3, ... with no gaps.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
#[serde(transparent)]
pub struct RequestId(pub u64);

/// What a node is, announced in `Hello` so a peer can refuse the wrong kind.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Role {
    Coordinator,
    Participant,
    Client,
}

/// Which atomic-commit protocol a transaction runs.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Protocol {
    #[serde(rename = "2pc")]
    TwoPhase,
    #[serde(rename = "3pc")]
    ThreePhase,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::TwoPhase => "2pc",
            Protocol::ThreePhase => "3pc",
        }
    }
}

/// A stored value. Integers stay integers in SQLite, so `SELECT sum(value)` works.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Value {
    Int(i64),
    Text(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// One operation of a transaction on one participant.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Op {
    Get {
        key: String,
    },
    Put {
        key: String,
        value: Value,
    },
    Delete {
        key: String,
    },
    /// Integer add; the participant votes NO if the result leaves `[min, max]`
    /// (a missing key counts as 0; a non-integer value is a NO).
    Add {
        key: String,
        delta: i64,
        min: Option<i64>,
        max: Option<i64>,
    },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Get { key } | Op::Put { key, .. } | Op::Delete { key } | Op::Add { key, .. } => key,
        }
    }

    pub fn is_read(&self) -> bool {
        matches!(self, Op::Get { .. })
    }
}

/// The value a `Get` saw (`None`: no such key), in operation order.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub struct Read {
    pub key: String,
    pub value: Option<Value>,
}

/// The protocol decision for a transaction.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Decision {
    Commit,
    Abort,
}

/// A participant's vote.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Vote {
    /// Prepared durably; locks held until the decision.
    Yes,
    /// Will not commit (bound violated, lock conflict, bad op, ...).
    No { reason: String },
    /// Only reads: locks released, left out of the later phases.
    ReadOnly,
}

/// The coordinator's answer to a `DecisionQuery`.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Answer {
    Commit,
    Abort,
    /// Still collecting votes (or the decision is not yet durable): ask again later.
    Undecided,
}

/// The state a participant reports for a transaction in an `Ack`.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Outcome {
    Committed,
    Aborted,
    /// 3PC: the PreCommit is durable (answer to `PreCommit`).
    PreCommitted,
    /// The participant has no record of the transaction (never prepared it).
    Unknown,
    /// An operator committed it by hand while it was in doubt (`participant resolve`).
    HeuristicCommitted,
    /// An operator aborted it by hand while it was in doubt (`participant resolve`).
    HeuristicAborted,
}

/// A participant's durable state for a transaction, as told to a peer or a recovering
/// coordinator (`StateReply`). States only move forward: `Waiting` -> `PreCommitted` ->
/// `Committed`, or -> `Aborted`.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TxnState {
    /// 2PC: voted YES, in doubt.
    Prepared,
    /// 3PC: voted YES, waiting for PreCommit.
    Waiting,
    /// 3PC: PreCommit durable, waiting for DoCommit.
    PreCommitted,
    Committed,
    /// Aborted, or never voted YES: a participant asked about a transaction it has not
    /// voted on aborts it (durably) before answering, so it can never vote YES later.
    Aborted,
}

/// A transaction as a client submits it.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub struct TxnSpec {
    pub protocol: Protocol,
    /// Vote collection deadline, in milliseconds from submission.
    pub timeout_ms: u64,
    /// Operations per participant, in the order they apply.
    pub parts: Vec<(NodeId, Vec<Op>)>,
}

/// Why the coordinator did not commit, as the client sees it.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub enum TxnResult {
    Committed {
        reads: Vec<(NodeId, Vec<Read>)>,
    },
    Aborted {
        reason: String,
    },
    /// Refused before any participant saw it (bad spec, a limit, overload).
    Rejected {
        reason: String,
    },
}

/// A request to a participant: from its coordinator, or (`PreCommit`, `Decide`,
/// `StateQuery`) from a peer participant leading the termination protocol or asking
/// while in doubt. Answered with a [`FromParticipant`].
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub enum ToParticipant {
    /// 2PC Prepare, 3PC CanCommit; answered with `Vote`.
    Prepare {
        txn: TxnId,
        protocol: Protocol,
        ops: Vec<Op>,
        /// How long the participant may wait before it votes, in milliseconds.
        timeout_ms: u64,
        /// Every participant of the transaction (for the termination protocol and for
        /// in-doubt peers asking each other).
        participants: Vec<NodeId>,
    },
    /// 3PC; answered with `Ack { outcome: PreCommitted }`.
    PreCommit { txn: TxnId },
    /// The decision (3PC: DoCommit or Abort); answered with `Ack`. An abort carries why
    /// (a participant's NO vote, a timeout, a peer down), which the participant records.
    Decide {
        txn: TxnId,
        decision: Decision,
        reason: Option<String>,
    },
    /// Answered with `StateReply`.
    StateQuery { txn: TxnId },
    /// Every vote of the transaction is in (or it aborted): a participant that voted
    /// ReadOnly may drop the shared locks it kept since its vote. Until then they keep the
    /// transaction's lock point (see ARCHITECTURE.md, isolation). Idempotent: a release
    /// of a transaction the participant holds nothing for is answered the same.
    /// Answered with `Released`.
    Release { txn: TxnId },
}

/// A participant's response to a [`ToParticipant`] request.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub enum FromParticipant {
    Vote {
        txn: TxnId,
        vote: Vote,
        reads: Vec<Read>,
    },
    Ack {
        txn: TxnId,
        outcome: Outcome,
    },
    StateReply {
        txn: TxnId,
        state: TxnState,
        /// The replier restarted since it voted and has not decided since (3PC): its
        /// undecided state may predate a decision taken while it was down, so it never
        /// leads the termination protocol and its state is no evidence for one.
        recovered: bool,
    },
    /// Nothing depends on it; the coordinator ignores it.
    Released {
        txn: TxnId,
    },
    /// The request was not served (wrong sender, a state that contradicts it, a waiter
    /// pushed out by a bound); the reason is for the requester's log.
    Refused {
        reason: String,
    },
}

/// A request to a coordinator from one of its participants.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub enum ToCoordinator {
    /// 2PC: an in-doubt participant asks for the decision; answered with `DecisionAnswer`.
    DecisionQuery { txn: TxnId },
}

/// A coordinator's response to a [`ToCoordinator`] request.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub enum FromCoordinator {
    DecisionAnswer { txn: TxnId, answer: Answer },
    Refused { reason: String },
}

/// A client's request, to a coordinator (`Submit`, `Status`) or a participant (`Status`,
/// and the operator's `InDoubt`, `Txn` and `Resolve`).
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub enum ClientRequest {
    /// The client names the transaction (a fresh v7 id), so it can print the id before it
    /// waits and look the transaction up if the answer never comes. Answered with `Result`.
    Submit { txn: TxnId, spec: TxnSpec },
    /// Answered with `StatusReport`.
    Status,
    /// A participant's in-doubt transactions, from its database; answered with `InDoubt`.
    InDoubt,
    /// One transaction as a participant's database records it; answered with `Txn`.
    Txn { txn: TxnId },
    /// A heuristic decision on a txn in doubt at a running participant (an operator's
    /// `participant resolve --addr`); answered with `Resolved` once it is durable, or
    /// `Refused` (not in doubt, unknown, or already resolved the other way).
    Resolve {
        txn: TxnId,
        decision: Decision,
        /// The operator's why, kept in the txn's reason.
        note: String,
    },
}

/// A node's response to a [`ClientRequest`].
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub enum ClientResponse {
    Result {
        txn: TxnId,
        result: TxnResult,
    },
    StatusReport {
        text: String,
    },
    Refused {
        reason: String,
    },
    /// Oldest first; `omitted` more were left out to keep the reply within its bound.
    InDoubt {
        entries: Vec<InDoubtEntry>,
        omitted: u64,
    },
    /// Boxed: a txn row is large, and every `Response` would otherwise be that large.
    Txn {
        txn: TxnId,
        lookup: Box<TxnLookup>,
    },
    /// Durably `heuristic_commit`/`heuristic_abort`, locks released (a repeat gets the
    /// same); the txn's `coordinator` hears the outcome when it sends its decision.
    Resolved {
        txn: TxnId,
        decision: Decision,
        coordinator: NodeId,
    },
}

/// The body of a request frame: one family per receiver, so a node's routing match names
/// every request it can get, and a new message breaks every match that must handle it.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Request {
    Participant(ToParticipant),
    Coordinator(ToCoordinator),
    Client(ClientRequest),
}

/// The body of a response frame: always of the family of the request it answers.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Response {
    Participant(FromParticipant),
    Coordinator(FromCoordinator),
    Client(ClientResponse),
}

impl From<ToParticipant> for Request {
    fn from(msg: ToParticipant) -> Self {
        Request::Participant(msg)
    }
}

impl From<ToCoordinator> for Request {
    fn from(msg: ToCoordinator) -> Self {
        Request::Coordinator(msg)
    }
}

impl From<ClientRequest> for Request {
    fn from(msg: ClientRequest) -> Self {
        Request::Client(msg)
    }
}

impl From<FromParticipant> for Response {
    fn from(msg: FromParticipant) -> Self {
        Response::Participant(msg)
    }
}

impl From<FromCoordinator> for Response {
    fn from(msg: FromCoordinator) -> Self {
        Response::Coordinator(msg)
    }
}

impl From<ClientResponse> for Response {
    fn from(msg: ClientResponse) -> Self {
        Response::Client(msg)
    }
}

/// The first frame each way on every connection.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Hello {
    pub magic: u32,
    pub protocol_version: u16,
    pub node_id: NodeId,
    pub role: Role,
    pub cluster_id: String,
    /// Random per node process (`ChannelConfig::new`): tells a reconnect of the node we
    /// know from a second process claiming its id (see `registry`).
    pub instance: u64,
    /// Fresh per connection: the challenge the peer's `Auth` proof must cover.
    pub nonce: [u8; NONCE_LEN],
    /// The sender has a secret for this connection and will prove it with `Auth` (see
    /// `auth`); both sides must agree.
    pub auth: bool,
    /// The largest frame body the sender accepts after the handshake (its
    /// `max_frame_len`): the receiver never sends it a larger one (`Channel` refuses such
    /// a message to its caller instead).
    pub max_frame_len: u32,
}

/// Bytes of a handshake nonce.
pub const NONCE_LEN: usize = 16;
/// Bytes of an HMAC-SHA256 proof.
pub const PROOF_LEN: usize = 32;

/// One frame on a channel.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub enum Frame {
    Hello(Hello),
    /// Handshake refused; the sender closes the connection after it.
    Reject {
        reason: String,
    },
    /// Proof of the shared secret, sent after both Hellos when both announced `auth`:
    /// HMAC-SHA256 over both Hellos as sent, so it is good for this connection only.
    Auth {
        proof: [u8; PROOF_LEN],
    },
    /// Liveness only; any frame counts as heard-from.
    Heartbeat,
    Request {
        id: RequestId,
        msg: Request,
    },
    Response {
        id: RequestId,
        msg: Response,
    },
    /// The request `id` broke the sequence (a gap or a replay) and was not processed.
    SequenceError {
        id: RequestId,
        expected: RequestId,
    },
}
