//! The operator's view of a decision log: open an existing file read-only (safe beside a
//! running coordinator: WAL readers never block its writer) and look one transaction up.

use std::path::Path;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Row};
use wire::TxnId;

use super::{BUSY_TIMEOUT, Store, StoreError};

/// A `decision` row (times are the stored UTC text).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DecisionRow {
    pub protocol: String,
    pub decision: String,
    /// Comma-separated node ids: the Yes voters, which must apply the decision.
    pub participants: String,
    /// Why a 3PC precommit became an abort (`None` otherwise).
    pub reason: Option<String>,
    pub logged_at: String,
    pub ended_at: Option<String>,
}

/// A `heuristic_hazard` row.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HazardRow {
    pub participant: i64,
    pub decision: String,
    pub outcome: String,
    pub found_at: String,
}

/// What the decision log knows of one transaction.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TxnLookup {
    /// `None`: never logged (under presumed abort, an aborted or never-decided txn).
    pub decision: Option<DecisionRow>,
    pub hazards: Vec<HazardRow>,
}

impl Store {
    /// Opens an existing decision log read-only, without migrating it.
    pub async fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = SqliteConnectOptions::new()
            .filename(path)
            // No journal_mode: setting it writes; a WAL database is read as WAL anyway.
            .read_only(true)
            .busy_timeout(BUSY_TIMEOUT)
            .connect()
            .await
            .map_err(open_error)?;
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' \
             AND name IN ('_sqlx_migrations', 'decision', 'heuristic_hazard')",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(open_error)?;
        if tables < 3 {
            return Err(StoreError::NotADecisionLog {
                path: path.to_path_buf(),
            });
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            kept_decisions: None,
        })
    }

    /// The decision row of `txn` and every heuristic hazard recorded for it.
    pub async fn lookup(&mut self, txn: TxnId) -> Result<TxnLookup, StoreError> {
        let read_error = |source| StoreError::Read {
            path: self.path.clone(),
            source,
        };
        let id = txn.to_string();
        let row = sqlx::query(
            "SELECT protocol, decision, participants, reason, logged_at, ended_at \
             FROM decision WHERE txn_id = ?",
        )
        .bind(id.as_str())
        .fetch_optional(&mut self.conn)
        .await
        .map_err(read_error)?;
        let decision = match row {
            Some(row) => Some(decision_row(&row).map_err(read_error)?),
            None => None,
        };
        let rows = sqlx::query(
            "SELECT participant, decision, outcome, found_at FROM heuristic_hazard \
             WHERE txn_id = ? ORDER BY participant",
        )
        .bind(id.as_str())
        .fetch_all(&mut self.conn)
        .await
        .map_err(read_error)?;
        let hazards = rows
            .iter()
            .map(|row| {
                Ok(HazardRow {
                    participant: row.try_get("participant")?,
                    decision: row.try_get("decision")?,
                    outcome: row.try_get("outcome")?,
                    found_at: row.try_get("found_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(read_error)?;
        Ok(TxnLookup { decision, hazards })
    }
}

fn decision_row(row: &sqlx::sqlite::SqliteRow) -> Result<DecisionRow, sqlx::Error> {
    Ok(DecisionRow {
        protocol: row.try_get("protocol")?,
        decision: row.try_get("decision")?,
        participants: row.try_get("participants")?,
        reason: row.try_get("reason")?,
        logged_at: row.try_get("logged_at")?,
        ended_at: row.try_get("ended_at")?,
    })
}
