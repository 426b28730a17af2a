//! What a participant tells an operator about its transactions: one txn's rows
//! ([`TxnLookup`]) and the in-doubt list ([`InDoubtEntry`]), as its database holds them.
//! The same types come from a file read by `participant txn/in-doubt --db` and from a
//! running node (`--addr`, `ClientResponse::Txn` / `ClientResponse::InDoubt`), so one
//! printing function serves both. Times are the stored UTC text, states the stored words.

use serde::{Deserialize, Serialize};

use crate::msg::Value;

/// One `txn` row as the operator sees it.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub struct TxnRow {
    pub txn_id: String,
    pub protocol: String,
    pub coordinator: i64,
    pub state: String,
    pub reason: Option<String>,
    pub created_at: String,
    pub decided_at: Option<String>,
    /// Comma-separated node ids, as the Prepare named them.
    pub participants: Option<String>,
    pub log: Vec<LogRow>,
    /// Log rows left out of `log` to keep a node's reply within its bound (0 from a file).
    pub log_omitted: u64,
}

/// One `txn_log` row: an operation with its before and after images.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub struct LogRow {
    pub seq: i64,
    pub key: String,
    pub op: String,
    pub undo: Option<Value>,
    pub redo: Option<Value>,
}

/// A `read_only_vote` row.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub struct ReadOnlyRow {
    pub protocol: String,
    pub coordinator: i64,
    pub voted_at: String,
}

/// What a participant's database knows of one transaction.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub enum TxnLookup {
    Voted(TxnRow),
    ReadOnly(ReadOnlyRow),
    Unknown,
}

/// A row of the `in_doubt` view, with everything an operator needs to decide by hand.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash, Debug)]
pub struct InDoubtEntry {
    pub txn_id: String,
    pub protocol: String,
    pub coordinator: i64,
    pub state: String,
    pub created_at: String,
    pub age_s: i64,
    /// Comma-separated, or `None` for a txn with no logged ops.
    pub keys: Option<String>,
    pub participants: Option<String>,
}

impl InDoubtEntry {
    /// Roughly the bytes the entry takes on the wire (its text), for reply bounds.
    pub fn text_len(&self) -> usize {
        self.txn_id.len()
            + self.protocol.len()
            + self.state.len()
            + self.created_at.len()
            + self.keys.as_ref().map_or(0, String::len)
            + self.participants.as_ref().map_or(0, String::len)
            + 32
    }
}

impl LogRow {
    /// Roughly the bytes the row takes on the wire, for reply bounds.
    pub fn text_len(&self) -> usize {
        let value = |value: &Option<Value>| match value {
            Some(Value::Text(text)) => text.len(),
            Some(Value::Int(_)) | None => 9,
        };
        self.key.len() + self.op.len() + value(&self.undo) + value(&self.redo) + 16
    }
}
