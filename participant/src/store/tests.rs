//! Store tests on real SQLite files in a temporary directory.

use std::path::Path;

use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;
use uuid::Uuid;
use wire::{NodeId, Protocol, TxnId, Value};

use super::*;
use crate::core::{LogEntry, OpKind, Record, StoredState, StoredTxn};
use wire::runtime::block_on;

const COORDINATOR: NodeId = NodeId(3);

fn txn(n: u128) -> TxnId {
    TxnId(Uuid::from_u128(n))
}

fn int(value: i64) -> Option<Value> {
    Some(Value::Int(value))
}

fn text(value: &str) -> Option<Value> {
    Some(Value::Text(value.to_string()))
}

fn entry(seq: u32, key: &str, op: OpKind, undo: Option<Value>, redo: Option<Value>) -> LogEntry {
    LogEntry {
        seq,
        key: key.to_string(),
        op,
        undo,
        redo,
    }
}

fn prepared(txn: TxnId, entries: Vec<LogEntry>) -> Record {
    Record::Prepared {
        txn,
        protocol: Protocol::TwoPhase,
        coordinator: COORDINATOR,
        entries,
        participants: vec![NodeId(1), NodeId(2)],
    }
}

fn aborted(txn: TxnId, reason: &str) -> Record {
    Record::Aborted {
        txn,
        protocol: Protocol::TwoPhase,
        coordinator: COORDINATOR,
        reason: reason.to_string(),
    }
}

async fn open(path: &Path) -> (Store, Writer) {
    let store = Store::open(path).await.expect("open store");
    let writer = store.writer().await.expect("open writer");
    (store, writer)
}

async fn values(store: &Store, keys: &[&str]) -> Vec<Option<Value>> {
    let values = store
        .values(keys.iter().copied())
        .await
        .expect("read values");
    keys.iter().map(|key| values[*key].clone()).collect()
}

/// Commits `a = 1`, `b = "x"` through the log, as a real txn would.
async fn seed(writer: &mut Writer) {
    let t0 = txn(100);
    let entries = vec![
        entry(0, "a", OpKind::Put, None, int(1)),
        entry(1, "b", OpKind::Put, None, text("x")),
    ];
    writer
        .write(&[prepared(t0, entries), Record::Committed { txn: t0 }])
        .await
        .expect("seed");
}

#[test]
fn prepared_txn_survives_reopen_and_is_recovered_with_its_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("participant.db");
    let t1 = txn(1);
    let entries = vec![
        entry(0, "g", OpKind::Get, None, None),
        entry(1, "a", OpKind::Put, None, text("hello")),
        entry(2, "n", OpKind::Add, None, int(-7)),
    ];
    block_on(async {
        let (store, mut writer) = open(&path).await;
        writer
            .write(&[prepared(t1, entries.clone())])
            .await
            .expect("write");
        writer.close().await.expect("close writer");
        store.close().await;

        let (store, _writer) = open(&path).await;
        let expected = StoredTxn {
            txn: t1,
            protocol: Protocol::TwoPhase,
            coordinator: COORDINATOR,
            state: StoredState::Prepared,
            reason: None,
            entries,
            participants: vec![NodeId(1), NodeId(2)],
        };
        assert_eq!(
            store.in_doubt_txns().await.expect("recover"),
            vec![expected.clone()]
        );
        assert_eq!(store.txn(t1).await.expect("txn"), Some(expected));
        assert_eq!(store.txn(txn(2)).await.expect("txn"), None);
        // Deferred updates: nothing applied before the commit.
        assert_eq!(values(&store, &["a", "n"]).await, vec![None, None]);
    });
}

#[test]
fn commit_applies_the_redo_images_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("participant.db");
    let t1 = txn(1);
    block_on(async {
        let (store, mut writer) = open(&path).await;
        seed(&mut writer).await;
        let entries = vec![
            entry(0, "a", OpKind::Add, int(1), int(6)),
            entry(1, "b", OpKind::Delete, text("x"), None),
            entry(2, "c", OpKind::Put, None, text("hi")),
            entry(3, "c", OpKind::Put, text("hi"), text("bye")),
            entry(4, "a", OpKind::Get, int(6), int(6)),
        ];
        writer
            .write(&[prepared(t1, entries)])
            .await
            .expect("prepare");
        assert_eq!(
            values(&store, &["a", "b", "c"]).await,
            vec![int(1), text("x"), None]
        );
        writer
            .write(&[Record::Committed { txn: t1 }])
            .await
            .expect("commit");
        assert_eq!(
            values(&store, &["a", "b", "c"]).await,
            vec![int(6), None, text("bye")]
        );
        // A repeated commit is a no-op: redo images are never applied twice.
        writer
            .write(&[Record::Committed { txn: t1 }])
            .await
            .expect("commit again");
        assert_eq!(values(&store, &["a"]).await, vec![int(6)]);
        assert_eq!(
            store.txn(t1).await.expect("txn").map(|stored| stored.state),
            Some(StoredState::Committed)
        );
        assert_eq!(store.in_doubt_txns().await.expect("recover"), vec![]);
        // Integers stay INTEGER, and the row says which txn wrote it.
        let (kind, by): (String, String) =
            sqlx::query_as("SELECT typeof(value), updated_by_txn FROM kv WHERE key = 'a'")
                .fetch_one(&store.pool)
                .await
                .expect("query kv");
        assert_eq!((kind.as_str(), by), ("integer", t1.to_string()));
        let sum: i64 = sqlx::query_scalar("SELECT sum(value) FROM kv WHERE key = 'a'")
            .fetch_one(&store.pool)
            .await
            .expect("sum");
        assert_eq!(sum, 6);
    });
}

#[test]
fn abort_leaves_the_data_as_it_was_and_keeps_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("participant.db");
    let (t1, t2) = (txn(1), txn(2));
    block_on(async {
        let (store, mut writer) = open(&path).await;
        seed(&mut writer).await;
        writer
            .write(&[prepared(
                t1,
                vec![entry(0, "a", OpKind::Put, int(1), int(9))],
            )])
            .await
            .expect("prepare");
        writer
            .write(&[
                aborted(t1, "the coordinator answered abort"),
                aborted(t2, "lock conflict"),
            ])
            .await
            .expect("abort");
        assert_eq!(values(&store, &["a", "b"]).await, vec![int(1), text("x")]);
        let stored = store.txn(t1).await.expect("txn").expect("t1 stored");
        assert_eq!(stored.state, StoredState::Aborted);
        assert_eq!(
            stored.reason.as_deref(),
            Some("the coordinator answered abort")
        );
        assert_eq!(stored.entries.len(), 1);
        let stored = store.txn(t2).await.expect("txn").expect("t2 stored");
        assert_eq!(
            (stored.state, stored.reason.as_deref(), stored.entries.len()),
            (StoredState::Aborted, Some("lock conflict"), 0)
        );
        assert_eq!(store.in_doubt_txns().await.expect("recover"), vec![]);
    });
}

#[test]
fn a_backward_state_change_fails_and_writes_nothing_of_its_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("participant.db");
    let (t1, t2, t3) = (txn(1), txn(2), txn(3));
    block_on(async {
        let (store, mut writer) = open(&path).await;
        seed(&mut writer).await;
        writer.write(&[aborted(t1, "no")]).await.expect("abort");
        let error = writer
            .write(&[
                prepared(t3, vec![entry(0, "z", OpKind::Put, None, int(1))]),
                Record::Committed { txn: t1 },
            ])
            .await
            .expect_err("commit of an aborted txn");
        assert_eq!(
            error.to_string(),
            format!("cannot record committed for txn {t1}: it is already aborted")
        );
        assert_eq!(store.txn(t3).await.expect("txn"), None);
        let error = writer
            .write(&[aborted(txn(100), "late")])
            .await
            .expect_err("abort of a committed txn");
        assert!(
            error.to_string().contains("it is already committed"),
            "{error}"
        );
        let error = writer
            .write(&[Record::Committed { txn: t2 }])
            .await
            .expect_err("commit of an unknown txn");
        assert!(error.to_string().contains("never prepared"), "{error}");
        // The writer is still usable after a failed batch (the shell exits anyway).
        writer
            .write(&[prepared(t3, vec![])])
            .await
            .expect("prepare after failures");
    });
}

#[test]
fn views_answer_in_doubt_and_counts_per_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("participant.db");
    let (t1, t2) = (txn(1), txn(2));
    block_on(async {
        let (store, mut writer) = open(&path).await;
        seed(&mut writer).await;
        writer
            .write(&[
                prepared(
                    t1,
                    vec![
                        entry(0, "a", OpKind::Get, int(1), int(1)),
                        entry(1, "b", OpKind::Delete, text("x"), None),
                        entry(2, "b", OpKind::Put, None, int(2)),
                    ],
                ),
                aborted(t2, "participant overloaded"),
            ])
            .await
            .expect("write");
        assert_eq!(
            store.txn_counts().await.expect("counts"),
            vec![
                ("aborted".to_string(), 1),
                ("committed".to_string(), 1),
                ("prepared".to_string(), 1)
            ]
        );
        let rows = store.in_doubt_rows().await.expect("in doubt");
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(
            (row.txn_id.as_str(), row.state.as_str(), row.keys.as_deref()),
            (t1.to_string().as_str(), "prepared", Some("a,b"))
        );
        assert!(row.age_s >= 0, "age {}", row.age_s);
    });
}

#[test]
fn an_unopenable_path_is_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-such-dir").join("participant.db");
    let error = block_on(Store::open(&path)).expect_err("missing directory");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "cannot open participant database {}: ",
            path.display()
        )),
        "{message}"
    );
    assert!(!path.parent().expect("parent").exists());
}

#[test]
fn a_file_that_is_not_sqlite_is_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, "this is not a database\n".repeat(200)).expect("write garbage");
    let message = block_on(Store::open(&path))
        .expect_err("garbage file")
        .to_string();
    assert!(
        message.starts_with(&format!(
            "cannot open participant database {}: ",
            path.display()
        )),
        "{message}"
    );
    assert!(message.contains("not a database"), "{message}");
}

/// A connection to a new, empty SQLite file at `path` (not through the store).
pub(super) async fn new_file(path: &Path) -> SqliteConnection {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    SqliteConnection::connect_with(&options)
        .await
        .expect("create")
}

#[test]
fn a_database_with_a_foreign_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("foreign.db");
    block_on(async {
        let mut conn = new_file(&path).await;
        sqlx::query("CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
            .execute(&mut conn)
            .await
            .expect("create table");
        conn.close().await.expect("close");
    });
    let message = block_on(Store::open(&path))
        .expect_err("foreign schema")
        .to_string();
    assert_eq!(
        message,
        format!(
            "{} is not a participant database: it holds tables (accounts) but no migration history",
            path.display()
        )
    );
}

#[test]
fn a_database_migrated_by_another_kind_of_node_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.db");
    let migrations = dir.path().join("other-migrations");
    std::fs::create_dir(&migrations).expect("mkdir");
    std::fs::write(
        migrations.join("0001_init.sql"),
        "CREATE TABLE decision (txn_id TEXT PRIMARY KEY);\n",
    )
    .expect("write migration");
    block_on(async {
        let mut conn = new_file(&path).await;
        sqlx::migrate::Migrator::new(migrations.as_path())
            .await
            .expect("migrator")
            .run(&mut conn)
            .await
            .expect("migrate");
        conn.close().await.expect("close");
    });
    let message = block_on(Store::open(&path))
        .expect_err("other kind of database")
        .to_string();
    assert_eq!(
        message,
        format!(
            "{} is not a participant database: its migration 1 is not one of the participant's migrations",
            path.display()
        )
    );
}

fn waiting(txn: TxnId, entries: Vec<LogEntry>) -> Record {
    Record::Prepared {
        txn,
        protocol: Protocol::ThreePhase,
        coordinator: COORDINATOR,
        entries,
        participants: vec![NodeId(4), NodeId(2), NodeId(9)],
    }
}

async fn state(store: &Store, txn: TxnId) -> Option<StoredState> {
    store
        .txn(txn)
        .await
        .expect("txn")
        .map(|stored| stored.state)
}

#[test]
fn three_phase_states_move_forward_and_keep_the_participants() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("participant.db");
    let (t1, t2) = (txn(1), txn(2));
    block_on(async {
        let (store, mut writer) = open(&path).await;
        seed(&mut writer).await;
        let entries = vec![entry(0, "a", OpKind::Put, int(1), int(9))];
        writer
            .write(&[waiting(t1, entries.clone()), waiting(t2, vec![])])
            .await
            .expect("waiting");
        assert_eq!(state(&store, t1).await, Some(StoredState::Waiting));
        writer
            .write(&[
                Record::PreCommitted { txn: t1 },
                Record::PreCommitted { txn: t1 },
            ])
            .await
            .expect("precommitted twice is a no-op");
        let expected = StoredTxn {
            txn: t1,
            protocol: Protocol::ThreePhase,
            coordinator: COORDINATOR,
            state: StoredState::PreCommitted,
            reason: None,
            entries,
            participants: vec![NodeId(4), NodeId(2), NodeId(9)],
        };
        let recovered = store.in_doubt_txns().await.expect("recover");
        assert_eq!(recovered.len(), 2);
        assert_eq!(recovered[0], expected);
        assert_eq!(recovered[1].state, StoredState::Waiting);
        let rows = store.in_doubt_rows().await.expect("in doubt");
        assert_eq!(rows[0].state, "precommitted");

        writer
            .write(&[Record::Committed { txn: t1 }])
            .await
            .expect("commit from precommitted");
        assert_eq!(values(&store, &["a"]).await, vec![int(9)]);
        // A precommitted txn may still abort when the termination protocol says so; a
        // decided one cannot be precommitted.
        writer
            .write(&[Record::PreCommitted { txn: t2 }, aborted(t2, "termination")])
            .await
            .expect("abort from precommitted");
        let error = writer
            .write(&[Record::PreCommitted { txn: t2 }])
            .await
            .expect_err("precommit after abort");
        assert_eq!(
            error.to_string(),
            format!("cannot record precommitted for txn {t2}: it is already aborted")
        );
        assert_eq!(state(&store, t2).await, Some(StoredState::Aborted));
    });
}

#[test]
fn a_precommit_of_a_2pc_or_unknown_txn_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("participant.db");
    let (t1, t2) = (txn(1), txn(2));
    block_on(async {
        let (store, mut writer) = open(&path).await;
        writer
            .write(&[prepared(t1, vec![])])
            .await
            .expect("prepared");
        let error = writer
            .write(&[Record::PreCommitted { txn: t1 }])
            .await
            .expect_err("2pc precommit");
        assert!(matches!(error, StoreError::StateConflict { .. }), "{error}");
        let error = writer
            .write(&[Record::PreCommitted { txn: t2 }])
            .await
            .expect_err("unknown precommit");
        assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
        assert_eq!(state(&store, t1).await, Some(StoredState::Prepared));
    });
}

#[test]
fn a_read_only_vote_is_remembered_outside_the_txn_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("participant.db");
    let (t1, t2) = (txn(1), txn(2));
    let read_only = Record::ReadOnly {
        txn: t1,
        protocol: Protocol::TwoPhase,
        coordinator: COORDINATOR,
        keys: vec!["a".to_string(), "b".to_string()],
        hold_ms: 600_000,
    };
    // A hold of 0 ms is over when written: recovery does not return it.
    let over = Record::ReadOnly {
        txn: t2,
        protocol: Protocol::TwoPhase,
        coordinator: COORDINATOR,
        keys: vec!["a".to_string()],
        hold_ms: 0,
    };
    block_on(async {
        let (store, mut writer) = open(&path).await;
        writer
            .write(&[read_only.clone(), read_only, over])
            .await
            .expect("read-only twice is a no-op");
        writer.close().await.expect("close writer");
        store.close().await;

        let (store, _writer) = open(&path).await;
        assert_eq!(
            store.txn(t1).await.expect("txn"),
            Some(StoredTxn {
                txn: t1,
                protocol: Protocol::TwoPhase,
                coordinator: COORDINATOR,
                state: StoredState::ReadOnly,
                reason: None,
                entries: vec![],
                participants: vec![],
            })
        );
        assert_eq!(store.txn_counts().await.expect("counts"), vec![]);
        assert_eq!(store.in_doubt_txns().await.expect("recover"), vec![]);
        // The hold survives the reopen, with its keys and a deadline by the wall clock.
        let (holds, wall_ms) = store.read_holds().await.expect("read holds");
        assert_eq!(holds.len(), 1, "{holds:?}");
        let hold = &holds[0];
        assert_eq!((hold.txn, hold.hold_ms), (t1, 600_000));
        assert_eq!(hold.keys, vec!["a".to_string(), "b".to_string()]);
        assert!(hold.until_wall_ms > wall_ms && hold.until_wall_ms <= wall_ms + 600_000);
    });
}

#[test]
fn a_write_reports_every_key_it_changed_with_its_value_afterwards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("participant.db");
    let (t1, t2, t3) = (txn(1), txn(2), txn(3));
    block_on(async {
        let (store, mut writer) = open(&path).await;
        seed(&mut writer).await;
        writer
            .write(&[prepared(
                t1,
                vec![
                    entry(0, "a", OpKind::Add, int(1), int(5)),
                    entry(1, "b", OpKind::Get, text("x"), text("x")),
                ],
            )])
            .await
            .expect("prepare t1");
        // t1 commits from an earlier batch; t2 and t3 are prepared and decided in this
        // one, and t3 writes `a` after t1: the report holds what the file holds.
        let changes = writer
            .write(&[
                Record::Committed { txn: t1 },
                prepared(t2, vec![entry(0, "b", OpKind::Delete, text("x"), None)]),
                Record::Committed { txn: t2 },
                prepared(t3, vec![entry(0, "a", OpKind::Put, int(5), int(9))]),
                Record::Committed { txn: t3 },
            ])
            .await
            .expect("commit");
        assert_eq!(
            changes,
            vec![("a".to_string(), int(9)), ("b".to_string(), None)]
        );
        assert_eq!(values(&store, &["a", "b"]).await, vec![int(9), None]);
        // A batch that changes no data reports nothing.
        let changes = writer
            .write(&[Record::Committed { txn: t1 }, aborted(txn(4), "no")])
            .await
            .expect("repeat");
        assert!(changes.is_empty());
        writer.close().await.expect("close writer");
        store.close().await;
    });
}
