//! The operator's view of a participant database: open an existing file read-only (safe
//! beside a running node: WAL readers never block its writer), look one transaction up,
//! list the in-doubt ones (as `wire::admin` types, which a running node sends too); and
//! the exclusive lock a node (or `resolve`) holds on the file.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
use wire::TxnId;
pub use wire::admin::{InDoubtEntry, LogRow, ReadOnlyRow, TxnLookup, TxnRow};

use super::read::value_of;
use super::{BUSY_TIMEOUT_MS, Store, StoreError};

/// The name of the file a node's lock is taken on: beside the database, because a lock
/// on the database file itself would mix with SQLite's own locks (closing any handle on
/// it drops them).
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Held while a process owns the database (a serving node, or `resolve` writing to a
/// stopped node's file); released when dropped or when the process dies.
#[derive(Debug)]
pub struct DbLock {
    _file: File,
}

#[derive(thiserror::Error, Debug)]
pub enum LockError {
    #[error("{} is in use by another process (a running participant?)", db.display())]
    InUse { db: PathBuf },
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DbLock {
    /// Takes the exclusive lock on `db`'s lock file, or fails at once if another process
    /// holds it.
    pub fn acquire(db: &Path) -> Result<DbLock, LockError> {
        let path = lock_path(db);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| LockError::Io {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(DbLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(LockError::InUse {
                db: db.to_path_buf(),
            }),
            Err(TryLockError::Error(source)) => Err(LockError::Io { path, source }),
        }
    }
}

impl Store {
    /// Opens an existing participant database read-only, without migrating it: for
    /// lookups, beside a running node or on a stopped node's file.
    pub async fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            // No journal_mode: setting it writes; a WAL database is read as WAL anyway.
            .read_only(true)
            .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;
        let store = Store {
            path: path.to_path_buf(),
            options,
            pool,
            kept_txns: Default::default(),
        };
        store.check_participant_schema().await?;
        Ok(store)
    }

    /// A read-only open must find our tables: anything else is not a participant database.
    async fn check_participant_schema(&self) -> Result<(), StoreError> {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
             AND name IN ('_sqlx_migrations', 'txn', 'txn_log', 'kv', 'read_only_vote')",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|source| StoreError::Open {
            path: self.path.clone(),
            source,
        })?;
        if tables.len() < 5 {
            return Err(StoreError::ForeignSchema {
                path: self.path.clone(),
                detail: "it lacks the participant's tables (txn, txn_log, kv, read_only_vote)"
                    .to_string(),
            });
        }
        Ok(())
    }

    /// Everything the database holds on `txn`: its `txn` row and log, or its ReadOnly vote.
    pub async fn lookup(&self, txn: TxnId) -> Result<TxnLookup, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let id = txn.to_string();
        let row = sqlx::query(
            "SELECT txn_id, protocol, coordinator, state, reason, created_at, decided_at, \
             participants FROM txn WHERE txn_id = ?",
        )
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = row {
            let rows = sqlx::query(
                "SELECT seq, key, op, undo_value, typeof(undo_value) AS undo_type, \
                 redo_value, typeof(redo_value) AS redo_type \
                 FROM txn_log WHERE txn_id = ? ORDER BY seq",
            )
            .bind(id.as_str())
            .fetch_all(&mut *conn)
            .await?;
            let log = rows.iter().map(log_row).collect::<Result<_, _>>()?;
            return Ok(TxnLookup::Voted(TxnRow {
                txn_id: row.try_get("txn_id")?,
                protocol: row.try_get("protocol")?,
                coordinator: row.try_get("coordinator")?,
                state: row.try_get("state")?,
                reason: row.try_get("reason")?,
                created_at: row.try_get("created_at")?,
                decided_at: row.try_get("decided_at")?,
                participants: row.try_get("participants")?,
                log,
                log_omitted: 0,
            }));
        }
        let row = sqlx::query(
            "SELECT protocol, coordinator, voted_at FROM read_only_vote WHERE txn_id = ?",
        )
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        Ok(match row {
            Some(row) => TxnLookup::ReadOnly(ReadOnlyRow {
                protocol: row.try_get("protocol")?,
                coordinator: row.try_get("coordinator")?,
                voted_at: row.try_get("voted_at")?,
            }),
            None => TxnLookup::Unknown,
        })
    }

    /// The `in_doubt` view in full, oldest first.
    pub async fn in_doubt_entries(&self) -> Result<Vec<InDoubtEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT txn_id, protocol, coordinator, state, created_at, age_s, keys, \
             participants FROM in_doubt",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(InDoubtEntry {
                    txn_id: row.try_get("txn_id")?,
                    protocol: row.try_get("protocol")?,
                    coordinator: row.try_get("coordinator")?,
                    state: row.try_get("state")?,
                    created_at: row.try_get("created_at")?,
                    age_s: row.try_get("age_s")?,
                    keys: row.try_get("keys")?,
                    participants: row.try_get("participants")?,
                })
            })
            .collect()
    }
}

fn log_row(row: &SqliteRow) -> Result<LogRow, StoreError> {
    let key: String = row.try_get("key")?;
    Ok(LogRow {
        seq: row.try_get("seq")?,
        op: row.try_get("op")?,
        undo: value_of(row, "undo_value", "undo_type", &key)?,
        redo: value_of(row, "redo_value", "redo_type", &key)?,
        key,
    })
}
