//! Bad arguments and an unusable database: one clear error, a non-zero exit.

use std::process::Command;

use crate::process::{CLUSTER, run, serve};

#[test]
fn serve_without_required_args_is_a_usage_error() {
    let (status, stderr) = run(&["serve", "--id", "1"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");
}

#[test]
fn node_id_zero_and_unknown_crash_points_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("p.db");
    let db = db.to_str().expect("utf-8 path");
    let base = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        db,
        "--cluster",
        CLUSTER,
    ];

    let (status, stderr) = run(&[&base[..], &["--id", "0"]].concat());
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--id"), "{stderr}");

    let (status, stderr) = run(&[
        &base[..],
        &["--id", "1", "--crash-at", "participant.nowhere"],
    ]
    .concat());
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: unknown crash point 'participant.nowhere'"),
        "{stderr}"
    );

    let (status, stderr) = run(&[
        &base[..],
        &[
            "--id",
            "1",
            "--decision-query-backoff-min-ms",
            "900",
            "--decision-query-backoff-max-ms",
            "100",
        ],
    ]
    .concat());
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("decision_query_backoff_min_ms 900 exceeds"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("p.db").exists(),
        "config errors come before the store"
    );
}

#[test]
fn bad_peers_and_3pc_timings_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("p.db");
    let db = db.to_str().expect("utf-8 path");
    let base = [
        "serve",
        "--id",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--db",
        db,
        "--cluster",
        CLUSTER,
    ];
    let cases: [(&[&str], &str); 5] = [
        (&["--peer", "2"], "expected ID=ADDR"),
        (&["--peer", "0=127.0.0.1:1"], "peer id 0 is the clients' id"),
        (
            &["--peer", "1=127.0.0.1:1"],
            "--peer lists this participant's own id 1",
        ),
        (
            &["--peer", "2=127.0.0.1:1", "--peer", "2=127.0.0.1:2"],
            "--peer 2 is given more than once",
        ),
        (
            &[
                "--heartbeat-ms",
                "200",
                "--waiting-timeout-min-ms",
                "600",
                "--termination-round-ms",
                "500",
            ],
            "termination_round_ms 500 is shorter than 3 heartbeat intervals \
             (600 ms at 200 ms per heartbeat)",
        ),
    ];
    for (extra, expected) in cases {
        let (status, stderr) = run(&[&base[..], extra].concat());
        assert_eq!(status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
    }
    assert!(
        !dir.path().join("p.db").exists(),
        "config errors come before the store"
    );
}

#[test]
fn a_db_in_a_missing_directory_exits_1_naming_the_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing-dir");
    let db = missing.join("p.db");
    let db = db.to_str().expect("utf-8 path");
    let (status, stderr) = run(&[
        "serve",
        "--id",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--db",
        db,
        "--cluster",
        CLUSTER,
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: cannot create participant database {db}: directory {} does not exist",
            missing.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_db_file_that_is_not_sqlite_exits_1_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("p.db");
    std::fs::write(&db, "not a database\n".repeat(300)).expect("write garbage");
    let db = db.to_str().expect("utf-8 path");
    let (status, stderr) = run(&[
        "serve",
        "--id",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--db",
        db,
        "--cluster",
        CLUSTER,
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("error: cannot open participant database {db}: ")),
        "{stderr}"
    );
    assert!(stderr.contains("not a database"), "{stderr}");
}

#[test]
fn status_of_an_address_with_no_participant_exits_4() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let (status, stderr) = run(&[
        "status",
        "--addr",
        &addr.to_string(),
        "--cluster",
        CLUSTER,
        "--timeout-ms",
        "2000",
    ]);
    assert_eq!(status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!("error: cannot reach participant at {addr}")),
        "{stderr}"
    );
}

#[test]
fn sigterm_and_sigint_stop_a_serving_participant_promptly() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (n, signal) in ["-TERM", "-INT"].into_iter().enumerate() {
        let db = dir.path().join(format!("p{n}.db"));
        let mut serving = serve(1, &db, &[]);
        let sent = Command::new("kill")
            .args([signal, &serving.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let status = serving.child.wait();
        assert_eq!(status.code(), Some(0), "{signal}: {status:?}");
    }
}
