//! Retention: the bounded prune step that deletes decided transactions (and their
//! `txn_log` rows and read-only votes) below the horizon and older than the window, the
//! WAL checkpoint after it, and the figures `status` shows.
//!
//! # Correctness
//!
//! - **Only decided txns go**: rows in state `committed` or `aborted`, and `read_only_vote`
//!   rows. In-doubt states (`prepared`, `waiting`, `precommitted`) are never selected, nor
//!   are heuristic marks (an operator's, kept until the operator removes them).
//! - **Only below the horizon**: every deleted id is below the `horizon` passed in, and the
//!   same SQLite transaction raises `retention.horizon` to it. The caller must have told
//!   the core that horizon first (`Participant::set_horizon`), so that from then on a
//!   request about a deleted txn is answered as forgotten, never as never seen.
//! - **Bounded**: at most `txns_max` txns and `txns_max` read-only votes per step, each
//!   with its few `txn_log` rows (at most `ops_per_txn_max`); one SQLite transaction.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use sqlx::Row;
use wire::retention::Horizon;

use super::write::Writer;
use super::{Store, StoreError};

/// The WAL is cut back to this many bytes whenever a checkpoint resets it (SQLite's
/// `journal_size_limit`), so one large batch does not leave a large file behind.
pub const WAL_SIZE_LIMIT_BYTES: i64 = 16 * 1024 * 1024;

/// SQLite's automatic checkpoint runs at the commit that brings the WAL to this many
/// pages (16 MiB of 4 KiB pages: the size the WAL is cut back to). SQLite's default,
/// 1,000, checkpointed four times as often, and each checkpoint rewrites every page the
/// WAL holds a copy of: the keys a commit writes are scattered over `kv`, so most of them.
pub const WAL_CHECKPOINT_PAGES: i64 = 4000;

/// The decided txns one prune step deletes: the oldest below the horizon whose outcome
/// is older than the window. SQLite walks the primary key's range below the horizon, rows
/// the step mostly deletes. (Through an index of every txn's state, "committed or
/// aborted" was nearly every row, and each step read the whole table: 75 ms at 200,000
/// rows, every `PRUNE_INTERVAL`, in the writer. The state index holds only the txns in
/// doubt now, so it cannot serve this selection.)
macro_rules! prunable_txns {
    () => {
        "SELECT txn_id FROM txn \
         WHERE txn_id < ? AND state IN ('committed', 'aborted') \
           AND decided_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?) \
         ORDER BY txn_id LIMIT ?"
    };
}

/// What one prune step deleted.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Pruned {
    pub txns: u64,
    pub log_rows: u64,
    pub read_only: u64,
    /// The step hit its bound: more may be waiting.
    pub full: bool,
}

/// The retention figures of `status`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct RetentionStatus {
    pub horizon: Horizon,
    /// The smallest (oldest) txn id kept, and when it was voted on.
    pub oldest_kept: Option<(String, String)>,
    pub kept_txns: i64,
    pub pruned_txns: i64,
    pub pruned_log_rows: i64,
    pub pruned_read_only: i64,
    pub db_bytes: u64,
    pub wal_bytes: u64,
}

/// A SQLite time modifier for `retain` ago, e.g. `-30.000 seconds`.
fn ago(retain: Duration) -> String {
    format!(
        "-{}.{:03} seconds",
        retain.as_secs(),
        retain.subsec_millis()
    )
}

/// The `txn` rows the database keeps, once the writer counted them: then kept exact by
/// that single writer (more by each batch's new rows, fewer by each prune step's) and
/// read by `status` without a `count(*)`, which reads every row (a second at millions of
/// rows, and `status` runs on the node's event loop). Shared by the store and its writer.
#[derive(Debug, Default)]
pub(super) struct KeptTxns(Mutex<Option<u64>>);

impl KeptTxns {
    pub(super) fn get(&self) -> Option<u64> {
        *self.lock()
    }

    fn set(&self, kept: u64) {
        *self.lock() = Some(kept);
    }

    /// `more` rows were added and `fewer` deleted (nothing, while not counted yet).
    pub(super) fn change(&self, more: u64, fewer: u64) {
        if let Some(kept) = self.lock().as_mut() {
            *kept = (*kept + more).saturating_sub(fewer);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Writer {
    /// One prune step (see the module's `# Correctness`): decided txns below `horizon`
    /// whose outcome, and read-only votes whose vote, is older than `retain`.
    pub async fn prune(
        &mut self,
        horizon: Horizon,
        retain: Duration,
        txns_max: u32,
    ) -> Result<Pruned, StoreError> {
        let pruned = self.prune_in_transaction(horizon, retain, txns_max).await;
        match &pruned {
            Ok(step) => {
                self.kept_txns.change(0, step.txns);
            }
            // As in `write`: end whatever is open, so nothing of the step is kept.
            Err(_) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
            }
        }
        pruned
    }

    async fn prune_in_transaction(
        &mut self,
        horizon: Horizon,
        retain: Duration,
        txns_max: u32,
    ) -> Result<Pruned, StoreError> {
        let horizon_id = horizon.as_txn_id().to_string();
        let ago = ago(retain);
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut self.conn)
            .await?;
        sqlx::query(concat!(
            "CREATE TEMP TABLE IF NOT EXISTS prune_batch (txn_id TEXT PRIMARY KEY) STRICT;
             DELETE FROM temp.prune_batch;
             INSERT INTO temp.prune_batch ",
            prunable_txns!(),
            ";"
        ))
        .bind(&horizon_id)
        .bind(&ago)
        .bind(txns_max)
        .execute(&mut self.conn)
        .await?;
        let log_rows = sqlx::query(
            "DELETE FROM txn_log WHERE txn_id IN (SELECT txn_id FROM temp.prune_batch)",
        )
        .execute(&mut self.conn)
        .await?
        .rows_affected();
        let txns =
            sqlx::query("DELETE FROM txn WHERE txn_id IN (SELECT txn_id FROM temp.prune_batch)")
                .execute(&mut self.conn)
                .await?
                .rows_affected();
        // The keys of the votes deleted next (the same rows: same query, same SQLite
        // transaction), so no `read_only_key` row outlives its vote.
        sqlx::query(
            "DELETE FROM read_only_key WHERE txn_id IN (SELECT txn_id FROM read_only_vote
             WHERE txn_id < ? AND voted_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)
             ORDER BY txn_id LIMIT ?)",
        )
        .bind(&horizon_id)
        .bind(&ago)
        .bind(txns_max)
        .execute(&mut self.conn)
        .await?;
        let read_only = sqlx::query(
            "DELETE FROM read_only_vote WHERE txn_id IN (SELECT txn_id FROM read_only_vote
             WHERE txn_id < ? AND voted_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)
             ORDER BY txn_id LIMIT ?)",
        )
        .bind(&horizon_id)
        .bind(&ago)
        .bind(txns_max)
        .execute(&mut self.conn)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE retention SET horizon = max(horizon, ?),
                 pruned_txns = pruned_txns + ?, pruned_log_rows = pruned_log_rows + ?,
                 pruned_read_only = pruned_read_only + ?,
                 pruned_at = CASE WHEN ? > 0 THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                                  ELSE pruned_at END
             WHERE id = 1;
             COMMIT;",
        )
        .bind(&horizon_id)
        .bind(i64::try_from(txns).unwrap_or(i64::MAX))
        .bind(i64::try_from(log_rows).unwrap_or(i64::MAX))
        .bind(i64::try_from(read_only).unwrap_or(i64::MAX))
        .bind(i64::try_from(txns + read_only).unwrap_or(i64::MAX))
        .execute(&mut self.conn)
        .await?;
        Ok(Pruned {
            txns,
            log_rows,
            read_only,
            full: txns >= u64::from(txns_max) || read_only >= u64::from(txns_max),
        })
    }

    /// Txns kept (every state), for `--retain-txns` and `status`: counted the first time,
    /// then kept exact (`KeptTxns`).
    pub async fn kept_txns(&mut self) -> Result<u64, StoreError> {
        if let Some(kept) = self.kept_txns.get() {
            return Ok(kept);
        }
        let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM txn")
            .fetch_one(&mut self.conn)
            .await?;
        let kept = u64::try_from(kept).unwrap_or(0);
        self.kept_txns.set(kept);
        Ok(kept)
    }

    /// Sets the WAL's size limit and checkpoint interval on the write connection (once,
    /// at start).
    pub async fn limit_wal(&mut self) -> Result<(), StoreError> {
        let pragma = format!("PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}");
        sqlx::query(sqlx::AssertSqlSafe(pragma))
            .execute(&mut self.conn)
            .await?;
        let pragma = format!("PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}");
        sqlx::query(sqlx::AssertSqlSafe(pragma))
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    /// A PASSIVE checkpoint: copies what it can of the WAL into the database without
    /// waiting for readers, so the next writes start the WAL over (and the file is cut
    /// back to `WAL_SIZE_LIMIT_BYTES`). SQLite's automatic checkpoints (`WAL_CHECKPOINT_PAGES`)
    /// do the same at commit; this one also runs when the node is idle.
    pub async fn checkpoint(&mut self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }
}

impl Store {
    /// The horizon pruning has reached (what a restarted core must start from).
    pub async fn horizon(&self) -> Result<Horizon, StoreError> {
        let text: String = sqlx::query_scalar("SELECT horizon FROM retention WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let uuid = uuid::Uuid::parse_str(&text)
            .map_err(|_| StoreError::Corrupt(format!("retention.horizon {text:?}")))?;
        Ok(Horizon::from_txn_id(wire::TxnId(uuid)))
    }

    /// Retention figures for `status`: counters, the oldest kept txn, file sizes.
    pub async fn retention_status(&self) -> Result<RetentionStatus, StoreError> {
        let row = sqlx::query(
            "SELECT pruned_txns, pruned_log_rows, pruned_read_only FROM retention WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await?;
        let oldest = sqlx::query("SELECT txn_id, created_at FROM txn ORDER BY txn_id LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        // Counted here only for a store whose writer has not counted (a node's counts
        // before it serves).
        let kept_txns = match self.kept_txns.get() {
            Some(kept) => i64::try_from(kept).unwrap_or(i64::MAX),
            None => {
                sqlx::query_scalar("SELECT count(*) FROM txn")
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        let oldest_kept = match oldest {
            Some(row) => Some((row.try_get("txn_id")?, row.try_get("created_at")?)),
            None => None,
        };
        Ok(RetentionStatus {
            horizon: self.horizon().await?,
            oldest_kept,
            kept_txns,
            pruned_txns: row.try_get("pruned_txns")?,
            pruned_log_rows: row.try_get("pruned_log_rows")?,
            pruned_read_only: row.try_get("pruned_read_only")?,
            db_bytes: file_len(self.path()),
            wal_bytes: file_len(&wal_path(self.path())),
        })
    }
}

/// The `-wal` file beside a database.
pub fn wal_path(db: &Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push("-wal");
    name.into()
}

/// A file's length, 0 if it does not exist.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use wire::{NodeId, Protocol, TxnId, Value};

    use super::*;
    use crate::core::{LogEntry, OpKind, Record, StoredState};
    use wire::runtime::block_on;

    fn txn(n: u128) -> TxnId {
        TxnId(uuid::Uuid::from_u128(n))
    }

    fn prepared(txn: TxnId, key: &str) -> Record {
        Record::Prepared {
            txn,
            protocol: Protocol::TwoPhase,
            coordinator: NodeId(3),
            entries: vec![LogEntry {
                seq: 0,
                key: key.to_string(),
                op: OpKind::Put,
                undo: None,
                redo: Some(Value::Int(1)),
            }],
            participants: vec![NodeId(1), NodeId(2)],
        }
    }

    fn aborted(txn: TxnId) -> Record {
        Record::Aborted {
            txn,
            protocol: Protocol::TwoPhase,
            coordinator: NodeId(3),
            reason: "no".into(),
        }
    }

    fn read_only(txn: TxnId) -> Record {
        Record::ReadOnly {
            txn,
            protocol: Protocol::TwoPhase,
            coordinator: NodeId(3),
            keys: vec!["r".into()],
            hold_ms: 1_000,
        }
    }

    #[test]
    fn pruning_deletes_decided_txns_below_the_horizon_and_keeps_the_rest() {
        let dir = tempfile::tempdir().expect("temp dir");
        block_on(async {
            let store = Store::open(&dir.path().join("p.db")).await.expect("open");
            let mut writer = store.writer().await.expect("writer");
            writer.limit_wal().await.expect("wal limit");
            let records = vec![
                prepared(txn(1), "a"),
                Record::Committed { txn: txn(1) },
                aborted(txn(2)),
                prepared(txn(3), "b"),
                read_only(txn(4)),
                // Above the horizon: kept though decided.
                prepared(txn(9), "c"),
                Record::Committed { txn: txn(9) },
            ];
            writer.write(&records).await.expect("write");
            // `decided_at` has millisecond resolution: let it fall behind "now".
            std::thread::sleep(Duration::from_millis(5));
            let horizon = Horizon::from_txn_id(txn(5));
            let first = writer
                .prune(horizon, Duration::ZERO, 1)
                .await
                .expect("prune");
            assert_eq!(
                first,
                Pruned {
                    txns: 1,
                    log_rows: 1,
                    read_only: 1,
                    full: true
                }
            );
            let second = writer
                .prune(horizon, Duration::ZERO, 1)
                .await
                .expect("prune");
            assert_eq!((second.txns, second.log_rows), (1, 0));
            let third = writer
                .prune(horizon, Duration::ZERO, 1)
                .await
                .expect("prune");
            assert_eq!(third, Pruned::default());
            writer.checkpoint().await.expect("checkpoint");
            assert_eq!(store.txn(txn(1)).await.expect("read"), None);
            assert_eq!(store.txn(txn(2)).await.expect("read"), None);
            assert_eq!(store.txn(txn(4)).await.expect("read"), None);
            // The pruned vote's hold (and its keys) went with it.
            assert!(store.read_holds().await.expect("holds").0.is_empty());
            let in_doubt = store.txn(txn(3)).await.expect("read").expect("kept");
            assert_eq!(in_doubt.state, StoredState::Prepared);
            assert_eq!(in_doubt.entries.len(), 1);
            assert!(store.txn(txn(9)).await.expect("read").is_some());
            let status = store.retention_status().await.expect("status");
            assert_eq!(status.horizon, horizon);
            assert_eq!(status.kept_txns, 2);
            assert_eq!(
                (
                    status.pruned_txns,
                    status.pruned_log_rows,
                    status.pruned_read_only
                ),
                (2, 1, 1)
            );
            assert_eq!(
                status.oldest_kept.map(|(id, _)| id),
                Some(txn(3).to_string())
            );
            assert!(status.db_bytes > 0);
            // The views still answer.
            assert_eq!(store.in_doubt_rows().await.expect("view").len(), 1);
            assert_eq!(store.txn_counts().await.expect("view").len(), 2);
        });
    }

    #[test]
    fn nothing_decided_within_the_window_is_pruned() {
        let dir = tempfile::tempdir().expect("temp dir");
        block_on(async {
            let store = Store::open(&dir.path().join("p.db")).await.expect("open");
            let mut writer = store.writer().await.expect("writer");
            let records = vec![prepared(txn(1), "a"), Record::Committed { txn: txn(1) }];
            writer.write(&records).await.expect("write");
            let horizon = Horizon::from_txn_id(txn(5));
            let pruned = writer
                .prune(horizon, Duration::from_secs(3600), 10)
                .await
                .expect("prune");
            assert_eq!(pruned, Pruned::default());
            assert!(store.txn(txn(1)).await.expect("read").is_some());
            // The horizon is raised all the same: it bounds what may be gone.
            assert_eq!(store.horizon().await.expect("horizon"), horizon);
        });
    }

    /// A prune step reads the rows below the horizon, not the whole table: SQLite's plan
    /// for its selection walks the primary key's range, never a `state` index.
    #[test]
    fn the_prune_selection_walks_the_txn_id_range() {
        let dir = tempfile::tempdir().expect("temp dir");
        block_on(async {
            let store = Store::open(&dir.path().join("p.db")).await.expect("open");
            let plan = concat!("EXPLAIN QUERY PLAN ", prunable_txns!());
            let rows = sqlx::query(plan)
                .bind(txn(5).to_string())
                .bind("-1.000 seconds")
                .bind(10)
                .fetch_all(&store.pool)
                .await
                .expect("plan");
            let details: Vec<String> = rows
                .iter()
                .map(|row| row.try_get("detail").expect("detail"))
                .collect();
            assert_eq!(
                details,
                ["SEARCH txn USING PRIMARY KEY (txn_id<?)"],
                "{details:?}"
            );
        });
    }

    #[test]
    fn kept_txns_stay_exact_after_they_are_counted_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        block_on(async {
            let store = Store::open(&dir.path().join("p.db")).await.expect("open");
            let mut writer = store.writer().await.expect("writer");
            let first = vec![prepared(txn(1), "a"), Record::Committed { txn: txn(1) }];
            writer.write(&first).await.expect("write");
            assert_eq!(writer.kept_txns().await.expect("kept"), 1);
            // Two new rows (a NO vote's, a YES vote's) and a read-only vote (no `txn` row).
            let more = vec![aborted(txn(2)), read_only(txn(3)), prepared(txn(4), "b")];
            writer.write(&more).await.expect("write");
            // A refused batch (txn 4 voted on twice) adds nothing.
            assert!(writer.write(&[prepared(txn(4), "b")]).await.is_err());
            std::thread::sleep(Duration::from_millis(5));
            let horizon = Horizon::from_txn_id(txn(9));
            let pruned = writer
                .prune(horizon, Duration::ZERO, 10)
                .await
                .expect("prune");
            assert_eq!(pruned.txns, 2);
            let counted: i64 = sqlx::query_scalar("SELECT count(*) FROM txn")
                .fetch_one(&mut writer.conn)
                .await
                .expect("count");
            assert_eq!(counted, 1);
            assert_eq!(writer.kept_txns().await.expect("kept"), 1);
            assert_eq!(store.retention_status().await.expect("status").kept_txns, 1);
        });
    }

    /// `status` reports the writer's count once there is one, so it never reads every row
    /// on the node's event loop: a row deleted behind the writer's back (as no node does)
    /// shows that the figure is the writer's, not a fresh `count(*)`.
    #[test]
    fn status_reports_the_writers_count_once_it_has_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        block_on(async {
            let store = Store::open(&dir.path().join("p.db")).await.expect("open");
            let mut writer = store.writer().await.expect("writer");
            writer
                .write(&[aborted(txn(1)), aborted(txn(2))])
                .await
                .expect("write");
            // Not counted by the writer yet (as a node's is before it serves): status counts.
            assert_eq!(store.retention_status().await.expect("status").kept_txns, 2);
            assert_eq!(writer.kept_txns().await.expect("kept"), 2);
            sqlx::query("DELETE FROM txn WHERE txn_id = ?")
                .bind(txn(1).to_string())
                .execute(&mut writer.conn)
                .await
                .expect("delete");
            assert_eq!(store.retention_status().await.expect("status").kept_txns, 2);
        });
    }
}
