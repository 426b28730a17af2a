//! 3PC, failure detection and the participant mesh with real processes: coordinator
//! crashes at each step of the commit, a frozen participant, and 2PC in-doubt
//! participants resolving over the mesh. Outcomes are checked with SQL on every file.

use std::time::{Duration, Instant};

use tests::{CONVERGE_TIMEOUT, Cluster, describe, txn_id_of};

const BALANCES: &str = "SELECT key, value FROM kv WHERE key IN ('a', 'b', 'c') ORDER BY key";
const EXITED_IN: Duration = Duration::from_secs(30);
const TRANSFER: [&str; 3] = ["1:add a -30 min 0", "2:add b 20", "3:add c 10"];

fn seed(cluster: &Cluster) {
    let output = cluster.submit(&["1:put a 100", "2:put b 100", "3:put c 100"]);
    assert!(
        output.status.success(),
        "seeding failed: {}",
        describe(&output)
    );
}

fn state_sql(txn: &str) -> &'static str {
    Box::leak(format!("SELECT state FROM txn WHERE txn_id = '{txn}'").into_boxed_str())
}

/// Waits until every participant has the transaction in the same final state; returns it.
fn one_outcome(cluster: &Cluster, txn: &str) -> String {
    let sql = state_sql(txn);
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let states: Vec<Vec<Vec<String>>> = (1..=3).map(|id| cluster.query(id, sql)).collect();
        let finals: Vec<&str> = states
            .iter()
            .filter_map(|rows| rows.first().map(|row| row[0].as_str()))
            .filter(|state| *state == "committed" || *state == "aborted")
            .collect();
        if finals.len() == 3 {
            assert!(
                finals.iter().all(|state| *state == finals[0]),
                "split outcome: {states:?}"
            );
            return finals[0].to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no single outcome in time: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_balances(cluster: &Cluster, a: &str, b: &str, c: &str) {
    cluster.wait_for(1, BALANCES, &[&["a", a]]);
    cluster.wait_for(2, BALANCES, &[&["b", b]]);
    cluster.wait_for(3, BALANCES, &[&["c", c]]);
}

/// Starts a cluster whose coordinator dies at `crash_point`, seeds it, and submits one 3PC
/// transfer; returns the cluster (coordinator gone) and the transaction id.
fn three_phase_transfer_with_coordinator_crash(crash_point: &str) -> (Cluster, String) {
    let mut cluster = Cluster::start(3, &[], &[]);
    cluster.wait_all_connected();
    seed(&cluster);
    cluster.start_coordinator(&[crash_point]);
    cluster.wait_all_connected();
    let output = cluster.submit_with("3pc", &TRANSFER);
    assert_ne!(
        output.status.code(),
        Some(0),
        "the coordinator died: {}",
        describe(&output)
    );
    let txn = txn_id_of(&output);
    let coordinator = cluster.coordinator.take().expect("coordinator");
    assert!(
        !tests::wait_exit(&coordinator, EXITED_IN).success(),
        "crashed at {crash_point}"
    );
    (cluster, txn)
}

#[test]
fn three_phase_commits_across_participants() {
    let cluster = Cluster::start(3, &[], &[]);
    cluster.wait_all_connected();
    seed(&cluster);
    let output = cluster.submit_with("3pc", &TRANSFER);
    assert!(output.status.success(), "{}", describe(&output));
    let txn = txn_id_of(&output);
    assert_eq!(one_outcome(&cluster, &txn), "committed");
    assert_balances(&cluster, "70", "120", "110");
    let protocol =
        Box::leak(format!("SELECT protocol FROM txn WHERE txn_id = '{txn}'").into_boxed_str());
    assert_eq!(cluster.query(2, protocol), vec![vec!["3pc"]]);
}

#[test]
fn three_phase_coordinator_killed_after_first_precommit_reaches_one_outcome() {
    // One participant is precommitted, the others are still waiting: the card's timeout
    // rules alone would commit one and abort the others. The termination protocol makes
    // the precommitted one's state win.
    let (cluster, txn) =
        three_phase_transfer_with_coordinator_crash("coordinator.after_first_precommit_sent");
    assert_eq!(one_outcome(&cluster, &txn), "committed");
    assert_balances(&cluster, "70", "120", "110");
}

#[test]
fn three_phase_coordinator_killed_after_precommits_acked_commits_everywhere() {
    let (cluster, txn) =
        three_phase_transfer_with_coordinator_crash("coordinator.after_first_precommit_acked");
    assert_eq!(one_outcome(&cluster, &txn), "committed");
    assert_balances(&cluster, "70", "120", "110");
}

#[test]
fn three_phase_coordinator_killed_before_any_precommit_aborts_everywhere() {
    let (cluster, txn) =
        three_phase_transfer_with_coordinator_crash("coordinator.before_commit_logged");
    assert_eq!(one_outcome(&cluster, &txn), "aborted");
    assert_balances(&cluster, "100", "100", "100");
}

#[test]
fn frozen_participant_is_declared_dead_and_rejoins_after_sigcont() {
    let cluster = Cluster::start(3, &[], &[]);
    cluster.wait_all_connected();
    seed(&cluster);

    let frozen = cluster.participants[2].as_ref().expect("participant 3");
    tests::signal(frozen, "STOP");
    // A transaction that needs the frozen participant aborts because it is declared dead
    // (not because the vote timed out); the others keep committing meanwhile.
    let output = cluster.submit(&["1:add a -1 min 0", "3:add c 1"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("participant 3 is down"),
        "{}",
        describe(&output)
    );
    for _ in 0..5 {
        let output = cluster.submit(&["1:add a -1 min 0", "2:add b 1"]);
        assert!(output.status.success(), "{}", describe(&output));
    }
    cluster.wait_for(1, BALANCES, &[&["a", "95"]]);
    cluster.wait_for(2, BALANCES, &[&["b", "105"]]);

    tests::signal(frozen, "CONT");
    cluster.wait_all_connected();
    // The frozen participant may still read the Prepare that was buffered in its socket,
    // vote into a closed channel and be in doubt for a moment: it asks, learns abort
    // (presumed), and releases its locks.
    cluster.wait_for(3, "SELECT count(*) FROM in_doubt", &[&["0"]]);
    let output = cluster.submit(&["1:add a -5 min 0", "3:add c 5"]);
    assert!(output.status.success(), "{}", describe(&output));
    cluster.wait_for(3, BALANCES, &[&["c", "105"]]);
    for id in 1..=3 {
        cluster.wait_for(id, "SELECT count(*) FROM in_doubt", &[&["0"]]);
    }
    assert_balances(&cluster, "90", "105", "105");
}

#[test]
fn two_phase_in_doubt_participants_learn_commit_from_a_peer() {
    // The coordinator dies after one Commit left: the participant that got it commits, and
    // the in-doubt others learn the outcome from it over the mesh, with the coordinator down.
    let mut cluster = Cluster::start(3, &[], &[]);
    cluster.wait_all_connected();
    seed(&cluster);
    cluster.start_coordinator(&["coordinator.after_first_commit_sent"]);
    cluster.wait_all_connected();
    let output = cluster.submit(&TRANSFER);
    assert_ne!(output.status.code(), Some(0), "{}", describe(&output));
    let txn = txn_id_of(&output);
    let coordinator = cluster.coordinator.take().expect("coordinator");
    assert!(!tests::wait_exit(&coordinator, EXITED_IN).success());

    assert_eq!(one_outcome(&cluster, &txn), "committed");
    assert_balances(&cluster, "70", "120", "110");
}

#[test]
fn two_phase_in_doubt_participants_stay_blocked_until_the_coordinator_returns() {
    let mut cluster = Cluster::start(3, &[], &[]);
    cluster.wait_all_connected();
    seed(&cluster);
    cluster.start_coordinator(&["coordinator.after_commit_logged"]);
    cluster.wait_all_connected();
    let output = cluster.submit(&TRANSFER);
    let txn = txn_id_of(&output);
    let coordinator = cluster.coordinator.take().expect("coordinator");
    assert!(!tests::wait_exit(&coordinator, EXITED_IN).success());

    // Nobody got a Commit and every peer is in doubt too: nobody may decide. They stay
    // blocked, visibly, through several rounds of asking.
    for id in 1..=3 {
        cluster.wait_for(id, "SELECT state FROM in_doubt", &[&["prepared"]]);
    }
    std::thread::sleep(Duration::from_secs(2));
    for id in 1..=3 {
        assert_eq!(
            cluster.query(id, "SELECT state FROM in_doubt"),
            vec![vec!["prepared"]]
        );
    }

    cluster.start_coordinator(&[]);
    assert_eq!(one_outcome(&cluster, &txn), "committed");
    assert_balances(&cluster, "70", "120", "110");
}
