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
//!   `txn` row; [`Store::txn`] reports it as `StoredState::ReadOnly`. `Heuristic` (an
//!   operator's decision) moves an in-doubt txn to `heuristic_commit` (its redo images
//!   applied, as `Committed` applies them) or `heuristic_abort`; nothing moves it further.
//! - **Deferred updates.** `kv` changes only when a `Committed` record is written: its redo
//!   images (from the `txn_log` rows written with `Prepared`) are applied in `seq` order in
//!   the same SQLite transaction that marks the txn committed. `Aborted` changes no data.
//!   So `kv` holds exactly the committed transactions' writes, in commit order.
//!   `Writer::write` returns every key the batch changed with its value afterwards, so
//!   the single writer's caller can keep a cache of committed values exact.
//! - **States only move forward.** A record that would move a txn backwards (prepare twice,
//!   commit an aborted txn, abort a committed one) fails with `StateConflict` and writes
//!   nothing; a repeated `Committed` or `Aborted` is a no-op (redo images are never applied
//!   twice).
//! - **Recovery returns every unfinished txn**: `in_doubt_txns` returns every txn in state
//!   `prepared`, `waiting` or `precommitted`, with all its log entries.
//! - **Read holds survive a restart**: a `ReadOnly` record writes the keys read
//!   (`read_only_key`) and the hold's deadline (`hold_until_ms`: SQLite's wall clock at the
//!   write plus `hold_ms`) with its row; `read_holds` returns every hold whose deadline
//!   has not passed by that same clock, with the clock's reading.
//! - **Reads see only committed SQLite transactions** (WAL readers), i.e. durable records.

/// SQLite's wall clock now, in Unix milliseconds: the clock read-hold deadlines are
/// stamped with at write and compared with at recovery (one clock for both). A macro, so
/// constant SQL can be built with `concat!`.
macro_rules! now_ms {
    () => {
        "CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)"
    };
}
const NOW_MS: &str = now_ms!();

/// SQLite's wall clock now as the tables' timestamp text (UTC, milliseconds).
macro_rules! now {
    () => {
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    };
}

pub mod admin;
#[cfg(test)]
mod admin_tests;
mod batch;
#[cfg(test)]
mod migration_tests;
mod open;
mod read;
mod retention;
mod script;
#[cfg(test)]
mod tests;
mod write;

pub use retention::{
    Pruned, RetentionStatus, WAL_CHECKPOINT_PAGES, WAL_SIZE_LIMIT_BYTES, file_len, wal_path,
};
pub use write::{KvChanges, Writer};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use open::OpenTxns;
use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use wire::TxnId;

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
    /// Shared with the writer, which keeps it exact.
    kept_txns: Arc<retention::KeptTxns>,
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
            // A batch's multi-row statements keep statement journals (and the IN lists
            // temporary tables); on disk, SQLite created and unlinked a file in /var/tmp
            // for most batches. They are a batch's size, so memory bounds them.
            .pragma("temp_store", "memory")
            .statement_cache_capacity(script::STATEMENT_CACHE_SCRIPTS)
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
            kept_txns: Arc::default(),
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
        let ceiling = self.max_txn_id().await?;
        Ok(Writer {
            conn,
            open: OpenTxns::new(ceiling),
            kept_txns: self.kept_txns.clone(),
        })
    }

    /// Closes the read connections, after the writer's (`Writer::close`): the WAL is
    /// checkpointed into the database file first, so a stopped node leaves one
    /// self-contained file (SQLite would also do it when the last connection closes).
    pub async fn close(self) {
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            tracing::warn!(path = %self.path.display(), %error, "checkpointing the database failed");
        }
        self.pool.close().await;
    }
}
