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

#[cfg(test)]
mod migration_tests;
mod retention;

pub use retention::{RetentionFigures, WAL_SIZE_LIMIT_BYTES, file_len};

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection};
use uuid::Uuid;
use wire::{Decision, NodeId, Outcome, Protocol, TxnId};

use crate::core::{Lsn, Record, RecoveredTxn};

pub mod admin;

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
    #[error("{} is not a coordinator decision log (no decision table)", path.display())]
    NotADecisionLog { path: PathBuf },
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
    /// Decision rows, once counted (`retention_figures`), then kept exact by this single
    /// writer: one more per `Decided` record written, fewer by each prune. A count(*) per
    /// prune step read every row, twice a second, and the rows of an hour's window are
    /// millions.
    kept_decisions: Option<i64>,
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
            // Statement journals and temporary tables in memory: a batch's size bounds
            // them, and on disk each was a file created and unlinked in /var/tmp.
            .pragma("temp_store", "memory")
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
            kept_decisions: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `batch` in ONE SQLite transaction (group commit); durable on `Ok`.
    ///
    /// Each SQL statement is a round trip to sqlx's connection thread, so the records
    /// between two `AbortAdopted` records go in as one script of multi-row statements:
    /// every `Decided` insert, then every `Ended` update. That order is the slice order's
    /// outcome, because an `Ended` never precedes its own `Decided` (see `# Correctness`)
    /// and records of different txns touch different rows. An `AbortAdopted` record must
    /// see exactly the records before it, so it is a statement of its own, in place.
    /// Without one (the usual batch), BEGIN and COMMIT go in the same script: one round
    /// trip for the whole SQLite transaction; a batch of one kind of record is a single
    /// statement, without them (`Script::in_transaction`).
    pub async fn append(&mut self, batch: &[(Lsn, Record)]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let write_error = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        let is_adopted =
            |(_, record): &(Lsn, Record)| matches!(record, Record::AbortAdopted { .. });
        if !batch.iter().any(is_adopted) {
            let Some(script) = Script::of(batch) else {
                return Ok(());
            };
            let written = script.in_transaction().execute(&mut self.conn).await;
            if written.is_err() {
                // The SQLite transaction may still be open: end it, writing nothing. (It
                // may have ended already, which makes ROLLBACK fail harmlessly.)
                let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
            }
            written.map_err(write_error)?;
            self.count_decided(batch);
            return Ok(());
        }
        let mut sqlite_txn = self.conn.begin().await.map_err(write_error)?;
        for segment in batch.split_inclusive(is_adopted) {
            let (plain, adopted) = match segment.split_last() {
                Some((last, rest)) if is_adopted(last) => (rest, Some(&last.1)),
                _ => (segment, None),
            };
            if let Some(script) = Script::of(plain) {
                script
                    .query()
                    .execute(&mut *sqlite_txn)
                    .await
                    .map_err(write_error)?;
            }
            if let Some(Record::AbortAdopted { txn, reason }) = adopted {
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
        sqlite_txn.commit().await.map_err(write_error)?;
        self.count_decided(batch);
        Ok(())
    }

    /// A batch is durable: its `Decided` records are rows now.
    fn count_decided(&mut self, batch: &[(Lsn, Record)]) {
        let decided = batch
            .iter()
            .filter(|(_, record)| matches!(record, Record::Decided { .. }))
            .count();
        if let Some(kept) = &mut self.kept_decisions {
            *kept += i64::try_from(decided).unwrap_or(i64::MAX);
        }
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

    /// Closes the log cleanly: the WAL is checkpointed into the database file first, so
    /// a stopped node leaves one self-contained file (SQLite would also do it on close).
    pub async fn close(mut self) {
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut self.conn)
            .await
        {
            tracing::warn!(path = %self.path.display(), %error, "checkpointing the decision log failed");
        }
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

/// The statements of a batch of `Decided`, `Ended` and `Hazard` records, each taking its
/// rows as one JSON array (`jsonb_each`, whose rows `->>` reads without parsing them
/// again as text; `value->>n` is column n of a row), so each text never changes and
/// SQLite parses it once per connection (sqlx's statement cache), not once per batch. A
/// batch writes only the statements it has rows for. Timestamps are UTC text computed by
/// SQLite, so the store needs no clock of its own. (`WHERE true` before `ON CONFLICT`:
/// SQLite's rule for an upsert over a SELECT.)
const INSERT_DECIDED: &str = "INSERT INTO decision (txn_id, protocol, decision, participants, logged_at) \
     SELECT value->>0, value->>1, value->>2, value->>3, \
     strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM jsonb_each(?);\n";
const UPDATE_ENDED: &str = "UPDATE decision SET ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
     WHERE ended_at IS NULL AND txn_id IN (SELECT value FROM json_each(?));\n";
const INSERT_HAZARDS: &str = "INSERT INTO heuristic_hazard (txn_id, participant, decision, outcome, found_at) \
     SELECT value->>0, value->>1, value->>2, value->>3, \
     strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM jsonb_each(?) WHERE true \
     ON CONFLICT (txn_id, participant) DO NOTHING;\n";

/// Several `Decided`, `Ended` and `Hazard` records as the statements that write them,
/// each with its one bind (a JSON array of rows), in the order above.
struct Script {
    statements: Vec<(&'static str, String)>,
}

impl Script {
    /// `None` if there is nothing to write. `AbortAdopted` records are not scripted.
    fn of(records: &[(Lsn, Record)]) -> Option<Script> {
        let mut decided = Vec::new();
        let mut ended = Vec::new();
        let mut hazards = Vec::new();
        for (_, record) in records {
            match record {
                Record::Decided {
                    txn,
                    protocol,
                    decision,
                    participants,
                } => decided.push((
                    txn,
                    protocol.as_str(),
                    decision_text(*decision),
                    participants_text(participants),
                )),
                Record::Ended { txn } => ended.push(txn),
                Record::AbortAdopted { .. } => {}
                Record::Hazard {
                    txn,
                    participant,
                    decision,
                    outcome,
                } => hazards.push((
                    txn,
                    participant.0,
                    decision_text(*decision),
                    heuristic_text(*outcome),
                )),
            }
        }
        // Rows are tuples: serde writes each as a JSON array, with no JSON tree between.
        let expect = "rows of strings and integers serialize";
        let mut statements = Vec::new();
        if !decided.is_empty() {
            statements.push((
                INSERT_DECIDED,
                serde_json::to_string(&decided).expect(expect),
            ));
        }
        if !ended.is_empty() {
            statements.push((UPDATE_ENDED, serde_json::to_string(&ended).expect(expect)));
        }
        if !hazards.is_empty() {
            statements.push((
                INSERT_HAZARDS,
                serde_json::to_string(&hazards).expect(expect),
            ));
        }
        (!statements.is_empty()).then_some(Script { statements })
    }

    /// The script as its own SQLite transaction. One statement needs no BEGIN and
    /// COMMIT: outside a transaction SQLite commits each statement on its own (atomic,
    /// and durable when it returns, as COMMIT is). Every statement's result is one more
    /// hand-off between sqlx's connection thread and the event loop, so a batch runs no
    /// statement without rows (the hazards' one almost never has any) and, when it holds
    /// one kind of record (a lone decision, or ends whose linger ran out), no BEGIN and
    /// COMMIT either. With one client the usual batch is a decision and the end of the
    /// transaction before it: four statements, where there were five.
    fn in_transaction(
        self,
    ) -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
        let wrap = self.statements.len() > 1;
        self.bind(wrap)
    }

    /// The script inside a SQLite transaction the caller opened.
    fn query(self) -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
        self.bind(false)
    }

    fn bind(
        self,
        wrap: bool,
    ) -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
        let mut text = String::from(if wrap { "BEGIN;\n" } else { "" });
        for (statement, _) in &self.statements {
            text.push_str(statement);
        }
        if wrap {
            text.push_str("COMMIT;\n");
        }
        // Only the constant texts above, in a few combinations: each is cached.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
        for (_, rows) in self.statements {
            query = query.bind(rows);
        }
        query
    }
}

// Only a 3PC commit still unfinished may become an abort (never a 2PC one, never an
// ended one): the WHERE clause makes the store refuse anything else.
const UPDATE_ABORT_ADOPTED: &str = "UPDATE decision SET decision = 'abort', reason = ?2, \
     ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
     WHERE txn_id = ?1 AND protocol = '3pc' AND decision = 'commit' AND ended_at IS NULL";

fn decision_text(decision: Decision) -> &'static str {
    match decision {
        Decision::Commit => "commit",
        Decision::Abort => "abort",
    }
}

/// `heuristic_hazard.outcome`. The core records only heuristic outcomes as hazards
/// (`core::heuristic`); the other arms are unreachable from it.
fn heuristic_text(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::HeuristicCommitted => "heuristic_commit",
        Outcome::HeuristicAborted
        | Outcome::Committed
        | Outcome::Aborted
        | Outcome::PreCommitted
        | Outcome::Unknown => "heuristic_abort",
    }
}

fn participants_text(participants: &[NodeId]) -> String {
    let ids: Vec<String> = participants.iter().map(NodeId::to_string).collect();
    ids.join(",")
}

#[cfg(test)]
mod tests;
