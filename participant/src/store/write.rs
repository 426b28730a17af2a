//! The write side: the single [`Writer`] and how each record changes the tables (see the
//! module's `# Correctness`).

use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Row, Sqlite, Transaction};
use wire::{NodeId, TxnId, Value};

use super::StoreError;
use super::read::{parse_state, value_of};
use crate::core::{Record, StoredState};

/// The database's single write connection. See the module's `# Correctness`.
#[derive(Debug)]
pub struct Writer {
    pub(super) conn: SqliteConnection,
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
            Some(StoredState::Prepared | StoredState::Waiting | StoredState::PreCommitted) => {
                sqlx::query(
                    "UPDATE txn SET state = 'committed', \
                     decided_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE txn_id = ?",
                )
                .bind(txn.to_string())
                .execute(&mut **sql_txn)
                .await?;
                apply_redo(sql_txn, txn).await?;
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
            Some(StoredState::Prepared | StoredState::Waiting | StoredState::PreCommitted) => {
                sqlx::query(
                    "UPDATE txn SET state = 'aborted', reason = ?, \
                     decided_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE txn_id = ?",
                )
                .bind(reason.as_str())
                .bind(txn.to_string())
                .execute(&mut **sql_txn)
                .await?;
            }
            Some(
                state @ (StoredState::Committed
                | StoredState::HeuristicCommit
                | StoredState::HeuristicAbort
                | StoredState::ReadOnly),
            ) => return Err(conflict(state)),
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

/// `txn.participants`: comma-separated node ids.
fn participants_text(participants: &[NodeId]) -> String {
    let ids: Vec<String> = participants.iter().map(ToString::to_string).collect();
    ids.join(",")
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
