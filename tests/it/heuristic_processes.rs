//! Resolving by hand with real processes: a 2PC transaction left in doubt by a crashed
//! coordinator is listed, aborted by hand on one stopped participant and checked with SQL;
//! the restarted coordinator commits it elsewhere and records the heuristic hazard.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tests::{COORDINATOR_ID, Cluster, binary, describe, txn_id_of};

/// `query` wants `&'static str`: tests leak their few dynamic queries.
fn leak(sql: String) -> &'static str {
    Box::leak(sql.into_boxed_str())
}

/// Runs one of the binaries' admin commands to its end (each exits at once).
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(binary(program))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("run {program} {args:?}: {error}"))
}

fn path(db: &Path) -> &str {
    db.to_str().expect("utf-8 temp path")
}

#[test]
fn an_in_doubt_txn_resolved_by_hand_is_a_hazard_the_coordinator_records() {
    let mut cluster = Cluster::start(2, &[], &[]);
    cluster.wait_all_connected();
    let output = cluster.submit(&["1:put a 100", "2:put b 100"]);
    assert!(output.status.success(), "{}", describe(&output));
    // The coordinator dies with its commit durable and nothing sent: both are in doubt.
    cluster.start_coordinator(&["coordinator.after_commit_logged"]);
    cluster.wait_all_connected();
    let output = cluster.submit(&["1:add a -40 min 0", "2:add b 40"]);
    assert_ne!(output.status.code(), Some(0), "{}", describe(&output));
    let txn = txn_id_of(&output);
    let crashed = cluster.coordinator.take().expect("coordinator");
    assert!(!tests::wait_exit(&crashed, Duration::from_secs(30)).success());
    for id in 1..=2 {
        cluster.wait_for(id, "SELECT state FROM in_doubt", &[&["prepared"]]);
    }
    let (p1, p2) = (cluster.participant_db(1), cluster.participant_db(2));
    let coordinator_db = cluster.coordinator_db(COORDINATOR_ID);

    // The operator looks: the list names the txn, its keys and its coordinator.
    let listed = run("participant", &["in-doubt", "--db", path(&p2)]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{}", describe(&listed));
    assert!(text.contains(&txn) && text.contains("prepared"), "{text}");
    assert!(text.contains(" b") && text.contains("100"), "{text}");
    let looked_up = run("coordinator", &["txn", &txn, "--db", path(&coordinator_db)]);
    assert!(
        String::from_utf8_lossy(&looked_up.stdout).contains("decision      commit"),
        "{}",
        describe(&looked_up)
    );

    // A running participant's file is refused; a stopped one's is resolved.
    let refused = run(
        "participant",
        &["resolve", "--db", path(&p1), "--txn", &txn, "--abort"],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in use"),
        "{}",
        describe(&refused)
    );
    // Both stop: a running in-doubt participant asks its peers, and would follow the
    // one resolved by hand (a peer's outcome resolves a 2PC txn in doubt).
    for slot in 0..2 {
        cluster.participants[slot]
            .take()
            .expect("participant")
            .kill();
    }
    let resolved = run(
        "participant",
        &[
            "resolve",
            "--db",
            path(&p2),
            "--txn",
            &txn,
            "--abort",
            "--note",
            "drill",
        ],
    );
    assert!(resolved.status.success(), "{}", describe(&resolved));
    let state = leak(format!(
        "SELECT state, reason LIKE '%by hand%drill', decided_at IS NOT NULL \
         FROM txn WHERE txn_id = '{txn}'"
    ));
    assert_eq!(
        cluster.query(2, state),
        vec![vec!["heuristic_abort", "1", "1"]]
    );
    assert_eq!(
        cluster.query(2, "SELECT count(*) FROM in_doubt"),
        vec![vec!["0"]]
    );
    assert_eq!(
        cluster.query(2, "SELECT value FROM kv WHERE key = 'b'"),
        vec![vec!["100"]]
    );
    // Once resolved there is nothing left to resolve.
    let again = run(
        "participant",
        &["resolve", "--db", path(&p2), "--txn", &txn, "--commit"],
    );
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));

    // Back up: the coordinator re-sends its commit; participant 2 answers with what was
    // done by hand, and the contradiction is recorded.
    cluster.restart_participant(2, &[]);
    cluster.start_coordinator(&[]);
    let hazard = "SELECT participant, decision, outcome FROM heuristic_hazard";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tests::query_db(&coordinator_db, hazard) != vec![vec!["2", "commit", "heuristic_abort"]] {
        assert!(
            std::time::Instant::now() < deadline,
            "no hazard recorded: {:?}",
            tests::query_db(&coordinator_db, hazard)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Participant 1 restarts in doubt and learns an outcome: the coordinator's commit, or
    // the abort its resolved peer reports (whichever answers first; a peer's outcome
    // resolves a 2PC txn in doubt). Either way it is decided and the commit ends.
    cluster.restart_participant(1, &[]);
    cluster.wait_for(1, "SELECT count(*) FROM in_doubt", &[&["0"]]);
    let p1_state = cluster.query(1, state);
    match p1_state[0][0].as_str() {
        "committed" => cluster.wait_for(1, "SELECT value FROM kv WHERE key = 'a'", &[&["60"]]),
        "aborted" => cluster.wait_for(1, "SELECT value FROM kv WHERE key = 'a'", &[&["100"]]),
        _ => panic!("participant 1 is not decided: {p1_state:?}"),
    }
    cluster.wait_decisions_ended();
    // Participant 2 never applied the commit: its data stays as the operator left it, and
    // the transaction is not atomic any more. That is the risk the hazard reports.
    assert_eq!(
        cluster.query(2, "SELECT value FROM kv WHERE key = 'b'"),
        vec![vec!["100"]]
    );
    let looked_up = run("coordinator", &["txn", &txn, "--db", path(&coordinator_db)]);
    assert!(
        String::from_utf8_lossy(&looked_up.stdout).contains("HEURISTIC HAZARD: participant 2"),
        "{}",
        describe(&looked_up)
    );
    let addr = cluster.coordinator_addr().to_string();
    let status = run(
        "coordinator",
        &["status", "--addr", &addr, "--cluster", tests::CLUSTER],
    );
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("HEURISTIC HAZARDS since start: 1"),
        "{}",
        describe(&status)
    );
}
