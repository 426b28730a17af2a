//! Store tests on a real file: durability across close/reopen, recovery until ended, errors.

use uuid::Uuid;
use wire::{Decision, NodeId, Protocol, TxnId};

use super::*;
use wire::runtime::block_on;

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

fn precommit(i: u128, participants: &[u32]) -> Record {
    Record::Decided {
        txn: txn_id(i),
        protocol: Protocol::ThreePhase,
        decision: Decision::Commit,
        participants: participants.iter().map(|&p| NodeId(p)).collect(),
    }
}

/// `(protocol, decision, reason, ended)` of txn `i`'s row, as `sqlite3` would show it.
async fn row(store: &mut Store, i: u128) -> (String, String, Option<String>, bool) {
    let row = sqlx::query(
        "SELECT protocol, decision, reason, ended_at IS NOT NULL AS ended \
         FROM decision WHERE txn_id = ?1",
    )
    .bind(txn_id(i).to_string())
    .fetch_one(&mut store.conn)
    .await
    .expect("row");
    (
        row.get("protocol"),
        row.get("decision"),
        row.get("reason"),
        row.get("ended"),
    )
}

#[test]
fn a_precommit_is_recovered_as_three_phase_and_an_adopted_abort_ends_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("coordinator.db");
    let records = vec![
        precommit(1, &[1, 2]),
        decided(2, &[1]),
        precommit(3, &[2, 3]),
        Record::AbortAdopted {
            txn: txn_id(1),
            reason: "participant 2 aborted".to_string(),
        },
    ];
    block_on(async {
        let mut store = Store::open(&path).await.expect("open");
        let batch: Vec<(Lsn, Record)> = records
            .iter()
            .enumerate()
            .map(|(i, record)| (Lsn(i as u64 + 1), record.clone()))
            .collect();
        store.append(&batch).await.expect("append");
        store.close().await;

        let mut store = Store::open(&path).await.expect("reopen");
        let unfinished = store.recover().await.expect("recover");
        assert_eq!(
            unfinished,
            vec![
                recovered(2, &[1]),
                RecoveredTxn {
                    txn: txn_id(3),
                    protocol: Protocol::ThreePhase,
                    participants: vec![NodeId(2), NodeId(3)],
                },
            ]
        );
        // The store and the core's replay of the same records agree.
        assert_eq!(unfinished, crate::core::unfinished(&records));
        assert_eq!(
            row(&mut store, 1).await,
            (
                "3pc".to_string(),
                "abort".to_string(),
                Some("participant 2 aborted".to_string()),
                true
            )
        );
        assert_eq!(
            row(&mut store, 3).await,
            ("3pc".to_string(), "commit".to_string(), None, false)
        );
    });
}

#[test]
fn an_abort_can_be_adopted_only_for_an_unfinished_three_phase_commit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("coordinator.db");
    let adopt = |i: u128| Record::AbortAdopted {
        txn: txn_id(i),
        reason: "r".to_string(),
    };
    block_on(async {
        let mut store = Store::open(&path).await.expect("open");
        store
            .append(&[
                (Lsn(1), decided(1, &[1])),
                (Lsn(2), precommit(2, &[1])),
                (Lsn(3), Record::Ended { txn: txn_id(2) }),
                (Lsn(4), precommit(3, &[1])),
            ])
            .await
            .expect("append");
        // A 2PC commit, an ended 3PC commit, and no row at all: each fails its batch.
        for i in [1, 2, 9] {
            let result = store
                .append(&[(Lsn(5), adopt(3)), (Lsn(6), adopt(i))])
                .await;
            match result {
                Err(StoreError::NotUnfinished { txn, .. }) => assert_eq!(txn, txn_id(i)),
                other => panic!("txn {i}: expected NotUnfinished, got {other:?}"),
            }
        }
        // All or nothing: txn 3, adopted in each failed batch, is still a commit.
        assert_eq!(
            row(&mut store, 3).await,
            ("3pc".to_string(), "commit".to_string(), None, false)
        );
        assert_eq!(
            row(&mut store, 1).await,
            ("2pc".to_string(), "commit".to_string(), None, false)
        );
    });
}

#[test]
fn a_hazard_is_durable_once_and_the_lookup_shows_it_beside_the_decision() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("coordinator.db");
    let hazard = Record::Hazard {
        txn: txn_id(1),
        participant: NodeId(2),
        decision: Decision::Commit,
        outcome: wire::Outcome::HeuristicAborted,
    };
    block_on(async {
        let mut store = Store::open(&path).await.expect("open");
        store
            .append(&[(Lsn(1), decided(1, &[1, 2])), (Lsn(2), hazard.clone())])
            .await
            .expect("append");
        // Reported again after a re-sent commit: still one row.
        store
            .append(&[(Lsn(3), hazard), (Lsn(4), Record::Ended { txn: txn_id(1) })])
            .await
            .expect("append again");
        store.close().await;

        let mut store = Store::open_read_only(&path).await.expect("read-only");
        let found = store.lookup(txn_id(1)).await.expect("lookup");
        let decision = found.decision.expect("decision row");
        assert_eq!(decision.decision, "commit");
        assert_eq!(decision.participants, "1,2");
        assert!(decision.ended_at.is_some());
        assert_eq!(found.hazards.len(), 1);
        assert_eq!(found.hazards[0].participant, 2);
        assert_eq!(found.hazards[0].outcome, "heuristic_abort");
        let none = store.lookup(txn_id(9)).await.expect("lookup unknown");
        assert_eq!(none.decision, None);
        assert!(none.hazards.is_empty());
        store.close().await;
    });
}

#[test]
fn pruning_deletes_ended_decisions_below_the_horizon_and_never_unfinished_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("coordinator.db");
    block_on(async {
        let mut store = Store::open(&path).await.expect("open");
        store.limit_wal().await.expect("wal limit");
        store
            .append(&[
                (Lsn(1), decided(1, &[1])),
                (Lsn(2), decided(2, &[1])),
                (Lsn(3), decided(9, &[1])),
                (Lsn(4), Record::Ended { txn: txn_id(1) }),
                (Lsn(5), Record::Ended { txn: txn_id(9) }),
            ])
            .await
            .expect("append");
        // `ended_at` has millisecond resolution: let it fall behind "now".
        std::thread::sleep(Duration::from_millis(5));
        let horizon = wire::retention::Horizon::from_txn_id(txn_id(5));
        let within_window = store
            .prune(horizon, Duration::from_secs(3600), 10)
            .await
            .expect("prune");
        assert_eq!(within_window, 0);
        assert_eq!(
            store
                .prune(horizon, Duration::ZERO, 10)
                .await
                .expect("prune"),
            1
        );
        assert_eq!(
            store
                .prune(horizon, Duration::ZERO, 10)
                .await
                .expect("prune"),
            0
        );
        store.checkpoint().await.expect("checkpoint");
        // The unfinished commit is still recovered; the one above the horizon is kept.
        assert_eq!(
            store.recover().await.expect("recover"),
            vec![recovered(2, &[1])]
        );
        let figures = store.retention_figures().await.expect("figures");
        assert_eq!(figures.kept_decisions, 2);
        assert_eq!(figures.pruned_decisions, 1);
        assert_eq!(
            figures.oldest_kept.map(|(id, _)| id),
            Some(txn_id(2).to_string())
        );
        assert!(file_len(&path, false) > 0);
    });
}

async fn kept_decisions(store: &mut Store) -> i64 {
    store
        .retention_figures()
        .await
        .expect("figures")
        .kept_decisions
}

#[test]
fn kept_decisions_stay_exact_after_they_are_counted_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("c.db");
    block_on(async {
        let mut store = Store::open(&path).await.expect("open");
        store
            .append(&[(Lsn(1), decided(1, &[1])), (Lsn(2), decided(2, &[1]))])
            .await
            .expect("append");
        assert_eq!(kept_decisions(&mut store).await, 2);
        store
            .append(&[
                (Lsn(3), decided(3, &[1])),
                (Lsn(4), Record::Ended { txn: txn_id(1) }),
                (Lsn(5), Record::Ended { txn: txn_id(3) }),
            ])
            .await
            .expect("append");
        std::thread::sleep(Duration::from_millis(5));
        let horizon = wire::retention::Horizon::from_txn_id(txn_id(9));
        assert_eq!(
            store
                .prune(horizon, Duration::ZERO, 10)
                .await
                .expect("prune"),
            2
        );
        // A failed batch (a decision logged twice) adds nothing.
        assert!(store.append(&[(Lsn(6), decided(2, &[1]))]).await.is_err());
        let counted: i64 = sqlx::query_scalar("SELECT count(*) FROM decision")
            .fetch_one(&mut store.conn)
            .await
            .expect("count");
        assert_eq!(counted, 1);
        assert_eq!(kept_decisions(&mut store).await, counted);
    });
}
