//! 2PC with real processes: a coordinator and three participants on loopback, checked
//! with SQL on every participant's SQLite file, including SIGKILL and crash points.

use std::time::Duration;

use tests::{Cluster, describe, txn_id_of};

const BALANCES: &str = "SELECT key, value FROM kv WHERE key IN ('a', 'b', 'c') ORDER BY key";

/// Seeds a=100 on participant 1, b=100 on participant 2, c=100 on participant 3.
fn seed(cluster: &Cluster) {
    let output = cluster.submit(&["1:put a 100", "2:put b 100", "3:put c 100"]);
    assert!(
        output.status.success(),
        "seeding failed: {}",
        describe(&output)
    );
}

fn state_sql(txn: &str) -> String {
    format!("SELECT state FROM txn WHERE txn_id = '{txn}'")
}

/// `query` wants `&'static str`: tests leak their few dynamic queries.
fn leak(sql: String) -> &'static str {
    Box::leak(sql.into_boxed_str())
}

#[test]
fn transfer_commits_on_every_participant() {
    let cluster = Cluster::start(3, &[], &[]);
    cluster.wait_all_connected();
    seed(&cluster);

    let output = cluster.submit(&["1:add a -30 min 0", "2:add b 30", "3:get c"]);
    assert!(
        output.status.success(),
        "transfer failed: {}",
        describe(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("committed"), "{}", describe(&output));
    assert!(
        stdout.contains("100"),
        "the read of c is printed: {}",
        describe(&output)
    );
    let txn = txn_id_of(&output);

    cluster.wait_for(1, BALANCES, &[&["a", "70"]]);
    cluster.wait_for(2, BALANCES, &[&["b", "130"]]);
    cluster.wait_for(3, BALANCES, &[&["c", "100"]]);
    let state = leak(state_sql(&txn));
    cluster.wait_for(1, state, &[&["committed"]]);
    cluster.wait_for(2, state, &[&["committed"]]);
    // The read-only participant left the protocol after its vote: no record there.
    assert_eq!(cluster.query(3, state), Vec::<Vec<String>>::new());
    // The undo/redo images are in the log for anyone to read.
    let log = leak(format!(
        "SELECT key, op, undo_value, redo_value FROM txn_log WHERE txn_id = '{txn}'"
    ));
    assert_eq!(cluster.query(1, log), vec![vec!["a", "add", "100", "70"]]);
}

#[test]
fn no_vote_aborts_everywhere() {
    let cluster = Cluster::start(3, &[], &[]);
    cluster.wait_all_connected();
    seed(&cluster);

    let output = cluster.submit(&["1:add a -500 min 0", "2:add b 500", "3:add c 1"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("aborted"), "{}", describe(&output));
    let txn = txn_id_of(&output);

    let state = leak(state_sql(&txn));
    for id in 1..=3 {
        cluster.wait_for(id, state, &[&["aborted"]]);
        cluster.wait_for(id, "SELECT count(*) FROM in_doubt", &[&["0"]]);
    }
    cluster.wait_for(1, BALANCES, &[&["a", "100"]]);
    cluster.wait_for(2, BALANCES, &[&["b", "100"]]);
    cluster.wait_for(3, BALANCES, &[&["c", "100"]]);
    // The NO voter recorded why.
    let reason = leak(format!(
        "SELECT reason LIKE '%min%' FROM txn WHERE txn_id = '{txn}'"
    ));
    assert_eq!(cluster.query(1, reason), vec![vec!["1"]]);
}

#[test]
fn participant_crash_after_prepare_logged_restarts_and_aborts_with_the_others() {
    let mut cluster = Cluster::start(3, &[(2, "participant.after_prepare_logged")], &[]);
    cluster.wait_all_connected();
    // Seeding touches participant 2 with a write, which would hit its crash point: seed
    // only 1 and 3 here.
    let output = cluster.submit(&["1:put a 100", "3:put c 100"]);
    assert!(output.status.success(), "{}", describe(&output));

    let output = cluster.submit(&["1:add a -10 min 0", "2:add b 10", "3:add c 0"]);
    assert_ne!(output.status.code(), Some(0), "{}", describe(&output));
    let txn = txn_id_of(&output);
    let crashed = cluster.participants[1].take().expect("participant 2");
    assert!(!tests::wait_exit(&crashed, Duration::from_secs(30)).success());

    // Durable before the vote: participant 2 holds the prepared record and is in doubt.
    let state = leak(state_sql(&txn));
    assert_eq!(cluster.query(2, state), vec![vec!["prepared"]]);
    assert_eq!(
        cluster.query(2, "SELECT count(*) FROM in_doubt"),
        vec![vec!["1"]]
    );

    cluster.restart_participant(2, &[]);
    for id in 1..=3 {
        cluster.wait_for(id, state, &[&["aborted"]]);
    }
    cluster.wait_for(2, "SELECT count(*) FROM in_doubt", &[&["0"]]);
    cluster.wait_for(1, BALANCES, &[&["a", "100"]]);
    assert_eq!(cluster.query(2, BALANCES), Vec::<Vec<String>>::new());
}

#[test]
fn participant_killed_in_doubt_learns_commit_after_restart() {
    // The coordinator dies right after its commit decision is durable, before any Commit
    // is sent: every participant voted YES and is in doubt (2PC blocks here).
    let mut cluster = Cluster::start(3, &[], &[]);
    cluster.wait_all_connected();
    seed(&cluster);
    cluster.start_coordinator(&["coordinator.after_commit_logged"]);
    cluster.wait_all_connected();

    let output = cluster.submit(&["1:add a -40 min 0", "2:add b 25", "3:add c 15"]);
    assert_ne!(
        output.status.code(),
        Some(0),
        "the client cannot know: {}",
        describe(&output)
    );
    let crashed = cluster.coordinator.take().expect("coordinator");
    assert!(!tests::wait_exit(&crashed, Duration::from_secs(30)).success());

    // Blocked, visibly: every participant shows the transaction in doubt.
    for id in 1..=3 {
        cluster.wait_for(id, "SELECT state FROM in_doubt", &[&["prepared"]]);
    }
    // SIGKILL participant 2 while it is in doubt, restart it, then bring the coordinator back.
    cluster.participants[1]
        .take()
        .expect("participant 2")
        .kill();
    cluster.restart_participant(2, &[]);
    cluster.start_coordinator(&[]);

    for id in 1..=3 {
        cluster.wait_for(id, "SELECT count(*) FROM in_doubt", &[&["0"]]);
        cluster.wait_for(
            id,
            "SELECT count(*) FROM txn WHERE state = 'committed'",
            &[&["2"]],
        );
    }
    cluster.wait_for(1, BALANCES, &[&["a", "60"]]);
    cluster.wait_for(2, BALANCES, &[&["b", "125"]]);
    cluster.wait_for(3, BALANCES, &[&["c", "115"]]);
}

#[test]
fn participant_crash_after_commit_applied_acks_after_restart() {
    let mut cluster = Cluster::start(3, &[(3, "participant.after_commit_applied")], &[]);
    cluster.wait_all_connected();
    let output = cluster.submit(&["1:put a 100", "2:put b 100"]);
    assert!(output.status.success(), "{}", describe(&output));

    let output = cluster.submit(&["1:add a -1 min 0", "2:add b 1", "3:put c 7"]);
    let txn = txn_id_of(&output);
    let crashed = cluster.participants[2].take().expect("participant 3");
    assert!(!tests::wait_exit(&crashed, Duration::from_secs(30)).success());
    let state = leak(state_sql(&txn));
    // The commit was applied durably before the crash.
    assert_eq!(cluster.query(3, state), vec![vec!["committed"]]);

    cluster.restart_participant(3, &[]);
    cluster.wait_all_connected();
    for id in 1..=3 {
        cluster.wait_for(id, state, &[&["committed"]]);
    }
    cluster.wait_for(3, BALANCES, &[&["c", "7"]]);
    // The coordinator got its ack on the re-sent Commit and ended the transaction.
    let ended = leak(format!(
        "SELECT ended_at IS NOT NULL FROM decision WHERE txn_id = '{txn}'"
    ));
    let coordinator_db = cluster.dir.path().join("coordinator.db");
    let deadline = std::time::Instant::now() + tests::CONVERGE_TIMEOUT;
    while tests::query_db(&coordinator_db, ended) != vec![vec!["1".to_string()]] {
        assert!(std::time::Instant::now() < deadline, "decision never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
}
