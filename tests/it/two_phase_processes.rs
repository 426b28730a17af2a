//! 2PC with real processes: a coordinator and three participants on loopback, checked
//! with SQL on every participant's SQLite file and on what the client prints. Crashes,
//! SIGKILL and the NO vote are scenario files (`tests/scenarios/`, run by `scenarios.rs`).

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
