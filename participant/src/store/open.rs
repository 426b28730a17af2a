//! The writer's memory of the `txn` rows it left voted but undecided, so a batch reads
//! from SQLite only the txns it cannot know: one round trip per batch instead of two.

use foldhash::{HashMap, HashMapExt};
use wire::{TxnId, Value};

use crate::core::StoredState;

/// Undecided txn rows the writer remembers at most; past it a txn is read back from
/// SQLite when its decision comes (the participant's own bound on txns in flight,
/// `active_txns_max`, keeps it far below this in practice).
pub const OPEN_TXNS_MAX: usize = 65_536;

/// A txn's row as the database holds it before a batch, with its redo images in `seq`
/// order (reads excluded: they are never applied).
#[derive(Clone, Debug)]
pub(super) struct StoredRow {
    pub state: StoredState,
    pub redo: Vec<(String, Option<Value>)>,
}

/// What the single writer knows of the `txn` table without reading it. Exact because
/// nothing else writes the file while the node serves (`admin::DbLock`): every row is
/// either older than the start (at most `ceiling` then) or written by this writer.
#[derive(Debug, Default)]
pub(super) struct OpenTxns {
    /// Rows in a voted, undecided state (prepared, waiting, precommitted), as stored.
    rows: HashMap<TxnId, StoredRow>,
    /// No `txn` row has a larger id: the largest at start and of every record written.
    ceiling: Option<TxnId>,
}

impl OpenTxns {
    /// `ceiling`: the largest txn id the database held when the writer opened.
    pub fn new(ceiling: Option<TxnId>) -> OpenTxns {
        OpenTxns {
            rows: HashMap::new(),
            ceiling,
        }
    }

    /// The row of `txn` if remembered (`Some(None)`: there is none), or `None` when only
    /// SQLite can say.
    pub fn known(&self, txn: TxnId) -> Option<Option<&StoredRow>> {
        if let Some(row) = self.rows.get(&txn) {
            return Some(Some(row));
        }
        (Some(txn) > self.ceiling).then_some(None)
    }

    /// After a batch committed: `rows` are the txns it touched with their rows now
    /// (`None`: decided, or no row).
    pub fn written(&mut self, rows: Vec<(TxnId, Option<StoredRow>)>) {
        for (txn, row) in rows {
            self.ceiling = self.ceiling.max(Some(txn));
            match row {
                Some(row) if self.rows.len() < OPEN_TXNS_MAX || self.rows.contains_key(&txn) => {
                    self.rows.insert(txn, row);
                }
                // Not remembered: it is at most `ceiling`, so it is read when needed.
                Some(_) | None => {
                    self.rows.remove(&txn);
                }
            }
        }
    }
}
