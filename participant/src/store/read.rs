//! The read side: committed values, a txn's stored record, recovery's in-doubt txns and
//! the status views, decoded from their rows.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use uuid::Uuid;
use wire::{NodeId, Protocol, TxnId, Value};

use super::{InDoubtRow, NOW_MS, Store, StoreError};
use crate::core::{LogEntry, OpKind, StoredReadHold, StoredState, StoredTxn};

impl Store {
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

    /// Recovery: the largest txn id of a `txn` or `read_only_vote` row (ids are stored as
    /// hyphenated lowercase hex, whose text order is the ids' order).
    pub async fn max_txn_id(&self) -> Result<Option<TxnId>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let max: Option<String> = sqlx::query_scalar(
            "SELECT max(id) FROM (SELECT max(txn_id) AS id FROM txn \
             UNION ALL SELECT max(txn_id) FROM read_only_vote)",
        )
        .fetch_one(&mut *conn)
        .await?;
        max.map(|text| parse_txn_id(&text)).transpose()
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

    /// Recovery: every ReadOnly vote's hold whose deadline has not passed, with the keys
    /// it read (sorted), and the wall clock (Unix ms) the deadlines were compared with.
    /// As many as the ReadOnly votes of the last `TIMEOUT_LIMIT_MS` at most.
    pub async fn read_holds(&self) -> Result<(Vec<StoredReadHold>, u64), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let now: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {NOW_MS}")))
            .fetch_one(&mut *conn)
            .await?;
        let rows = sqlx::query(
            "SELECT v.txn_id, v.hold_ms, v.hold_until_ms, k.key \
             FROM read_only_vote v JOIN read_only_key k ON k.txn_id = v.txn_id \
             WHERE v.hold_until_ms > ? ORDER BY v.hold_until_ms, v.txn_id, k.key",
        )
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        let mut holds: Vec<StoredReadHold> = Vec::new();
        for row in &rows {
            let txn_id: String = row.try_get("txn_id")?;
            let txn = parse_txn_id(&txn_id)?;
            let key: String = row.try_get("key")?;
            if let Some(hold) = holds.last_mut().filter(|hold| hold.txn == txn) {
                hold.keys.push(key);
                continue;
            }
            let millis = |column: &str| -> Result<u64, StoreError> {
                let value: i64 = row.try_get(column)?;
                u64::try_from(value)
                    .map_err(|_| StoreError::Corrupt(format!("txn {txn} has {column} {value}")))
            };
            holds.push(StoredReadHold {
                txn,
                keys: vec![key],
                hold_ms: millis("hold_ms")?,
                until_wall_ms: millis("hold_until_ms")?,
            });
        }
        let now = u64::try_from(now)
            .map_err(|_| StoreError::Corrupt(format!("SQLite's clock reads {now} ms")))?;
        Ok((holds, now))
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
}

/// A `txn` row and its log entries.
async fn stored_txn(conn: &mut SqliteConnection, row: &SqliteRow) -> Result<StoredTxn, StoreError> {
    let txn_id: String = row.try_get("txn_id")?;
    let txn = parse_txn_id(&txn_id)?;
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

fn parse_txn_id(text: &str) -> Result<TxnId, StoreError> {
    Uuid::parse_str(text)
        .map(TxnId)
        .map_err(|error| StoreError::Corrupt(format!("txn id {text:?}: {error}")))
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

pub(super) fn parse_state(state: &str) -> Result<StoredState, StoreError> {
    StoredState::parse(state)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown txn state {state:?}")))
}

/// Decodes an `ANY` column by its SQLite type (read alongside as `typeof(column)`).
pub(super) fn value_of(
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
