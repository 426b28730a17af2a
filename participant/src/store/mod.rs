//! The participant's SQLite database (the only module that uses sqlx): the data (`kv`),
//! the transaction states (`txn`) and the undo/redo log (`txn_log`); schema in
//! `migrations/participant/`.
//!
//! # Correctness
//!
//! - **Durable when `Writer::write` returns `Ok`.** The batch is one SQLite transaction in
//!   WAL mode with `synchronous=FULL`: COMMIT returns after the WAL is synced, so a crash
//!   (of the process or the machine) afterwards keeps every record of the batch, and a crash
//!   before keeps none of them. A failed write leaves the database as it was before the
//!   batch; the caller must treat it as fatal (stop, recover on restart), never retry
//!   around it, because later records may depend on it.
//! - **Totally ordered.** There is one `Writer` (one write connection) per database, and it
//!   applies records in the order given, batches in the order written. Durability is
//!   therefore prefix-closed: if a record is durable, so is every record written before it.
//! - **3PC states.** `Prepared` writes `prepared` (2PC) or `waiting` (3PC); `PreCommitted`
//!   moves `waiting` to `precommitted` (repeated: a no-op); `Committed` and `Aborted` are
//!   accepted from any in-doubt state. A `ReadOnly` vote is a `read_only_vote` row, never a
//!   `txn` row; [`Store::txn`] reports it as `StoredState::ReadOnly`.
//! - **Deferred updates.** `kv` changes only when a `Committed` record is written: its redo
//!   images (from the `txn_log` rows written with `Prepared`) are applied in `seq` order in
//!   the same SQLite transaction that marks the txn committed. `Aborted` changes no data.
//!   So `kv` holds exactly the committed transactions' writes, in commit order.
//! - **States only move forward.** A record that would move a txn backwards (prepare twice,
//!   commit an aborted txn, abort a committed one) fails with `StateConflict` and writes
//!   nothing; a repeated `Committed` or `Aborted` is a no-op (redo images are never applied
//!   twice).
//! - **Recovery returns every unfinished txn**: `in_doubt_txns` returns every txn in state
//!   `prepared`, `waiting` or `precommitted`, with all its log entries.
//! - **Reads see only committed SQLite transactions** (WAL readers), i.e. durable records.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row, Sqlite, Transaction};
use uuid::Uuid;
use wire::{NodeId, Protocol, TxnId, Value};

use crate::core::{LogEntry, OpKind, Record, StoredState, StoredTxn};

/// How long a statement waits for a lock held by another connection (e.g. someone's
/// `sqlite3` shell) before failing.
pub const BUSY_TIMEOUT_MS: u64 = 5_000;
/// Read connections (the event loop reads one request at a time; one spare for status).
pub const READ_CONNECTIONS_MAX: u32 = 2;

#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("cannot open participant database {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("{} is not a participant database: {detail}", path.display())]
    ForeignSchema { path: PathBuf, detail: String },
    #[error("cannot migrate participant database {}: {source}", path.display())]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("the database holds unexpected data: {0}")]
    Corrupt(String),
    #[error("cannot record {record} for txn {txn}: it is already {state}")]
    StateConflict {
        txn: TxnId,
        record: &'static str,
        state: &'static str,
    },
}

/// A row of the `in_doubt` view.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InDoubtRow {
    pub txn_id: String,
    pub state: String,
    pub age_s: i64,
    /// Comma-separated.
    pub keys: Option<String>,
}

/// The read side of the database, and the factory of its single [`Writer`].
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    options: SqliteConnectOptions,
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating the file, not its directory) and migrates the database at `path`.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS));
        let pool = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS_MAX)
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;
        let store = Store {
            path: path.to_path_buf(),
            options,
            pool,
        };
        store.check_not_foreign().await?;
        sqlx::migrate!("../migrations/participant")
            .run(&store.pool)
            .await
            .map_err(|source| match source {
                sqlx::migrate::MigrateError::VersionMissing(version)
                | sqlx::migrate::MigrateError::VersionMismatch(version) => {
                    StoreError::ForeignSchema {
                        path: path.to_path_buf(),
                        detail: format!(
                            "its migration {version} is not one of the participant's migrations"
                        ),
                    }
                }
                source => StoreError::Migrate {
                    path: path.to_path_buf(),
                    source,
                },
            })?;
        Ok(store)
    }

    /// A database with tables but no migration history is someone else's: refuse to add
    /// our tables to it.
    async fn check_not_foreign(&self) -> Result<(), StoreError> {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_schema \
             WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|source| StoreError::Open {
            path: self.path.clone(),
            source,
        })?;
        if !tables.is_empty() && !tables.iter().any(|name| name == "_sqlx_migrations") {
            return Err(StoreError::ForeignSchema {
                path: self.path.clone(),
                detail: format!(
                    "it holds tables ({}) but no migration history",
                    tables.join(", ")
                ),
            });
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the write connection. Call once: the single writer is what orders records.
    pub async fn writer(&self) -> Result<Writer, StoreError> {
        let conn = self
            .options
            .connect()
            .await
            .map_err(|source| StoreError::Open {
                path: self.path.clone(),
                source,
            })?;
        Ok(Writer { conn })
    }

    /// The committed value of each key (`None`: absent).
    pub async fn values<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Result<BTreeMap<String, Option<Value>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut values = BTreeMap::new();
        for key in keys {
            if values.contains_key(key) {
                continue;
            }
            let row =
                sqlx::query("SELECT value, typeof(value) AS value_type FROM kv WHERE key = ?")
                    .bind(key)
                    .fetch_optional(&mut *conn)
                    .await?;
            let value = match row {
                Some(row) => value_of(&row, "value", "value_type", key)?,
                None => None,
            };
            values.insert(key.to_string(), value);
        }
        Ok(values)
    }

    /// What the store knows of `txn`: its state, reason and log entries.
    pub async fn txn(&self, txn: TxnId) -> Result<Option<StoredTxn>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query(
            "SELECT txn_id, protocol, coordinator, state, reason, participants FROM txn \
             WHERE txn_id = ?",
        )
        .bind(txn.to_string())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = row {
            return Ok(Some(stored_txn(&mut conn, &row).await?));
        }
        let row = sqlx::query("SELECT protocol, coordinator FROM read_only_vote WHERE txn_id = ?")
            .bind(txn.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(StoredTxn {
            txn,
            protocol: parse_protocol(txn, &row.try_get::<String, _>("protocol")?)?,
            coordinator: parse_coordinator(txn, row.try_get("coordinator")?)?,
            state: StoredState::ReadOnly,
            reason: None,
            entries: Vec::new(),
            participants: Vec::new(),
        }))
    }

    /// Recovery: every txn voted YES with no outcome yet, oldest first, with its entries.
    pub async fn in_doubt_txns(&self) -> Result<Vec<StoredTxn>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(
            "SELECT txn_id, protocol, coordinator, state, reason, participants FROM txn \
             WHERE state IN ('prepared', 'waiting', 'precommitted') \
             ORDER BY created_at, txn_id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut txns = Vec::with_capacity(rows.len());
        for row in &rows {
            txns.push(stored_txn(&mut conn, row).await?);
        }
        Ok(txns)
    }

    /// The `txn_counts` view: (state, number of txns).
    pub async fn txn_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, n FROM txn_counts")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("state")?, row.try_get("n")?)))
            .collect()
    }

    /// The `in_doubt` view.
    pub async fn in_doubt_rows(&self) -> Result<Vec<InDoubtRow>, StoreError> {
        let rows = sqlx::query("SELECT txn_id, state, age_s, keys FROM in_doubt")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(InDoubtRow {
                    txn_id: row.try_get("txn_id")?,
                    state: row.try_get("state")?,
                    age_s: row.try_get("age_s")?,
                    keys: row.try_get("keys")?,
                })
            })
            .collect()
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}

/// The database's single write connection. See the module's `# Correctness`.
#[derive(Debug)]
pub struct Writer {
    conn: SqliteConnection,
}

impl Writer {
    /// Writes `records` in order as one SQLite transaction; durable once this returns `Ok`.
    /// On `Err` nothing of the batch was written.
    pub async fn write(&mut self, records: &[Record]) -> Result<(), StoreError> {
        // IMMEDIATE takes the write lock up front, so a concurrent writer (an operator's
        // sqlite3) makes us wait for the busy timeout rather than fail mid-batch.
        let mut sql_txn = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        for record in records {
            write_record(&mut sql_txn, record).await?;
        }
        sql_txn.commit().await?;
        Ok(())
    }

    pub async fn close(self) -> Result<(), StoreError> {
        self.conn.close().await?;
        Ok(())
    }
}

async fn write_record(
    sql_txn: &mut Transaction<'_, Sqlite>,
    record: &Record,
) -> Result<(), StoreError> {
    let txn = record.txn();
    let state = state_of(sql_txn, txn).await?;
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
            // `kind` is the voted state: 'prepared' (2PC) or 'waiting' (3PC).
            sqlx::query(
                "INSERT INTO txn (txn_id, protocol, coordinator, state, created_at, participants) \
                 VALUES (?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?)",
            )
            .bind(txn.to_string())
            .bind(protocol.as_str())
            .bind(i64::from(coordinator.0))
            .bind(record.kind())
            .bind(participants_text(participants))
            .execute(&mut **sql_txn)
            .await?;
            for entry in entries {
                let query = sqlx::query(
                    "INSERT INTO txn_log (txn_id, seq, key, op, undo_value, redo_value) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(txn.to_string())
                .bind(i64::from(entry.seq))
                .bind(entry.key.as_str())
                .bind(entry.op.as_str());
                let query = bind_value(query, &entry.undo);
                let query = bind_value(query, &entry.redo);
                query.execute(&mut **sql_txn).await?;
            }
        }
        Record::PreCommitted { .. } => match state {
            Some(StoredState::PreCommitted) => {}
            Some(StoredState::Waiting) => {
                sqlx::query("UPDATE txn SET state = 'precommitted' WHERE txn_id = ?")
                    .bind(txn.to_string())
                    .execute(&mut **sql_txn)
                    .await?;
            }
            Some(state) => return Err(conflict(state)),
            None => {
                return Err(StoreError::Corrupt(format!(
                    "precommit of txn {txn}, which was never voted on"
                )));
            }
        },
        Record::ReadOnly {
            protocol,
            coordinator,
            ..
        } => {
            if let Some(state) = state {
                return Err(conflict(state));
            }
            // A repeated Prepare repeats the vote: the first row stays.
            sqlx::query(
                "INSERT INTO read_only_vote (txn_id, protocol, coordinator, voted_at) \
                 VALUES (?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
                 ON CONFLICT (txn_id) DO NOTHING",
            )
            .bind(txn.to_string())
            .bind(protocol.as_str())
            .bind(i64::from(coordinator.0))
            .execute(&mut **sql_txn)
            .await?;
        }
        Record::Committed { .. } => match state {
            Some(StoredState::Committed) => {}
            Some(state) if state.is_in_doubt() => {
                sqlx::query(
                    "UPDATE txn SET state = 'committed', \
                     decided_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE txn_id = ?",
                )
                .bind(txn.to_string())
                .execute(&mut **sql_txn)
                .await?;
                apply_redo(sql_txn, txn).await?;
            }
            Some(state) => return Err(conflict(state)),
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
            None => {
                sqlx::query(
                    "INSERT INTO txn \
                     (txn_id, protocol, coordinator, state, reason, created_at, decided_at) \
                     VALUES (?, ?, ?, 'aborted', ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), \
                     strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                )
                .bind(txn.to_string())
                .bind(protocol.as_str())
                .bind(i64::from(coordinator.0))
                .bind(reason.as_str())
                .execute(&mut **sql_txn)
                .await?;
            }
            Some(StoredState::Aborted) => {}
            Some(state) if state.is_in_doubt() => {
                sqlx::query(
                    "UPDATE txn SET state = 'aborted', reason = ?, \
                     decided_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE txn_id = ?",
                )
                .bind(reason.as_str())
                .bind(txn.to_string())
                .execute(&mut **sql_txn)
                .await?;
            }
            Some(state) => return Err(conflict(state)),
        },
    }
    Ok(())
}

/// Applies a txn's redo images to `kv` in `seq` order (reads are logged but not applied).
async fn apply_redo(sql_txn: &mut Transaction<'_, Sqlite>, txn: TxnId) -> Result<(), StoreError> {
    let rows = sqlx::query(
        "SELECT key, redo_value, typeof(redo_value) AS redo_type FROM txn_log \
         WHERE txn_id = ? AND op <> 'get' ORDER BY seq",
    )
    .bind(txn.to_string())
    .fetch_all(&mut **sql_txn)
    .await?;
    for row in &rows {
        let key: String = row.try_get("key")?;
        match value_of(row, "redo_value", "redo_type", &key)? {
            None => {
                sqlx::query("DELETE FROM kv WHERE key = ?")
                    .bind(key.as_str())
                    .execute(&mut **sql_txn)
                    .await?;
            }
            Some(value) => {
                let query = sqlx::query(
                    "INSERT INTO kv (key, value, updated_at, updated_by_txn) \
                     VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                     updated_at = excluded.updated_at, updated_by_txn = excluded.updated_by_txn",
                )
                .bind(key.as_str());
                bind_value(query, &Some(value))
                    .bind(txn.to_string())
                    .execute(&mut **sql_txn)
                    .await?;
            }
        }
    }
    Ok(())
}

async fn state_of(
    sql_txn: &mut Transaction<'_, Sqlite>,
    txn: TxnId,
) -> Result<Option<StoredState>, StoreError> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM txn WHERE txn_id = ?")
        .bind(txn.to_string())
        .fetch_optional(&mut **sql_txn)
        .await?;
    state.map(|state| parse_state(&state)).transpose()
}

/// A `txn` row and its log entries.
async fn stored_txn(conn: &mut SqliteConnection, row: &SqliteRow) -> Result<StoredTxn, StoreError> {
    let txn_id: String = row.try_get("txn_id")?;
    let txn = Uuid::parse_str(&txn_id)
        .map(TxnId)
        .map_err(|error| StoreError::Corrupt(format!("txn id {txn_id:?}: {error}")))?;
    let protocol = parse_protocol(txn, &row.try_get::<String, _>("protocol")?)?;
    let coordinator = parse_coordinator(txn, row.try_get("coordinator")?)?;
    let participants: Option<String> = row.try_get("participants")?;
    let participants = parse_participants(txn, participants.as_deref().unwrap_or(""))?;
    let state: String = row.try_get("state")?;
    let rows = sqlx::query(
        "SELECT seq, key, op, undo_value, typeof(undo_value) AS undo_type, \
         redo_value, typeof(redo_value) AS redo_type \
         FROM txn_log WHERE txn_id = ? ORDER BY seq",
    )
    .bind(txn_id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in &rows {
        let seq: i64 = row.try_get("seq")?;
        let key: String = row.try_get("key")?;
        let op: String = row.try_get("op")?;
        entries.push(LogEntry {
            seq: u32::try_from(seq)
                .map_err(|_| StoreError::Corrupt(format!("txn {txn} has log seq {seq}")))?,
            op: OpKind::parse(&op)
                .ok_or_else(|| StoreError::Corrupt(format!("txn {txn} has log op {op:?}")))?,
            undo: value_of(row, "undo_value", "undo_type", &key)?,
            redo: value_of(row, "redo_value", "redo_type", &key)?,
            key,
        });
    }
    Ok(StoredTxn {
        txn,
        protocol,
        coordinator,
        state: parse_state(&state)?,
        reason: row.try_get("reason")?,
        entries,
        participants,
    })
}

fn parse_protocol(txn: TxnId, text: &str) -> Result<Protocol, StoreError> {
    match text {
        "2pc" => Ok(Protocol::TwoPhase),
        "3pc" => Ok(Protocol::ThreePhase),
        other => Err(StoreError::Corrupt(format!(
            "txn {txn} has unknown protocol {other:?}"
        ))),
    }
}

fn parse_coordinator(txn: TxnId, coordinator: i64) -> Result<NodeId, StoreError> {
    u32::try_from(coordinator)
        .map(NodeId)
        .map_err(|_| StoreError::Corrupt(format!("txn {txn} has coordinator {coordinator}")))
}

/// `txn.participants`: comma-separated node ids.
fn participants_text(participants: &[NodeId]) -> String {
    let ids: Vec<String> = participants.iter().map(ToString::to_string).collect();
    ids.join(",")
}

fn parse_participants(txn: TxnId, text: &str) -> Result<Vec<NodeId>, StoreError> {
    text.split(',')
        .filter(|id| !id.is_empty())
        .map(|id| {
            id.trim()
                .parse()
                .map(NodeId)
                .map_err(|_| StoreError::Corrupt(format!("txn {txn} has participants {text:?}")))
        })
        .collect()
}

fn parse_state(state: &str) -> Result<StoredState, StoreError> {
    StoredState::parse(state)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown txn state {state:?}")))
}

/// Decodes an `ANY` column by its SQLite type (read alongside as `typeof(column)`).
fn value_of(
    row: &SqliteRow,
    column: &str,
    type_column: &str,
    key: &str,
) -> Result<Option<Value>, StoreError> {
    let sqlite_type: String = row.try_get(type_column)?;
    match sqlite_type.as_str() {
        "null" => Ok(None),
        "integer" => Ok(Some(Value::Int(row.try_get(column)?))),
        "text" => Ok(Some(Value::Text(row.try_get(column)?))),
        other => Err(StoreError::Corrupt(format!(
            "key {key:?} holds a {other} value; only integers and text are supported"
        ))),
    }
}

fn bind_value<'q>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    value: &Option<Value>,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    match value {
        None => query.bind(None::<i64>),
        Some(Value::Int(int)) => query.bind(*int),
        Some(Value::Text(text)) => query.bind(text.clone()),
    }
}
