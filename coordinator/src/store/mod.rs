//! The decision log in SQLite (`decision` table, `unfinished` view): the only module
//! that imports sqlx.
//!
//! # Correctness
//!
//! - **Durable when `append` returns `Ok`**: every record of the batch is in one SQLite
//!   transaction, written in WAL mode with `synchronous=FULL`, so it has reached the disk
//!   when COMMIT returns. The caller may then (and only then) report `Persisted` for each.
//! - **Totally ordered**: one connection, one writer; batches are applied in the order
//!   they are appended and records within a batch in slice order. An `Ended` record is
//!   always appended after its `Decided` record (the core emits it later), so the UPDATE
//!   finds its row; so is an `AbortAdopted` record, whose UPDATE must find the row still
//!   unfinished (anything else is a broken log, reported as `Err`).
//! - **Recovery is complete**: `recover` returns every logged commit (3PC: precommit)
//!   without an end, exactly as `core::unfinished` computes it from the records. Anything
//!   not returned is either ended (every participant applied it, or a 3PC abort was
//!   adopted) or was never durably decided, which presumed abort answers as aborted.
//! - **Failure is fatal**: an `Err` from `append` leaves the batch's durability unknown;
//!   the caller must stop the node (not retry, not report `Persisted`) and let the next
//!   start recover from what is on disk.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection};
use uuid::Uuid;
use wire::{Decision, NodeId, Protocol, TxnId};

use crate::core::{Lsn, Record, RecoveredTxn};

/// How long a statement waits for a lock held by another connection (e.g. a person
/// running `sqlite3` on the file) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("cannot open decision log {}: {source}", path.display())]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("cannot apply migrations to decision log {}: {source}", path.display())]
    Migrate {
        path: PathBuf,
        source: sqlx::migrate::MigrateError,
    },
    #[error("decision log {} write failed: {source}", path.display())]
    Write { path: PathBuf, source: sqlx::Error },
    #[error("decision log {} read failed: {source}", path.display())]
    Read { path: PathBuf, source: sqlx::Error },
    #[error("decision log {} has no unfinished commit for txn {txn} to turn into an abort", path.display())]
    NotUnfinished { path: PathBuf, txn: TxnId },
    #[error("decision log {} has a bad row for txn {txn_id:?}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        txn_id: String,
        reason: String,
    },
}

/// The open decision log: one connection, used by one writer.
#[derive(Debug)]
pub struct Store {
    conn: SqliteConnection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if missing) the log at `path` and applies the migrations.
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
            .busy_timeout(BUSY_TIMEOUT);
        let mut conn = options.connect().await.map_err(open_error)?;
        // Reading the schema is what tells a non-database file apart from a database.
        sqlx::query("SELECT count(*) FROM sqlite_master")
            .fetch_one(&mut conn)
            .await
            .map_err(open_error)?;
        sqlx::migrate!("../migrations/coordinator")
            .run(&mut conn)
            .await
            .map_err(|source| StoreError::Migrate {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `batch` in ONE SQLite transaction (group commit); durable on `Ok`.
    pub async fn append(&mut self, batch: &[(Lsn, Record)]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let write_error = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        let mut sqlite_txn = self.conn.begin().await.map_err(write_error)?;
        for (_, record) in batch {
            match record {
                Record::Decided {
                    txn,
                    protocol,
                    decision,
                    participants,
                } => {
                    sqlx::query(INSERT_DECIDED)
                        .bind(txn.to_string())
                        .bind(protocol.as_str())
                        .bind(decision_text(*decision))
                        .bind(participants_text(participants))
                        .execute(&mut *sqlite_txn)
                        .await
                        .map_err(write_error)?;
                }
                Record::Ended { txn } => {
                    sqlx::query(UPDATE_ENDED)
                        .bind(txn.to_string())
                        .execute(&mut *sqlite_txn)
                        .await
                        .map_err(write_error)?;
                }
                Record::AbortAdopted { txn, reason } => {
                    let done = sqlx::query(UPDATE_ABORT_ADOPTED)
                        .bind(txn.to_string())
                        .bind(reason.as_str())
                        .execute(&mut *sqlite_txn)
                        .await
                        .map_err(write_error)?;
                    if done.rows_affected() != 1 {
                        // Dropping the SQLite transaction rolls the whole batch back.
                        return Err(StoreError::NotUnfinished {
                            path: path.clone(),
                            txn: *txn,
                        });
                    }
                }
            }
        }
        sqlite_txn.commit().await.map_err(write_error)
    }

    /// Every logged commit (3PC: precommit) without an end, by transaction id (v7 ids:
    /// oldest first).
    pub async fn recover(&mut self) -> Result<Vec<RecoveredTxn>, StoreError> {
        let rows = sqlx::query(
            "SELECT txn_id, protocol, participants FROM unfinished \
             WHERE decision = 'commit' ORDER BY txn_id",
        )
        .fetch_all(&mut self.conn)
        .await
        .map_err(|source| StoreError::Read {
            path: self.path.clone(),
            source,
        })?;
        rows.iter().map(|row| self.parse_unfinished(row)).collect()
    }

    pub async fn close(self) {
        if let Err(error) = self.conn.close().await {
            tracing::warn!(path = %self.path.display(), %error, "closing the decision log failed");
        }
    }

    fn parse_unfinished(&self, row: &sqlx::sqlite::SqliteRow) -> Result<RecoveredTxn, StoreError> {
        let text = |column: &str| -> Result<String, StoreError> {
            row.try_get::<String, _>(column)
                .map_err(|source| StoreError::Read {
                    path: self.path.clone(),
                    source,
                })
        };
        let txn_id = text("txn_id")?;
        let corrupt = |reason: String| StoreError::Corrupt {
            path: self.path.clone(),
            txn_id: txn_id.clone(),
            reason,
        };
        let txn = Uuid::from_str(&txn_id)
            .map(TxnId)
            .map_err(|e| corrupt(format!("txn_id is not a uuid: {e}")))?;
        let protocol = match text("protocol")?.as_str() {
            "2pc" => Protocol::TwoPhase,
            "3pc" => Protocol::ThreePhase,
            other => return Err(corrupt(format!("unknown protocol {other:?}"))),
        };
        let participants = text("participants")?
            .split(',')
            .map(|id| id.trim().parse::<u32>().map(NodeId))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(format!("participants is not a list of node ids: {e}")))?;
        Ok(RecoveredTxn {
            txn,
            protocol,
            participants,
        })
    }
}

// Timestamps are UTC text computed by SQLite, so the store needs no clock of its own.
const INSERT_DECIDED: &str = "INSERT INTO decision \
     (txn_id, protocol, decision, participants, logged_at) \
     VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))";

// Only a 3PC commit still unfinished may become an abort (never a 2PC one, never an
// ended one): the WHERE clause makes the store refuse anything else.
const UPDATE_ABORT_ADOPTED: &str = "UPDATE decision SET decision = 'abort', reason = ?2, \
     ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
     WHERE txn_id = ?1 AND protocol = '3pc' AND decision = 'commit' AND ended_at IS NULL";

const UPDATE_ENDED: &str = "UPDATE decision SET ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
     WHERE txn_id = ?1 AND ended_at IS NULL";

fn decision_text(decision: Decision) -> &'static str {
    match decision {
        Decision::Commit => "commit",
        Decision::Abort => "abort",
    }
}

fn participants_text(participants: &[NodeId]) -> String {
    let ids: Vec<String> = participants.iter().map(NodeId::to_string).collect();
    ids.join(",")
}

#[cfg(test)]
mod tests;
