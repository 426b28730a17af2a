//! Heuristic decisions and the operator's lookups, on real SQLite files.

use uuid::Uuid;
use wire::runtime::block_on;
use wire::{Decision, NodeId, Protocol, TxnId, Value};

use super::admin::{DbLock, LockError, TxnLookup};
use super::{Store, StoreError};
use crate::core::{LogEntry, OpKind, Record, StoredState};

fn txn(n: u128) -> TxnId {
    TxnId(Uuid::from_u128(n))
}

fn prepared(txn: TxnId, key: &str, value: i64) -> Record {
    Record::Prepared {
        txn,
        protocol: Protocol::TwoPhase,
        coordinator: NodeId(100),
        entries: vec![LogEntry {
            seq: 0,
            key: key.to_string(),
            op: OpKind::Put,
            undo: None,
            redo: Some(Value::Int(value)),
        }],
        participants: vec![NodeId(1), NodeId(2)],
    }
}

fn heuristic(txn: TxnId, decision: Decision) -> Record {
    Record::Heuristic {
        txn,
        decision,
        reason: "by hand".to_string(),
    }
}

#[test]
fn a_heuristic_commit_applies_the_redo_images_and_an_abort_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.db");
    block_on(async {
        let store = Store::open(&path).await.expect("open");
        let mut writer = store.writer().await.expect("writer");
        let (t1, t2) = (txn(1), txn(2));
        writer
            .write(&[prepared(t1, "a", 5), prepared(t2, "b", 7)])
            .await
            .expect("prepare");
        let entries = store.in_doubt_entries().await.expect("in doubt");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].keys.as_deref(), Some("a"));
        assert_eq!(entries[0].participants.as_deref(), Some("1,2"));
        assert_eq!(entries[0].coordinator, 100);

        let changed = writer
            .write(&[
                heuristic(t1, Decision::Commit),
                heuristic(t2, Decision::Abort),
            ])
            .await
            .expect("resolve");
        assert_eq!(changed, vec![("a".to_string(), Some(Value::Int(5)))]);
        let values = store.values(["a", "b"]).await.expect("values");
        assert_eq!(values["a"], Some(Value::Int(5)));
        assert_eq!(values["b"], None);
        assert_eq!(
            store.txn(t1).await.expect("t1").map(|t| t.state),
            Some(StoredState::HeuristicCommit)
        );
        assert_eq!(
            store.txn(t2).await.expect("t2").map(|t| t.reason),
            Some(Some("by hand".to_string()))
        );
        // Nothing is left to relock on restart.
        assert!(store.in_doubt_txns().await.expect("recover").is_empty());

        // The same decision again is a no-op; anything else is refused and writes nothing.
        writer
            .write(&[heuristic(t1, Decision::Commit)])
            .await
            .expect("repeat");
        for record in [
            heuristic(t1, Decision::Abort),
            Record::Committed { txn: t2 },
            Record::Aborted {
                txn: t1,
                protocol: Protocol::TwoPhase,
                coordinator: NodeId(100),
                reason: "late".to_string(),
            },
        ] {
            let refused = writer.write(&[record]).await;
            assert!(
                matches!(refused, Err(StoreError::StateConflict { .. })),
                "{refused:?}"
            );
        }
        assert!(matches!(
            writer.write(&[heuristic(txn(9), Decision::Abort)]).await,
            Err(StoreError::Corrupt(_))
        ));
        writer.close().await.expect("close writer");
        store.close().await;

        // The read-only view sees what was written.
        let read_only = Store::open_read_only(&path).await.expect("read-only");
        match read_only.lookup(t1).await.expect("lookup") {
            TxnLookup::Voted(row) => {
                assert_eq!(row.state, "heuristic_commit");
                assert_eq!(row.log.len(), 1);
                assert!(row.decided_at.is_some());
            }
            other => panic!("expected a txn row, got {other:?}"),
        }
        assert_eq!(
            read_only.lookup(txn(9)).await.expect("lookup"),
            TxnLookup::Unknown
        );
        read_only.close().await;
    });
}

#[test]
fn a_database_is_locked_by_one_process_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.db");
    let held = DbLock::acquire(&path).expect("first lock");
    // Another open file description conflicts like another process would.
    assert!(matches!(
        DbLock::acquire(&path),
        Err(LockError::InUse { .. })
    ));
    drop(held);
    DbLock::acquire(&path).expect("free again");
}

#[test]
fn a_read_only_open_refuses_what_is_not_a_participant_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.db");
    std::fs::write(&path, b"").expect("empty file");
    let refused = block_on(Store::open_read_only(&path));
    assert!(
        matches!(refused, Err(StoreError::ForeignSchema { .. })),
        "{refused:?}"
    );
}
