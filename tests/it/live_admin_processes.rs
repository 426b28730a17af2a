//! The operator's live commands with real processes: a 2PC transaction left in doubt by a
//! crashed coordinator is listed and looked up through a running participant (the same
//! output as from its file), aborted by hand in it (durable, locks released, repeats
//! answered alike), and the restarted coordinator records the heuristic hazard.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tests::{CLUSTER, COORDINATOR_ID, Cluster, binary, describe, txn_id_of};

/// `query` wants `&'static str`: tests leak their few dynamic queries.
fn leak(sql: String) -> &'static str {
    Box::leak(sql.into_boxed_str())
}

fn participant(args: &[&str]) -> Output {
    Command::new(binary("participant"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("run participant {args:?}: {error}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The in-doubt list without its age column (it ticks between two runs).
fn without_age(list: &str) -> Vec<Vec<String>> {
    list.lines()
        .map(|line| {
            let mut columns: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            if columns.len() >= 7 {
                columns.remove(3);
            }
            columns
        })
        .collect()
}

#[test]
fn an_in_doubt_txn_is_listed_and_aborted_by_hand_in_a_running_participant() {
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
    cluster.wait_for(2, "SELECT state FROM in_doubt", &[&["prepared"]]);
    let addr = cluster.participant_addrs()[1].to_string();
    let db = cluster.participant_db(2);
    let db = db.to_str().expect("utf-8 temp path");
    let live = ["--addr", addr.as_str(), "--cluster", CLUSTER];

    // Asked live, the node answers what its file says, printed alike.
    let listed = participant(&[&["in-doubt"][..], &live].concat());
    assert!(listed.status.success(), "{}", describe(&listed));
    let text = stdout(&listed);
    assert!(text.contains(&txn) && text.contains("prepared"), "{text}");
    let from_file = participant(&["in-doubt", "--db", db]);
    assert_eq!(without_age(&text), without_age(&stdout(&from_file)));
    let looked_up = participant(&[&["txn", txn.as_str()][..], &live].concat());
    assert!(looked_up.status.success(), "{}", describe(&looked_up));
    assert!(
        stdout(&looked_up).contains("prepared (in doubt)"),
        "{}",
        describe(&looked_up)
    );
    assert_eq!(
        stdout(&looked_up),
        stdout(&participant(&["txn", &txn, "--db", db]))
    );

    // Resolved by hand in the running node: durable, and its locks gone.
    let resolve = |decision: &str| {
        let args = [
            &[
                "resolve",
                "--txn",
                txn.as_str(),
                decision,
                "--note",
                "drill",
            ][..],
            &live,
        ];
        participant(&args.concat())
    };
    let resolved = resolve("--abort");
    assert!(resolved.status.success(), "{}", describe(&resolved));
    assert!(
        stdout(&resolved).contains("heuristic_abort"),
        "{}",
        describe(&resolved)
    );
    let state = leak(format!(
        "SELECT state, reason LIKE '%by hand%drill', decided_at IS NOT NULL \
         FROM txn WHERE txn_id = '{txn}'"
    ));
    assert_eq!(
        cluster.query(2, state),
        vec![vec!["heuristic_abort", "1", "1"]]
    );
    assert_eq!(
        cluster.query(2, "SELECT value FROM kv WHERE key = 'b'"),
        vec![vec!["100"]]
    );
    let status = participant(&[&["status"][..], &live].concat());
    assert!(
        stdout(&status).contains("locks held: 0"),
        "{}",
        describe(&status)
    );
    let listed = participant(&[&["in-doubt"][..], &live].concat());
    assert_eq!(stdout(&listed), "no transaction is in doubt\n");
    // A repeat answers the same; the opposite decision, or an unknown txn, is refused.
    let again = resolve("--abort");
    assert_eq!(stdout(&again), stdout(&resolved), "{}", describe(&again));
    let opposite = resolve("--commit");
    assert_eq!(opposite.status.code(), Some(1), "{}", describe(&opposite));
    assert!(
        String::from_utf8_lossy(&opposite.stderr).contains("opposite decision is refused"),
        "{}",
        describe(&opposite)
    );
    let unknown_id = "01900000-0000-7000-8000-000000000001";
    let unknown = participant(&[&["resolve", "--txn", unknown_id, "--commit"][..], &live].concat());
    assert_eq!(unknown.status.code(), Some(1), "{}", describe(&unknown));
    // The offline resolve still refuses the running node's file.
    let offline = participant(&["resolve", "--db", db, "--txn", &txn, "--abort"]);
    assert_eq!(offline.status.code(), Some(1), "{}", describe(&offline));

    // The coordinator comes back and re-sends its commit: participant 2 answers with
    // what was done by hand, and the contradiction is recorded as a hazard.
    cluster.start_coordinator(&[]);
    let coordinator_db = cluster.coordinator_db(COORDINATOR_ID);
    let hazard = "SELECT participant, decision, outcome FROM heuristic_hazard";
    let deadline = Instant::now() + Duration::from_secs(30);
    while tests::query_db(&coordinator_db, hazard) != vec![vec!["2", "commit", "heuristic_abort"]] {
        assert!(
            Instant::now() < deadline,
            "no hazard recorded: {:?}",
            tests::query_db(&coordinator_db, hazard)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Key b is free: a new txn on it commits.
    let output = cluster.submit(&["2:add b 1"]);
    assert!(output.status.success(), "{}", describe(&output));
    cluster.wait_for(2, "SELECT value FROM kv WHERE key = 'b'", &[&["101"]]);
}

#[test]
fn live_lookups_exit_like_status_on_a_wrong_cluster_or_no_node() {
    let cluster = Cluster::start(1, &[], &[]);
    let addr = cluster.participant_addrs()[0].to_string();
    let wrong = participant(&["in-doubt", "--addr", &addr, "--cluster", "other"]);
    assert_eq!(wrong.status.code(), Some(1), "{}", describe(&wrong));
    let nobody = tests::free_loopback_addr().to_string();
    let txn = "01900000-0000-7000-8000-000000000001";
    for args in [
        vec!["in-doubt", "--addr", &nobody, "--cluster", CLUSTER],
        vec!["txn", txn, "--addr", &nobody, "--cluster", CLUSTER],
        vec![
            "resolve",
            "--txn",
            txn,
            "--abort",
            "--addr",
            &nobody,
            "--cluster",
            CLUSTER,
        ],
    ] {
        let output = participant(&args);
        assert_eq!(
            output.status.code(),
            Some(4),
            "{args:?}: {}",
            describe(&output)
        );
    }
    // Neither a file nor a node, or a node without its cluster: usage errors.
    for args in [vec!["in-doubt"], vec!["in-doubt", "--addr", &addr]] {
        let output = participant(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            describe(&output)
        );
    }
    let unknown = participant(&["txn", txn, "--addr", &addr, "--cluster", CLUSTER]);
    assert!(unknown.status.success(), "{}", describe(&unknown));
    assert!(
        stdout(&unknown).contains("no record"),
        "{}",
        describe(&unknown)
    );
}
