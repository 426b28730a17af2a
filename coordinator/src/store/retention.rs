//! Retention of the decision log: the bounded prune step that deletes ended decisions
//! older than the window, the WAL checkpoint after it, and the figures `status` shows.
//!
//! # Correctness
//!
//! - **Only ended decisions go** (`ended_at` set, and older than the window): every
//!   participant applied them, or (3PC) an abort was adopted. An unfinished decision is
//!   what recovery re-sends or resolves, and is never selected.
//! - **No answer changes**: the core forgets a decision when it logs its end, and answers
//!   a `DecisionQuery` for a txn it does not track with abort (presumed abort); it never
//!   reads an ended row. Deleting one therefore changes nothing the coordinator says
//!   (ARCHITECTURE.md, "Retention and forgotten transactions").
//! - **Bounded**: at most `decisions_max` rows per step, one SQLite transaction.

use std::path::Path;
use std::time::Duration;

use sqlx::Row;
use wire::retention::Horizon;

use super::{Store, StoreError};

/// The WAL is cut back to this many bytes whenever a checkpoint resets it.
pub const WAL_SIZE_LIMIT_BYTES: i64 = 16 * 1024 * 1024;

/// SQLite's automatic checkpoint runs at the commit that brings the WAL to this many
/// pages (16 MiB of 4 KiB pages: the size the WAL is cut back to). SQLite's default,
/// 1,000, checkpointed four times as often, and each checkpoint rewrites every page the
/// WAL holds a copy of: with a hot set of pages, most of a WAL's frames.
pub const WAL_CHECKPOINT_PAGES: i64 = 4000;

/// The retention figures of `status`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct RetentionFigures {
    /// The smallest (oldest) decision kept, and when it was logged.
    pub oldest_kept: Option<(String, String)>,
    pub kept_decisions: i64,
    pub pruned_decisions: i64,
}

impl Store {
    fn write_error(&self) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        |source| StoreError::Write {
            path: self.path.clone(),
            source,
        }
    }

    /// Deletes up to `decisions_max` ended decisions below `horizon` that ended more than
    /// `retain` ago; returns how many.
    pub async fn prune(
        &mut self,
        horizon: Horizon,
        retain: Duration,
        decisions_max: u32,
    ) -> Result<u64, StoreError> {
        let ago = format!(
            "-{}.{:03} seconds",
            retain.as_secs(),
            retain.subsec_millis()
        );
        // BEGIN goes alone: sqlx counts a statement's rows from SQLite's `changes()`, which
        // BEGIN leaves at the previous statement's count.
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut self.conn)
            .await
            .map_err(self.write_error())?;
        let pruned = sqlx::query(
            "DELETE FROM decision WHERE txn_id IN (SELECT txn_id FROM decision
             WHERE txn_id < ? AND ended_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)
             ORDER BY txn_id LIMIT ?);",
        )
        .bind(horizon.as_txn_id().to_string())
        .bind(ago)
        .bind(decisions_max)
        .execute(&mut self.conn)
        .await;
        let pruned = match pruned {
            Ok(done) => done.rows_affected(),
            Err(source) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
                return Err(self.write_error()(source));
            }
        };
        let counted = sqlx::query(
            "UPDATE retention SET pruned_decisions = pruned_decisions + ?,
                 pruned_at = CASE WHEN ? > 0 THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                                  ELSE pruned_at END
             WHERE id = 1;
             COMMIT;",
        )
        .bind(i64::try_from(pruned).unwrap_or(i64::MAX))
        .bind(i64::try_from(pruned).unwrap_or(i64::MAX))
        .execute(&mut self.conn)
        .await;
        if let Err(source) = counted {
            let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
            return Err(self.write_error()(source));
        }
        if let Some(kept) = &mut self.kept_decisions {
            *kept -= i64::try_from(pruned).unwrap_or(i64::MAX);
        }
        Ok(pruned)
    }

    /// Sets the WAL's size limit and checkpoint interval (once, at start).
    pub async fn limit_wal(&mut self) -> Result<(), StoreError> {
        let pragma = format!("PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}");
        sqlx::query(sqlx::AssertSqlSafe(pragma))
            .execute(&mut self.conn)
            .await
            .map_err(self.write_error())?;
        let pragma = format!("PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}");
        sqlx::query(sqlx::AssertSqlSafe(pragma))
            .execute(&mut self.conn)
            .await
            .map_err(self.write_error())?;
        Ok(())
    }

    /// A PASSIVE checkpoint (no waiting for readers), so the WAL starts over.
    pub async fn checkpoint(&mut self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut self.conn)
            .await
            .map_err(self.write_error())?;
        Ok(())
    }

    /// Decisions kept, the oldest of them, and how many were pruned.
    pub async fn retention_figures(&mut self) -> Result<RetentionFigures, StoreError> {
        let read_error = |source| StoreError::Read {
            path: self.path.clone(),
            source,
        };
        let pruned: i64 = sqlx::query_scalar("SELECT pruned_decisions FROM retention WHERE id = 1")
            .fetch_one(&mut self.conn)
            .await
            .map_err(read_error)?;
        let kept = match self.kept_decisions {
            Some(kept) => kept,
            None => {
                let counted: i64 = sqlx::query_scalar("SELECT count(*) FROM decision")
                    .fetch_one(&mut self.conn)
                    .await
                    .map_err(read_error)?;
                self.kept_decisions = Some(counted);
                counted
            }
        };
        let oldest = sqlx::query("SELECT txn_id, logged_at FROM decision ORDER BY txn_id LIMIT 1")
            .fetch_optional(&mut self.conn)
            .await
            .map_err(read_error)?;
        let oldest_kept = match oldest {
            Some(row) => Some((
                row.try_get("txn_id").map_err(read_error)?,
                row.try_get("logged_at").map_err(read_error)?,
            )),
            None => None,
        };
        Ok(RetentionFigures {
            oldest_kept,
            kept_decisions: kept,
            pruned_decisions: pruned,
        })
    }
}

/// A file's length, 0 if it does not exist; the `-wal` file's with `wal`.
pub fn file_len(db: &Path, wal: bool) -> u64 {
    let mut name = db.as_os_str().to_os_string();
    if wal {
        name.push("-wal");
    }
    std::fs::metadata(Path::new(&name))
        .map(|meta| meta.len())
        .unwrap_or(0)
}
