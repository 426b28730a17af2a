//! The participant's log records and stored transaction states: what the core asks the
//! store to make durable, and what the store hands back on lookups and recovery.

use std::fmt;

use wire::{NodeId, Protocol, TxnId, Value};

/// A log sequence number: the core numbers every `Persist` strictly increasingly, and the
/// store reports them durable in the same order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

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
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LogEntry {
    /// The operation's index in the `Prepare`'s op list.
    pub seq: u32,
    pub key: String,
    pub op: OpKind,
    pub undo: Option<Value>,
    pub redo: Option<Value>,
}

/// What the core asks the store to make durable.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Record {
    /// Voted YES: state `prepared` and every operation's images, in one SQLite transaction.
    Prepared {
        txn: TxnId,
        protocol: Protocol,
        coordinator: NodeId,
        entries: Vec<LogEntry>,
    },
    /// The commit decision: state `committed`, and the redo images applied to `kv` in the
    /// same SQLite transaction.
    Committed { txn: TxnId },
    /// Voted NO, or the abort decision: state `aborted` with the reason (the data was never
    /// changed, so there is nothing to undo).
    Aborted {
        txn: TxnId,
        protocol: Protocol,
        coordinator: NodeId,
        reason: String,
    },
}

impl Record {
    pub fn txn(&self) -> TxnId {
        match self {
            Record::Prepared { txn, .. }
            | Record::Committed { txn }
            | Record::Aborted { txn, .. } => *txn,
        }
    }

    /// The record's name as logs and the `txn.state` column spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Prepared { .. } => "prepared",
            Record::Committed { .. } => "committed",
            Record::Aborted { .. } => "aborted",
        }
    }
}

/// A transaction's state as stored in `txn.state`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum StoredState {
    Prepared,
    /// 3PC (not implemented yet): voted YES, waiting for PreCommit.
    Waiting,
    /// 3PC (not implemented yet): PreCommit received.
    PreCommitted,
    Committed,
    Aborted,
    /// An operator forced the outcome (marks only; the core never writes them).
    HeuristicCommit,
    HeuristicAbort,
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
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }

    /// Voted YES and no outcome yet: the transaction holds its locks and is in doubt.
    pub fn is_in_doubt(self) -> bool {
        matches!(
            self,
            StoredState::Prepared | StoredState::Waiting | StoredState::PreCommitted
        )
    }
}

/// A transaction as the store knows it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StoredTxn {
    pub txn: TxnId,
    pub protocol: Protocol,
    pub coordinator: NodeId,
    pub state: StoredState,
    pub reason: Option<String>,
    /// The logged operations in `seq` order (empty for a NO vote).
    pub entries: Vec<LogEntry>,
}
