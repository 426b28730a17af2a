//! The participant's log records and stored transaction states: what the core asks the
//! store to make durable, and what the store hands back on lookups and recovery.
use wire::{Decision, NodeId, Protocol, TxnId, Value};

/// The core numbers every `Persist` strictly increasingly, and the store reports them
/// durable in the same order.
pub use wire::Lsn;

/// The kind of one operation in the transaction log (`txn_log.op`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum OpKind {
    /// Logged so the read lock survives a restart and a repeated vote can repeat its reads;
    /// its undo and redo images are both the value read, and commit does not apply it.
    Get,
    Put,
    Delete,
    Add,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Put => "put",
            OpKind::Delete => "delete",
            OpKind::Add => "add",
        }
    }

    /// Whether the op changes its key (and so takes it exclusively and is applied at
    /// commit).
    pub fn writes(self) -> bool {
        match self {
            OpKind::Get => false,
            OpKind::Put | OpKind::Delete | OpKind::Add => true,
        }
    }

    pub fn parse(text: &str) -> Option<OpKind> {
        match text {
            "get" => Some(OpKind::Get),
            "put" => Some(OpKind::Put),
            "delete" => Some(OpKind::Delete),
            "add" => Some(OpKind::Add),
            _ => None,
        }
    }
}

/// One operation of a prepared transaction with its before (`undo`) and after (`redo`)
/// images of the key; `None` means the key is absent.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct LogEntry {
    /// The operation's index in the `Prepare`'s op list.
    pub seq: u32,
    pub key: String,
    pub op: OpKind,
    pub undo: Option<Value>,
    pub redo: Option<Value>,
}

/// What the core asks the store to make durable.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Record {
    /// Voted YES: state `prepared` (2PC) or `waiting` (3PC), every operation's images and
    /// the txn's participants, in one SQLite transaction.
    Prepared {
        txn: TxnId,
        protocol: Protocol,
        coordinator: NodeId,
        entries: Vec<LogEntry>,
        /// Every participant of the txn, this one included (so that recovery knows whom
        /// to ask).
        participants: Vec<NodeId>,
    },
    /// 3PC: a PreCommit arrived (state `precommitted`).
    PreCommitted { txn: TxnId },
    /// The commit decision: state `committed`, and the redo images applied to `kv` in the
    /// same SQLite transaction.
    Committed { txn: TxnId },
    /// Voted NO, or the abort decision: state `aborted` with the reason (the data was never
    /// changed, so there is nothing to undo). A txn aborted because a peer asked about it
    /// before any Prepare arrived has coordinator `NodeId(0)` (no coordinator seen) and
    /// protocol 3PC (the protocol is unknown then; `StateQuery` is the termination
    /// protocol's message).
    Aborted {
        txn: TxnId,
        protocol: Protocol,
        coordinator: NodeId,
        reason: String,
    },
    /// Voted ReadOnly on a txn with other participants: a row in `read_only_vote` (no
    /// `txn` row), so that a peer asking about the txn later is told "not decided here"
    /// rather than "never voted" (which would abort it); and, so that the read hold
    /// survives a restart, the keys read and the hold's length. The store stamps the
    /// hold's deadline (its wall clock when the record is written, plus `hold_ms`): the
    /// core's clock restarts with the process, a wall clock does not.
    ReadOnly {
        txn: TxnId,
        protocol: Protocol,
        coordinator: NodeId,
        /// The keys read, sorted, without duplicates: held shared until every vote is in.
        keys: Vec<String>,
        /// The txn's `timeout_ms`: how long the hold lasts after the vote at most.
        hold_ms: u64,
    },
    /// An operator decided an in-doubt txn by hand (`participant resolve`): state
    /// `heuristic_commit` (the redo images applied, as `Committed` applies them) or
    /// `heuristic_abort` (nothing to undo, as for `Aborted`), with the operator's note in
    /// `reason`. Written by `participant resolve --db` to a stopped participant's file, or
    /// emitted by the core for `resolve --addr` (`resolve.rs`: the locks go once it is
    /// durable). Its locks are gone after a restart, since recovery relocks only in-doubt
    /// txns.
    Heuristic {
        txn: TxnId,
        decision: Decision,
        reason: String,
    },
}

impl Record {
    pub fn txn(&self) -> TxnId {
        match self {
            Record::Prepared { txn, .. }
            | Record::PreCommitted { txn }
            | Record::Committed { txn }
            | Record::Aborted { txn, .. }
            | Record::ReadOnly { txn, .. }
            | Record::Heuristic { txn, .. } => *txn,
        }
    }

    /// The record's name as logs and the `txn.state` column spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Prepared {
                protocol: Protocol::TwoPhase,
                ..
            } => "prepared",
            Record::Prepared {
                protocol: Protocol::ThreePhase,
                ..
            } => "waiting",
            Record::PreCommitted { .. } => "precommitted",
            Record::Committed { .. } => "committed",
            Record::Aborted { .. } => "aborted",
            Record::ReadOnly { .. } => "read_only",
            Record::Heuristic {
                decision: Decision::Commit,
                ..
            } => "heuristic_commit",
            Record::Heuristic {
                decision: Decision::Abort,
                ..
            } => "heuristic_abort",
        }
    }
}

/// A transaction's state as stored in `txn.state`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum StoredState {
    Prepared,
    /// 3PC: voted YES, waiting for PreCommit.
    Waiting,
    /// 3PC: PreCommit received.
    PreCommitted,
    Committed,
    Aborted,
    /// An operator forced the outcome (`Record::Heuristic`; the core never writes it, and
    /// reports it to whoever sends the decision: `Outcome::Heuristic*`).
    HeuristicCommit,
    HeuristicAbort,
    /// Voted ReadOnly (a `read_only_vote` row, not a `txn.state`): not a party to the
    /// outcome, and does not know it.
    ReadOnly,
}

impl StoredState {
    pub fn as_str(self) -> &'static str {
        match self {
            StoredState::Prepared => "prepared",
            StoredState::Waiting => "waiting",
            StoredState::PreCommitted => "precommitted",
            StoredState::Committed => "committed",
            StoredState::Aborted => "aborted",
            StoredState::HeuristicCommit => "heuristic_commit",
            StoredState::HeuristicAbort => "heuristic_abort",
            StoredState::ReadOnly => "read_only",
        }
    }

    pub fn parse(text: &str) -> Option<StoredState> {
        [
            StoredState::Prepared,
            StoredState::Waiting,
            StoredState::PreCommitted,
            StoredState::Committed,
            StoredState::Aborted,
            StoredState::HeuristicCommit,
            StoredState::HeuristicAbort,
            StoredState::ReadOnly,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }

    /// Voted YES and no outcome yet: the transaction holds its locks and is in doubt.
    pub fn is_in_doubt(self) -> bool {
        match self {
            StoredState::Prepared | StoredState::Waiting | StoredState::PreCommitted => true,
            StoredState::Committed
            | StoredState::Aborted
            | StoredState::HeuristicCommit
            | StoredState::HeuristicAbort
            | StoredState::ReadOnly => false,
        }
    }
}

/// A transaction as the store knows it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct StoredTxn {
    pub txn: TxnId,
    pub protocol: Protocol,
    pub coordinator: NodeId,
    pub state: StoredState,
    pub reason: Option<String>,
    /// The logged operations in `seq` order (empty for a NO vote).
    pub entries: Vec<LogEntry>,
    /// Every participant of the txn as its Prepare named them (empty for rows written
    /// before participants were recorded, and for txns never voted YES on).
    pub participants: Vec<NodeId>,
}

/// A ReadOnly vote's hold as the store keeps it, for recovery: the keys it read and its
/// deadline by the store's wall clock (Unix milliseconds).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct StoredReadHold {
    pub txn: TxnId,
    /// Sorted, without duplicates.
    pub keys: Vec<String>,
    /// The hold's length as voted (`Record::ReadOnly::hold_ms`).
    pub hold_ms: u64,
    /// Written with the vote's record: its wall-clock time then plus `hold_ms`.
    pub until_wall_ms: u64,
}
