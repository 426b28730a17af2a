//! Store tests on a real file: durability across close/reopen, recovery until ended, errors.

use uuid::Uuid;
use wire::{Decision, NodeId, Protocol, TxnId};

use super::*;
use crate::shell::runtime::block_on;

fn txn_id(i: u128) -> TxnId {
    TxnId(Uuid::from_u128(i))
}

fn decided(i: u128, participants: &[u32]) -> Record {
    Record::Decided {
        txn: txn_id(i),
        protocol: Protocol::TwoPhase,
        decision: Decision::Commit,
        participants: participants.iter().map(|&p| NodeId(p)).collect(),
    }
}

fn recovered(i: u128, participants: &[u32]) -> RecoveredTxn {
    RecoveredTxn {
        txn: txn_id(i),
        protocol: Protocol::TwoPhase,
        participants: participants.iter().map(|&p| NodeId(p)).collect(),
    }
}

#[test]
fn a_commit_survives_reopen_and_is_recovered_until_ended() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("coordinator.db");
    block_on(async {
        let mut store = Store::open(&path).await.expect("open");
        assert_eq!(store.recover().await.expect("recover"), vec![]);
        // One group commit with two decisions.
        store
            .append(&[(Lsn(1), decided(1, &[1, 2])), (Lsn(2), decided(2, &[3]))])
            .await
            .expect("append");
        store.close().await;

        let mut store = Store::open(&path).await.expect("reopen");
        assert_eq!(
            store.recover().await.expect("recover"),
            vec![recovered(1, &[1, 2]), recovered(2, &[3])]
        );
        store
            .append(&[(Lsn(3), Record::Ended { txn: txn_id(1) })])
            .await
            .expect("append end");
        store.close().await;

        let mut store = Store::open(&path).await.expect("reopen again");
        assert_eq!(
            store.recover().await.expect("recover"),
            vec![recovered(2, &[3])]
        );
        store.close().await;
    });
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![b'x'; 4096]).expect("write garbage");
    let error = block_on(Store::open(&path)).expect_err("garbage must not open");
    let text = error.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("not a database"), "{text}");
}

#[test]
fn a_missing_directory_is_a_clear_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("no-such-dir").join("coordinator.db");
    let error = block_on(Store::open(&path)).expect_err("must not open");
    let text = error.to_string();
    assert!(text.starts_with("cannot open decision log"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
}

#[test]
fn a_duplicate_decision_fails_the_whole_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("coordinator.db");
    block_on(async {
        let mut store = Store::open(&path).await.expect("open");
        store
            .append(&[(Lsn(1), decided(1, &[1]))])
            .await
            .expect("append");
        let result = store
            .append(&[(Lsn(2), decided(2, &[1])), (Lsn(3), decided(1, &[1]))])
            .await;
        assert!(
            matches!(result, Err(StoreError::Write { .. })),
            "{result:?}"
        );
        // All or nothing: txn 2 from the failed batch is not there.
        assert_eq!(
            store.recover().await.expect("recover"),
            vec![recovered(1, &[1])]
        );
    });
}
