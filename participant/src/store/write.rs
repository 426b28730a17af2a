//! The write side: the single [`Writer`] and how each record changes the tables (see the
//! module's `# Correctness`).

use std::collections::{BTreeMap, HashMap};

use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteConnection};
use sqlx::{Connection, Row, Sqlite};
use wire::{Decision, NodeId, Protocol, TxnId, Value};

use super::StoreError;
use super::read::{parse_state, value_of};
use crate::core::{LogEntry, Record, StoredState};

/// The database's single write connection. See the module's `# Correctness`.
#[derive(Debug)]
pub struct Writer {
    pub(super) conn: SqliteConnection,
}

impl Writer {
    /// Writes `records` in order as one SQLite transaction; durable once this returns `Ok`.
    /// On `Err` nothing of the batch was written.
    ///
    /// Every statement is a round trip to sqlx's connection thread, so a batch costs two
    /// of them, whatever its size: BEGIN with one read of what the database holds for the
    /// batch's txns (states and redo images), then one script of multi-row statements
    /// ending in COMMIT. The records' effects are worked out in memory in between, in
    /// order, with the same rules and refusals as applying them one by one
    /// (`Batch::apply`); a refused record fails the batch before anything is written.
    ///
    /// Returns what the batch did to `kv`: every key it changed with its value after the
    /// batch (`None`: deleted), so a cache of committed values can stay exact.
    pub async fn write(&mut self, records: &[Record]) -> Result<KvChanges, StoreError> {
        let written = self.write_in_transaction(records).await;
        if written.is_err() {
            // Whatever failed, the SQLite transaction may still be open: end it, so that
            // nothing of the batch is written and the connection is usable. (It may also
            // have ended already, which makes ROLLBACK fail harmlessly.)
            let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
        }
        written
    }

    async fn write_in_transaction(&mut self, records: &[Record]) -> Result<KvChanges, StoreError> {
        // IMMEDIATE takes the write lock up front, so a concurrent writer (an operator's
        // sqlite3) makes us wait for the busy timeout rather than fail mid-batch.
        let stored = stored_txns(&mut self.conn, records).await?;
        let mut batch = Batch::new(stored);
        for record in records {
            batch.apply(record)?;
        }
        let changes = batch
            .kv
            .iter()
            .map(|(key, (value, _))| (key.clone(), value.clone()))
            .collect();
        batch.script().execute(&mut self.conn).await?;
        Ok(changes)
    }

    pub async fn close(self) -> Result<(), StoreError> {
        self.conn.close().await?;
        Ok(())
    }
}

/// Keys a batch changed in `kv`, each with its committed value after the batch (`None`:
/// the key is absent).
pub type KvChanges = Vec<(String, Option<Value>)>;

/// Rows (or keys) in one multi-row statement at most: at 7 binds a row, far below
/// SQLite's limit of 32,766 bind parameters per statement.
const ROWS_PER_STATEMENT_MAX: usize = 256;

const _: () = assert!(ROWS_PER_STATEMENT_MAX * 7 <= 32_766);

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

use super::NOW_MS;

/// A txn's row as the database holds it before the batch, with its redo images in `seq`
/// order (reads excluded: they are never applied).
struct StoredRow {
    state: StoredState,
    redo: Vec<(String, Option<Value>)>,
}

/// Opens the SQLite transaction (`BEGIN IMMEDIATE`) and reads, in the same round trip,
/// every txn the batch names: its state and its redo images.
async fn stored_txns(
    conn: &mut SqliteConnection,
    records: &[Record],
) -> Result<HashMap<TxnId, StoredRow>, StoreError> {
    let mut ids: HashMap<String, TxnId> = HashMap::new();
    for record in records {
        let txn = record.txn();
        ids.entry(txn.to_string()).or_insert(txn);
    }
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    let ordered: Vec<&String> = ids.keys().collect();
    for chunk in ordered.chunks(ROWS_PER_STATEMENT_MAX) {
        sql.push_str(
            "SELECT t.txn_id, t.state, l.key, l.redo_value, typeof(l.redo_value) AS redo_type \
             FROM txn t LEFT JOIN txn_log l ON l.txn_id = t.txn_id AND l.op <> 'get' \
             WHERE t.txn_id IN (",
        );
        push_list(&mut sql, "?", chunk.len());
        sql.push_str(") ORDER BY t.txn_id, l.seq;\n");
    }
    // The SQL text is built only from constants; every value is a bind.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in &ordered {
        query = query.bind((*id).clone());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut stored: HashMap<TxnId, StoredRow> = HashMap::new();
    for row in &rows {
        let txn_id: String = row.try_get("txn_id")?;
        let Some(txn) = ids.get(&txn_id) else {
            return Err(StoreError::Corrupt(format!(
                "txn row {txn_id:?} was not asked for"
            )));
        };
        let state: String = row.try_get("state")?;
        let entry = match stored.entry(*txn) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(StoredRow {
                state: parse_state(&state)?,
                redo: Vec::new(),
            }),
        };
        let key: Option<String> = row.try_get("key")?;
        if let Some(key) = key {
            let redo = value_of(row, "redo_value", "redo_type", &key)?;
            entry.redo.push((key, redo));
        }
    }
    Ok(stored)
}

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
struct Batch<'r> {
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
    fn new(stored: HashMap<TxnId, StoredRow>) -> Batch<'r> {
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
    fn apply(&mut self, record: &'r Record) -> Result<(), StoreError> {
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
    /// log rows, read-only votes, the changed txn rows, then `kv`, then COMMIT.
    fn script(self) -> Query<'static, Sqlite, SqliteArguments> {
        let upserts: Vec<(&String, &Value, &TxnId)> = self
            .kv
            .iter()
            .filter_map(|(key, (value, txn))| value.as_ref().map(|value| (key, value, txn)))
            .collect();
        let deletes: Vec<&String> = self
            .kv
            .iter()
            .filter(|(_, (value, _))| value.is_none())
            .map(|(key, _)| key)
            .collect();
        let mut sql = String::new();
        let mut statement = |head: &str, row: &str, tail: &str, rows: usize| {
            for start in (0..rows).step_by(ROWS_PER_STATEMENT_MAX) {
                sql.push_str(head);
                push_list(&mut sql, row, (rows - start).min(ROWS_PER_STATEMENT_MAX));
                sql.push_str(tail);
                sql.push_str(";\n");
            }
        };
        statement(
            "INSERT INTO txn (txn_id, protocol, coordinator, state, reason, created_at, \
             decided_at, participants) VALUES ",
            &format!("(?, ?, ?, ?, ?, {NOW}, CASE WHEN ? THEN {NOW} END, ?)"),
            "",
            self.inserted.len(),
        );
        statement(
            "INSERT INTO txn_log (txn_id, seq, key, op, undo_value, redo_value) VALUES ",
            "(?, ?, ?, ?, ?, ?)",
            "",
            self.log_rows.len(),
        );
        // Keys before their vote rows, so that a vote already stored keeps its keys.
        statement(
            "INSERT INTO read_only_key (txn_id, key) SELECT column1, column2 FROM (VALUES ",
            "(?, ?)",
            ") WHERE column1 NOT IN (SELECT txn_id FROM read_only_vote) ON CONFLICT DO NOTHING",
            self.read_only_keys.len(),
        );
        statement(
            "INSERT INTO read_only_vote (txn_id, protocol, coordinator, voted_at, \
             hold_until_ms, hold_ms) VALUES ",
            &format!("(?, ?, ?, {NOW}, {NOW_MS} + ?, ?)"),
            " ON CONFLICT (txn_id) DO NOTHING",
            self.read_only.len(),
        );
        statement(
            "WITH change (txn_id, state, reason, decided) AS (VALUES ",
            "(?, ?, ?, ?)",
            &format!(
                ") UPDATE txn SET state = change.state, \
                 reason = coalesce(change.reason, txn.reason), \
                 decided_at = CASE WHEN change.decided THEN {NOW} ELSE txn.decided_at END \
                 FROM change WHERE txn.txn_id = change.txn_id"
            ),
            self.changed.len(),
        );
        statement(
            "INSERT INTO kv (key, value, updated_at, updated_by_txn) VALUES ",
            &format!("(?, ?, {NOW}, ?)"),
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at, updated_by_txn = excluded.updated_by_txn",
            upserts.len(),
        );
        statement("DELETE FROM kv WHERE key IN (", "?", ")", deletes.len());
        sql.push_str("COMMIT;\n");
        // The SQL text is built only from constants; every value is a bind, in the order
        // of the statements above.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in &self.inserted {
            query = query
                .bind(row.txn.to_string())
                .bind(row.protocol.as_str())
                .bind(i64::from(row.coordinator.0))
                .bind(row.state)
                .bind(row.reason.clone())
                .bind(row.decided)
                .bind(row.participants.clone());
        }
        for (txn, entry) in &self.log_rows {
            query = query
                .bind(txn.to_string())
                .bind(i64::from(entry.seq))
                .bind(entry.key.clone())
                .bind(entry.op.as_str());
            query = bind_value(query, &entry.undo);
            query = bind_value(query, &entry.redo);
        }
        for (txn, key) in &self.read_only_keys {
            query = query.bind(txn.to_string()).bind((*key).clone());
        }
        for (txn, protocol, coordinator, hold_ms) in &self.read_only {
            let hold_ms = i64::try_from(*hold_ms).unwrap_or(i64::MAX);
            query = query
                .bind(txn.to_string())
                .bind(protocol.as_str())
                .bind(i64::from(coordinator.0))
                .bind(hold_ms)
                .bind(hold_ms);
        }
        for (txn, change) in &self.changed {
            query = query
                .bind(txn.to_string())
                .bind(change.state)
                .bind(change.reason.clone())
                .bind(change.decided);
        }
        for (key, value, txn) in upserts {
            query = query.bind(key.clone());
            query = bind_value(query, &Some(value.clone()));
            query = query.bind(txn.to_string());
        }
        for key in deletes {
            query = query.bind(key.clone());
        }
        query
    }
}

/// `item, item, ...` (`count` times).
fn push_list(sql: &mut String, item: &str, count: usize) {
    for i in 0..count {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(item);
    }
}

/// `txn.participants`: comma-separated node ids.
fn participants_text(participants: &[NodeId]) -> String {
    let ids: Vec<String> = participants.iter().map(ToString::to_string).collect();
    ids.join(",")
}

fn bind_value<'q>(
    query: Query<'q, Sqlite, SqliteArguments>,
    value: &Option<Value>,
) -> Query<'q, Sqlite, SqliteArguments> {
    match value {
        None => query.bind(None::<i64>),
        Some(Value::Int(int)) => query.bind(*int),
        Some(Value::Text(text)) => query.bind(text.clone()),
    }
}
