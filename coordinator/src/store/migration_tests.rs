//! Migrations over a decision log that holds rows: a file written by an older build opens
//! in this one with every row where it was.

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};
use uuid::Uuid;
use wire::{NodeId, Protocol, TxnId};

use super::{RecoveredTxn, Store};
use wire::runtime::block_on;

const OLD_ROWS: &str = "\
    INSERT INTO decision (txn_id, protocol, decision, participants, logged_at, ended_at, reason) VALUES
      ('00000000-0000-0000-0000-000000000001', '2pc', 'commit', '1,2', '2026-12-01T00:00:00.000Z', '2026-12-01T00:00:00.002Z', NULL),
      ('00000000-0000-0000-0000-000000000002', '3pc', 'commit', '1,3', '2026-12-01T00:00:01.000Z', NULL, NULL),
      ('00000000-0000-0000-0000-000000000003', '3pc', 'abort', '2', '2026-12-01T00:00:02.000Z', '2026-12-01T00:00:02.000Z', 'adopted');";

#[test]
fn decision_moves_to_its_primary_key_with_every_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    block_on(async {
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .expect("create");
        // The file as a build with migrations 1-4 left it.
        sqlx::migrate!("../migrations/coordinator")
            .run_to(4, &mut conn)
            .await
            .expect("old migrations");
        sqlx::raw_sql(OLD_ROWS)
            .execute(&mut conn)
            .await
            .expect("old rows");
        conn.close().await.expect("close");

        let mut store = Store::open(&path).await.expect("migrated");
        let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT txn_id, decision, ended_at, reason FROM decision ORDER BY txn_id",
        )
        .fetch_all(&mut store.conn)
        .await
        .expect("decisions");
        let ids: Vec<&str> = rows.iter().map(|row| row.0.as_str()).collect();
        assert_eq!(
            ids,
            [
                "00000000-0000-0000-0000-000000000001",
                "00000000-0000-0000-0000-000000000002",
                "00000000-0000-0000-0000-000000000003"
            ]
        );
        assert_eq!(rows[2].1, "abort");
        assert_eq!(rows[2].3.as_deref(), Some("adopted"));
        assert_eq!(rows[0].2.as_deref(), Some("2026-12-01T00:00:00.002Z"));
        let row = sqlx::query("SELECT wr FROM pragma_table_list WHERE name = 'decision'")
            .fetch_one(&mut store.conn)
            .await
            .expect("table list");
        assert_eq!(row.get::<i64, _>("wr"), 1, "WITHOUT ROWID");
        let counts: Vec<(String, String, i64, i64)> =
            sqlx::query_as("SELECT * FROM decision_counts ORDER BY protocol, decision")
                .fetch_all(&mut store.conn)
                .await
                .expect("counts");
        assert_eq!(counts.len(), 3, "{counts:?}");
        // Recovery re-sends the one unfinished decision, found through the view and index.
        assert_eq!(
            store.recover().await.expect("recover"),
            [RecoveredTxn {
                txn: TxnId(Uuid::from_u128(2)),
                protocol: Protocol::ThreePhase,
                participants: vec![NodeId(1), NodeId(3)],
            }]
        );
    });
}
