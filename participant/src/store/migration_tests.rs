//! Migrations over a database that holds rows: a file written by an older build opens in
//! this one with every row where it was.

use sqlx::{Connection, Row};

use super::Store;
use super::tests::new_file;
use wire::runtime::block_on;

const OLD_ROWS: &str = "\
    INSERT INTO txn (txn_id, protocol, coordinator, state, reason, created_at, decided_at, participants) VALUES
      ('00000000-0000-0000-0000-000000000001', '2pc', 3, 'committed', NULL, '2026-12-01T00:00:00.000Z', '2026-12-01T00:00:00.001Z', '1,2'),
      ('00000000-0000-0000-0000-000000000002', '3pc', 3, 'precommitted', NULL, '2026-12-01T00:00:01.000Z', NULL, '1,2'),
      ('00000000-0000-0000-0000-000000000003', '2pc', 3, 'aborted', 'voted no', '2026-12-01T00:00:02.000Z', '2026-12-01T00:00:02.001Z', NULL);
    INSERT INTO txn_log (txn_id, seq, key, op, undo_value, redo_value) VALUES
      ('00000000-0000-0000-0000-000000000001', 0, 'a', 'add', 5, 6),
      ('00000000-0000-0000-0000-000000000002', 0, 'b', 'put', NULL, 'x'),
      ('00000000-0000-0000-0000-000000000002', 1, 'c', 'get', 7, 7);";

#[test]
fn txn_and_txn_log_move_to_their_primary_keys_with_every_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    block_on(async {
        let mut conn = new_file(&path).await;
        // The file as a build with migrations 1-5 left it.
        sqlx::migrate!("../migrations/participant")
            .run_to(5, &mut conn)
            .await
            .expect("old migrations");
        sqlx::raw_sql(OLD_ROWS)
            .execute(&mut conn)
            .await
            .expect("old rows");
        conn.close().await.expect("close");

        let store = Store::open(&path).await.expect("migrated");
        let txns: Vec<(String, String, Option<String>)> =
            sqlx::query_as("SELECT txn_id, state, reason FROM txn ORDER BY txn_id")
                .fetch_all(&store.pool)
                .await
                .expect("txns");
        assert_eq!(
            txns,
            [
                (
                    "00000000-0000-0000-0000-000000000001".into(),
                    "committed".into(),
                    None
                ),
                (
                    "00000000-0000-0000-0000-000000000002".into(),
                    "precommitted".into(),
                    None
                ),
                (
                    "00000000-0000-0000-0000-000000000003".into(),
                    "aborted".into(),
                    Some("voted no".into())
                ),
            ]
        );
        let log: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT txn_id, seq, key FROM txn_log ORDER BY txn_id, seq")
                .fetch_all(&store.pool)
                .await
                .expect("log");
        assert_eq!(log.len(), 3, "{log:?}");
        let in_doubt: Vec<(String, String)> = sqlx::query_as("SELECT txn_id, keys FROM in_doubt")
            .fetch_all(&store.pool)
            .await
            .expect("in doubt");
        assert_eq!(
            in_doubt,
            [("00000000-0000-0000-0000-000000000002".into(), "b,c".into())]
        );
        // Both tables keep their rows in the primary key (`wr`: WITHOUT ROWID), and the
        // foreign key from txn_log still holds.
        for table in ["txn", "txn_log"] {
            let row = sqlx::query("SELECT wr FROM pragma_table_list WHERE name = ?")
                .bind(table)
                .fetch_one(&store.pool)
                .await
                .expect("table list");
            assert_eq!(row.get::<i64, _>("wr"), 1, "{table}");
        }
        let broken = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&store.pool)
            .await
            .expect("foreign key check");
        assert!(broken.is_empty());
        // Recovery finds the txn in doubt through the new index.
        let recovered = store.in_doubt_txns().await.expect("in doubt txns");
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].entries.len(), 2);
    });
}
