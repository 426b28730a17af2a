//! What a batch of records does to the tables, worked out in memory record by record with
//! the same rules and refusals as applying them one by one, and the rows of the one SQL
//! script that writes it (`script.rs`; see the store module's `# Correctness`).

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt};
use sqlx::Sqlite;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use wire::{Decision, NodeId, Protocol, TxnId, Value};

use super::StoreError;
use super::open::StoredRow;
use super::script::{Bind, Script, Statement};
use super::write::KvChanges;
use crate::core::{LogEntry, Record, StoredState};

/// A `txn` row the batch inserts, with its final values.
struct NewTxn {
    txn: TxnId,
    protocol: Protocol,
    coordinator: NodeId,
    state: &'static str,
    reason: Option<String>,
    decided: bool,
    participants: Option<String>,
    /// Redo images of its writes, in `seq` order (a Prepared record's entries).
    redo: Vec<(String, Option<Value>)>,
}

/// How the batch changes a `txn` row that existed before it.
struct Change {
    state: &'static str,
    /// Set by an abort.
    reason: Option<String>,
    /// `decided_at` is set (a commit or an abort).
    decided: bool,
}

/// The batch's effects, worked out record by record before anything is written.
pub(super) struct Batch<'r> {
    stored: HashMap<TxnId, StoredRow>,
    /// Each txn's state as the records so far leave it.
    states: HashMap<TxnId, Option<StoredState>>,
    inserted: Vec<NewTxn>,
    inserted_at: HashMap<TxnId, usize>,
    changed: Vec<(TxnId, Change)>,
    changed_at: HashMap<TxnId, usize>,
    log_rows: Vec<(TxnId, &'r LogEntry)>,
    /// ReadOnly votes: txn, protocol, coordinator, the hold's length (ms).
    read_only: Vec<(TxnId, Protocol, NodeId, u64)>,
    /// The keys each ReadOnly vote of the batch read (`read_only_key` rows).
    read_only_keys: Vec<(TxnId, &'r String)>,
    /// Each key's value after the batch's commits, and the txn that wrote it last.
    kv: BTreeMap<String, (Option<Value>, TxnId)>,
}

impl<'r> Batch<'r> {
    pub(super) fn new(stored: HashMap<TxnId, StoredRow>) -> Batch<'r> {
        Batch {
            stored,
            states: HashMap::new(),
            inserted: Vec::new(),
            inserted_at: HashMap::new(),
            changed: Vec::new(),
            changed_at: HashMap::new(),
            log_rows: Vec::new(),
            read_only: Vec::new(),
            read_only_keys: Vec::new(),
            kv: BTreeMap::new(),
        }
    }

    /// Every key the batch changes in `kv`, with its value after the batch.
    pub(super) fn kv_changes(&self) -> KvChanges {
        self.kv
            .iter()
            .map(|(key, (value, _))| (key.clone(), value.clone()))
            .collect()
    }

    /// The `txn` rows the batch inserts.
    pub(super) fn new_rows(&self) -> u64 {
        self.inserted.len() as u64
    }

    fn state(&self, txn: TxnId) -> Option<StoredState> {
        match self.states.get(&txn) {
            Some(state) => *state,
            None => self.stored.get(&txn).map(|row| row.state),
        }
    }

    /// The txn's row moves to `state` (it exists: stored before, or inserted earlier in
    /// the batch).
    fn set_state(&mut self, txn: TxnId, state: StoredState, reason: Option<&str>, decided: bool) {
        self.states.insert(txn, Some(state));
        if let Some(&at) = self.inserted_at.get(&txn) {
            let row = &mut self.inserted[at];
            row.state = state.as_str();
            if let Some(reason) = reason {
                row.reason = Some(reason.to_string());
            }
            row.decided |= decided;
            return;
        }
        let at = *self.changed_at.entry(txn).or_insert_with(|| {
            self.changed.push((
                txn,
                Change {
                    state: state.as_str(),
                    reason: None,
                    decided: false,
                },
            ));
            self.changed.len() - 1
        });
        let change = &mut self.changed[at].1;
        change.state = state.as_str();
        if let Some(reason) = reason {
            change.reason = Some(reason.to_string());
        }
        change.decided |= decided;
    }

    fn insert(&mut self, row: NewTxn, state: StoredState) {
        self.states.insert(row.txn, Some(state));
        self.inserted_at.insert(row.txn, self.inserted.len());
        self.inserted.push(row);
    }

    /// The committed txn's redo images become `kv`'s values, in `seq` order.
    fn apply_redo(&mut self, txn: TxnId) {
        let redo = match self.inserted_at.get(&txn) {
            Some(&at) => &self.inserted[at].redo,
            None => match self.stored.get(&txn) {
                Some(row) => &row.redo,
                None => return,
            },
        };
        for (key, value) in redo {
            self.kv.insert(key.clone(), (value.clone(), txn));
        }
    }

    /// One record's effect, or the refusal `write_record` would have given.
    pub(super) fn apply(&mut self, record: &'r Record) -> Result<(), StoreError> {
        let txn = record.txn();
        let state = self.state(txn);
        let conflict = |state: StoredState| StoreError::StateConflict {
            txn,
            record: record.kind(),
            state: state.as_str(),
        };
        match record {
            Record::Prepared {
                protocol,
                coordinator,
                entries,
                participants,
                ..
            } => {
                if let Some(state) = state {
                    return Err(conflict(state));
                }
                let mut writes: Vec<&LogEntry> =
                    entries.iter().filter(|entry| entry.op.writes()).collect();
                writes.sort_by_key(|entry| entry.seq);
                let redo = writes
                    .iter()
                    .map(|entry| (entry.key.clone(), entry.redo.clone()))
                    .collect();
                // `kind` is the voted state: 'prepared' (2PC) or 'waiting' (3PC).
                let voted = match protocol {
                    Protocol::TwoPhase => StoredState::Prepared,
                    Protocol::ThreePhase => StoredState::Waiting,
                };
                self.insert(
                    NewTxn {
                        txn,
                        protocol: *protocol,
                        coordinator: *coordinator,
                        state: record.kind(),
                        reason: None,
                        decided: false,
                        participants: Some(participants_text(participants)),
                        redo,
                    },
                    voted,
                );
                self.log_rows
                    .extend(entries.iter().map(|entry| (txn, entry)));
            }
            Record::PreCommitted { .. } => match state {
                Some(StoredState::PreCommitted) => {}
                Some(StoredState::Waiting) => {
                    self.set_state(txn, StoredState::PreCommitted, None, false);
                }
                Some(
                    state @ (StoredState::Prepared
                    | StoredState::Committed
                    | StoredState::Aborted
                    | StoredState::HeuristicCommit
                    | StoredState::HeuristicAbort
                    | StoredState::ReadOnly),
                ) => return Err(conflict(state)),
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "precommit of txn {txn}, which was never voted on"
                    )));
                }
            },
            Record::ReadOnly {
                protocol,
                coordinator,
                keys,
                hold_ms,
                ..
            } => {
                if let Some(state) = state {
                    return Err(conflict(state));
                }
                // A repeated Prepare repeats the vote: the first row stays, keys and all
                // (a vote row stored before the batch keeps its keys: see `script`).
                if !self.read_only.iter().any(|(voted, ..)| *voted == txn) {
                    self.read_only_keys
                        .extend(keys.iter().map(|key| (txn, key)));
                }
                self.read_only
                    .push((txn, *protocol, *coordinator, *hold_ms));
            }
            Record::Committed { .. } => match state {
                Some(StoredState::Committed) => {}
                Some(StoredState::Prepared | StoredState::Waiting | StoredState::PreCommitted) => {
                    self.set_state(txn, StoredState::Committed, None, true);
                    self.apply_redo(txn);
                }
                Some(
                    state @ (StoredState::Aborted
                    | StoredState::HeuristicCommit
                    | StoredState::HeuristicAbort
                    | StoredState::ReadOnly),
                ) => return Err(conflict(state)),
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "commit of txn {txn}, which was never prepared"
                    )));
                }
            },
            Record::Aborted {
                protocol,
                coordinator,
                reason,
                ..
            } => match state {
                None => self.insert(
                    NewTxn {
                        txn,
                        protocol: *protocol,
                        coordinator: *coordinator,
                        state: "aborted",
                        reason: Some(reason.clone()),
                        decided: true,
                        participants: None,
                        redo: Vec::new(),
                    },
                    StoredState::Aborted,
                ),
                Some(StoredState::Aborted) => {}
                Some(StoredState::Prepared | StoredState::Waiting | StoredState::PreCommitted) => {
                    self.set_state(txn, StoredState::Aborted, Some(reason), true);
                }
                Some(
                    state @ (StoredState::Committed
                    | StoredState::HeuristicCommit
                    | StoredState::HeuristicAbort
                    | StoredState::ReadOnly),
                ) => return Err(conflict(state)),
            },
            Record::Heuristic {
                decision, reason, ..
            } => self.heuristic(txn, *decision, reason, state, conflict)?,
        }
        Ok(())
    }

    /// Every txn of `records` with its `txn` row after the batch if it is voted and
    /// undecided (what `OpenTxns` remembers), else `None`.
    pub(super) fn rows_after(&self, records: &[Record]) -> Vec<(TxnId, Option<StoredRow>)> {
        let mut rows: Vec<(TxnId, Option<StoredRow>)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for record in records {
            let txn = record.txn();
            if !seen.insert(txn) {
                continue;
            }
            let row = match self.state(txn) {
                Some(
                    state @ (StoredState::Prepared
                    | StoredState::Waiting
                    | StoredState::PreCommitted),
                ) => {
                    let redo = match self.inserted_at.get(&txn) {
                        Some(&at) => self.inserted[at].redo.clone(),
                        None => self
                            .stored
                            .get(&txn)
                            .map(|row| row.redo.clone())
                            .unwrap_or_default(),
                    };
                    Some(StoredRow { state, redo })
                }
                _ => None,
            };
            rows.push((txn, row));
        }
        rows
    }

    /// An operator's decision on an in-doubt txn: the same images as `Committed` applies
    /// (a commit) or none (an abort: deferred updates left `kv` as it was).
    fn heuristic(
        &mut self,
        txn: TxnId,
        decision: Decision,
        reason: &str,
        state: Option<StoredState>,
        conflict: impl Fn(StoredState) -> StoreError,
    ) -> Result<(), StoreError> {
        let heuristic = match decision {
            Decision::Commit => StoredState::HeuristicCommit,
            Decision::Abort => StoredState::HeuristicAbort,
        };
        match state {
            Some(state) if state == heuristic => {}
            Some(StoredState::Prepared | StoredState::Waiting | StoredState::PreCommitted) => {
                self.set_state(txn, heuristic, Some(reason), true);
                if decision == Decision::Commit {
                    self.apply_redo(txn);
                }
            }
            Some(
                state @ (StoredState::Committed
                | StoredState::Aborted
                | StoredState::HeuristicCommit
                | StoredState::HeuristicAbort
                | StoredState::ReadOnly),
            ) => return Err(conflict(state)),
            None => {
                return Err(StoreError::Corrupt(format!(
                    "heuristic decision on txn {txn}, which was never voted on"
                )));
            }
        }
        Ok(())
    }

    /// The batch as one SQL script: inserted txn rows (with their final state), their
    /// log rows, read-only votes, the changed txn rows, then `kv`, then COMMIT; a statement
    /// with no rows is left out (see `script.rs` for how the texts repeat).
    /// `begun`: the SQLite transaction is open already (else the script begins it).
    pub(super) fn script(self, begun: bool) -> Query<'static, Sqlite, SqliteArguments> {
        let mut script = Script::new(begun);
        let inserted = self.inserted.iter().flat_map(|row| {
            [
                Bind::txn(row.txn),
                Bind::Static(row.protocol.as_str()),
                Bind::Int(row.coordinator.0.into()),
                Bind::Static(row.state),
                Bind::text(row.reason.as_ref()),
                Bind::Int(row.decided.into()),
                Bind::text(row.participants.as_ref()),
            ]
        });
        script.statement(&INSERT_TXNS, self.inserted.len(), inserted);
        let log_rows = self.log_rows.iter().flat_map(|(txn, entry)| {
            [
                Bind::txn(*txn),
                Bind::Int(entry.seq.into()),
                Bind::Text(entry.key.as_str().into()),
                Bind::Static(entry.op.as_str()),
                value(entry.undo.as_ref()),
                value(entry.redo.as_ref()),
            ]
        });
        script.statement(&INSERT_LOG_ROWS, self.log_rows.len(), log_rows);
        let read_only_keys = self
            .read_only_keys
            .iter()
            .flat_map(|(txn, key)| [Bind::txn(*txn), Bind::Text(key.as_str().into())]);
        let count = self.read_only_keys.len();
        script.statement(&INSERT_READ_ONLY_KEYS, count, read_only_keys);
        let read_only = self
            .read_only
            .iter()
            .flat_map(|(txn, protocol, coordinator, hold_ms)| {
                [
                    Bind::txn(*txn),
                    Bind::Static(protocol.as_str()),
                    Bind::Int(coordinator.0.into()),
                    Bind::Int(i64::try_from(*hold_ms).unwrap_or(i64::MAX)),
                ]
            });
        script.statement(&INSERT_READ_ONLY_VOTES, self.read_only.len(), read_only);
        let changed = self.changed.iter().flat_map(|(txn, change)| {
            [
                Bind::txn(*txn),
                Bind::Static(change.state),
                Bind::text(change.reason.as_ref()),
                Bind::Int(change.decided.into()),
            ]
        });
        script.statement(&UPDATE_TXNS, self.changed.len(), changed);
        let upserts = self.kv.iter().filter_map(|(key, (value, txn))| {
            let value = value.as_ref()?;
            Some([
                Bind::Text(key.as_str().into()),
                self::value(Some(value)),
                Bind::txn(*txn),
            ])
        });
        let count = self
            .kv
            .values()
            .filter(|(value, _)| value.is_some())
            .count();
        script.statement(&UPSERT_KV, count, upserts.flatten());
        let deletes = self.kv.iter().filter(|(_, (value, _))| value.is_none());
        let count = self.kv.len() - count;
        let deletes = deletes.map(|(key, _)| Bind::Text(key.as_str().into()));
        script.statement(&DELETE_KV, count, deletes);
        script.query()
    }
}

/// A value as the tables keep it: INTEGER for a number, TEXT for a string.
fn value(value: Option<&Value>) -> Bind {
    match value {
        None => Bind::Null,
        Some(Value::Int(int)) => Bind::Int(*int),
        Some(Value::Text(text)) => Bind::Text(text.as_str().into()),
    }
}

// The statements of a batch's script, in its order (see `Batch::script`). Constant texts
// only: every value is a bind. Column n of a row is `columnN`.
const INSERT_TXNS: Statement = Statement {
    head: concat!(
        "INSERT INTO txn (txn_id, protocol, coordinator, state, reason, created_at, decided_at, \
         participants) SELECT column1, column2, column3, column4, column5, ",
        now!(),
        ", CASE WHEN column6 THEN ",
        now!(),
        " END, column7 FROM (VALUES "
    ),
    columns: 7,
    tail: ") WHERE column1 IS NOT NULL;\n",
};
const INSERT_LOG_ROWS: Statement = Statement {
    head: "INSERT INTO txn_log (txn_id, seq, key, op, undo_value, redo_value) \
           SELECT column1, column2, column3, column4, column5, column6 FROM (VALUES ",
    columns: 6,
    tail: ") WHERE column1 IS NOT NULL;\n",
};
// Keys before their vote rows, so that a vote already stored keeps its keys.
const INSERT_READ_ONLY_KEYS: Statement = Statement {
    head: "INSERT INTO read_only_key (txn_id, key) SELECT column1, column2 FROM (VALUES ",
    columns: 2,
    tail: ") WHERE column1 IS NOT NULL AND column1 NOT IN (SELECT txn_id FROM read_only_vote) \
           ON CONFLICT DO NOTHING;\n",
};
// (A WHERE before ON CONFLICT: SQLite's rule for an upsert over a SELECT.)
const INSERT_READ_ONLY_VOTES: Statement = Statement {
    head: concat!(
        "INSERT INTO read_only_vote (txn_id, protocol, coordinator, voted_at, hold_until_ms, \
         hold_ms) SELECT column1, column2, column3, ",
        now!(),
        ", ",
        now_ms!(),
        " + column4, column4 FROM (VALUES "
    ),
    columns: 4,
    tail: ") WHERE column1 IS NOT NULL ON CONFLICT (txn_id) DO NOTHING;\n",
};
const UPDATE_TXNS: Statement = Statement {
    head: concat!(
        "UPDATE txn SET state = change.column2, reason = coalesce(change.column3, txn.reason), \
         decided_at = CASE WHEN change.column4 THEN ",
        now!(),
        " ELSE txn.decided_at END FROM (VALUES "
    ),
    columns: 4,
    // A NULL row matches no txn.
    tail: ") AS change WHERE txn.txn_id = change.column1;\n",
};
const UPSERT_KV: Statement = Statement {
    head: concat!(
        "INSERT INTO kv (key, value, updated_at, updated_by_txn) SELECT column1, column2, ",
        now!(),
        ", column3 FROM (VALUES "
    ),
    columns: 3,
    tail: ") WHERE column1 IS NOT NULL ON CONFLICT (key) DO UPDATE SET \
           value = excluded.value, updated_at = excluded.updated_at, \
           updated_by_txn = excluded.updated_by_txn;\n",
};
const DELETE_KV: Statement = Statement {
    head: "DELETE FROM kv WHERE key IN (VALUES ",
    columns: 1,
    // A NULL in the list matches no key.
    tail: ");\n",
};

/// `txn.participants`: comma-separated node ids.
fn participants_text(participants: &[NodeId]) -> String {
    let ids: Vec<String> = participants.iter().map(ToString::to_string).collect();
    ids.join(",")
}
