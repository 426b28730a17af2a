//! The write side: the single [`Writer`], which writes each batch of records as one SQLite
//! transaction (what the records do to the tables is `batch.rs`; see the module's
//! `# Correctness`).

use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Row};
use wire::{TxnId, Value};

use super::StoreError;
use super::batch::Batch;
use super::open::{OpenTxns, StoredRow};
use super::read::{parse_state, value_of};
use super::retention::KeptTxns;
use crate::core::Record;

/// The database's single write connection. See the module's `# Correctness`.
#[derive(Debug)]
pub struct Writer {
    pub(super) conn: SqliteConnection,
    pub(super) open: OpenTxns,
    /// `txn` rows, once counted (`kept_txns`), then kept exact by this single writer: more
    /// by each batch's new rows, fewer by each prune step's. (A count(*) per prune step
    /// read every row, twice a second.) Shared with the store, for `status`.
    pub(super) kept_txns: Arc<KeptTxns>,
}

impl Writer {
    /// Writes `records` in order as one SQLite transaction; durable once this returns `Ok`.
    /// On `Err` nothing of the batch was written.
    ///
    /// Every statement is a round trip to sqlx's connection thread, so a batch costs one
    /// or two of them, whatever its size: BEGIN with one read of what the database holds
    /// for the batch's txns that the writer does not remember (`OpenTxns`: states and
    /// redo images; usually none), then one script of statements ending in COMMIT (with
    /// the BEGIN in front when nothing had to be read). The records' effects are worked out in memory in between, in
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
        let mut stored: HashMap<TxnId, StoredRow> = HashMap::new();
        let mut unknown: Vec<TxnId> = Vec::new();
        for record in records {
            let txn = record.txn();
            match self.open.known(txn) {
                Some(Some(row)) => {
                    stored.entry(txn).or_insert_with(|| row.clone());
                }
                Some(None) => {}
                None => unknown.push(txn),
            }
        }
        // IMMEDIATE takes the write lock up front, so a concurrent writer (an operator's
        // sqlite3) makes us wait for the busy timeout rather than fail mid-batch.
        let begun = !unknown.is_empty();
        if begun {
            stored.extend(stored_txns(&mut self.conn, &unknown).await?);
        }
        let mut batch = Batch::new(stored);
        for record in records {
            batch.apply(record)?;
        }
        let changes = batch.kv_changes();
        let rows = batch.rows_after(records);
        let inserted = batch.new_rows();
        batch.script(begun).execute(&mut self.conn).await?;
        self.open.written(rows);
        self.kept_txns.change(inserted, 0);
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

/// Opens the SQLite transaction (`BEGIN IMMEDIATE`) and reads, in the same round trip,
/// the rows of `txns`: each one's state and redo images.
async fn stored_txns(
    conn: &mut SqliteConnection,
    txns: &[TxnId],
) -> Result<HashMap<TxnId, StoredRow>, StoreError> {
    let ids: HashMap<String, TxnId> = txns.iter().map(|txn| (txn.to_string(), *txn)).collect();
    let ordered: Vec<&String> = ids.keys().collect();
    let query = sqlx::query(
        "BEGIN IMMEDIATE; \
         SELECT t.txn_id, t.state, l.key, l.redo_value, typeof(l.redo_value) AS redo_type \
         FROM txn t LEFT JOIN txn_log l ON l.txn_id = t.txn_id AND l.op <> 'get' \
         WHERE t.txn_id IN (SELECT value FROM json_each(?)) ORDER BY t.txn_id, l.seq",
    )
    .bind(json(&ordered));
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

/// A JSON array of `rows`: the one bind of an IN list over `json_each`.
fn json(rows: &impl serde::Serialize) -> String {
    serde_json::to_string(rows).expect("rows of strings serialize")
}
