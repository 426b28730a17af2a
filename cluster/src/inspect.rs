//! A node's SQLite file read the way a user with `sqlite3` would: opened read-only, every
//! column rendered as text. The only module of this crate that names sqlx.

use std::path::{Path, PathBuf};

use sqlx::{ConnectOptions, Row, TypeInfo, ValueRef};

#[derive(thiserror::Error, Debug)]
#[error("{}: {source}", path.display())]
pub struct InspectError {
    pub path: PathBuf,
    pub source: sqlx::Error,
}

/// The rows of `sql` on the database at `path`, each column as text (NULL as "NULL").
/// Read-only: safe on the file of a running node, and on one left by a killed node.
pub fn query(path: &Path, sql: &str) -> Result<Vec<Vec<String>>, InspectError> {
    let failed = |source| InspectError {
        path: path.to_path_buf(),
        source,
    };
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    // sqlx's futures need no particular executor: the runtime it was built for drives
    // its own IO.
    futures::executor::block_on(async move {
        let mut connection = options.connect().await.map_err(failed)?;
        // The caller's own SQL, on a read-only connection to a file it could open anyway.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut connection)
            .await
            .map_err(failed)?;
        rows.iter()
            .map(|row| {
                (0..row.columns().len())
                    .map(|i| {
                        let raw = row.try_get_raw(i).map_err(failed)?;
                        if raw.is_null() {
                            return Ok("NULL".to_string());
                        }
                        let text = match raw.type_info().name() {
                            "INTEGER" => row.try_get::<i64, _>(i).map(|v| v.to_string()),
                            "REAL" => row.try_get::<f64, _>(i).map(|v| v.to_string()),
                            _ => row.try_get::<String, _>(i),
                        };
                        text.map_err(failed)
                    })
                    .collect()
            })
            .collect()
    })
}
