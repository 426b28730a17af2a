//! Bad command lines and an unopenable database: one clear error, the right exit code.

use super::support::run;

const SERVE: &[&str] = &[
    "serve",
    "--id",
    "9",
    "--listen",
    "127.0.0.1:0",
    "--cluster",
    "t",
];

fn serve_with(extra: &[&str]) -> Vec<String> {
    SERVE.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn run_owned(args: &[String]) -> super::support::Finished {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = run(&[
        "status",
        "--addr",
        "127.0.0.1:1",
        "--cluster",
        "t",
        "--colour",
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("unexpected argument '--colour'"),
        "{out:?}"
    );
}

#[test]
fn bad_op_syntax_is_a_usage_error_naming_the_op() {
    let out = run(&[
        "submit",
        "--addr",
        "127.0.0.1:1",
        "--cluster",
        "t",
        "1:get a",
        "1:ad k 1",
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("op 2: '1:ad k 1': unknown operation 'ad', expected get|put|del|add"),
        "{out:?}"
    );
}

#[test]
fn bad_participant_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("c.db").display().to_string();
    let out = run_owned(&serve_with(&[
        "--db",
        &db,
        "--participant",
        "1:127.0.0.1:7001",
    ]));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("expected ID=ADDR, e.g. 1=127.0.0.1:7001"),
        "{out:?}"
    );
}

#[test]
fn participant_given_twice_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("c.db").display().to_string();
    let out = run_owned(&serve_with(&[
        "--db",
        &db,
        "--participant",
        "1=127.0.0.1:7001",
        "--participant",
        "1=127.0.0.1:7002",
    ]));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("participant 1 is given twice"),
        "{out:?}"
    );
}

#[test]
fn unopenable_db_is_a_clear_error_with_exit_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let garbage = dir.path().join("garbage.db");
    std::fs::write(
        &garbage,
        b"this is not a database, just text long enough to matter",
    )
    .expect("write");
    let missing = dir.path().join("missing");
    let missing_db = missing.join("c.db");
    let expected = [
        format!("error: cannot open decision log {}", garbage.display()),
        format!(
            "error: cannot create decision log {}: directory {} does not exist",
            missing_db.display(),
            missing.display()
        ),
    ];
    for (db, expected) in [garbage, missing_db].into_iter().zip(expected) {
        let db = db.display().to_string();
        let out = run_owned(&serve_with(&[
            "--db",
            &db,
            "--participant",
            "1=127.0.0.1:7001",
        ]));
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stderr.contains(&expected), "{out:?}");
        assert!(!out.stdout.contains("LISTENING"), "{out:?}");
    }
}

#[test]
fn unreachable_coordinator_exits_4() {
    // Port 1 on loopback: nothing listens there in a test sandbox.
    let out = run(&[
        "submit",
        "--addr",
        "127.0.0.1:1",
        "--cluster",
        "t",
        "1:get a",
    ]);
    assert_eq!(out.code, Some(4), "nothing was sent: {out:?}");
    assert!(out.stderr.contains("cannot reach 127.0.0.1:1"), "{out:?}");
}

#[test]
fn timeouts_shorter_than_three_heartbeats_are_a_usage_error_naming_the_setting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("c.db").display().to_string();
    let out = run_owned(&serve_with(&[
        "--db",
        &db,
        "--participant",
        "1=127.0.0.1:7001",
        "--heartbeat-ms",
        "200",
        "--precommit-ack-timeout-ms",
        "500",
    ]));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains(
            "precommit_ack_timeout_ms 500 ms must be at least 3 heartbeats of 200 ms (600 ms)"
        ),
        "{out:?}"
    );
    assert!(!out.stdout.contains("LISTENING"), "{out:?}");
}

#[test]
fn unknown_protocol_is_a_usage_error_listing_both() {
    let out = run(&[
        "submit",
        "--addr",
        "127.0.0.1:1",
        "--cluster",
        "t",
        "--protocol",
        "4pc",
        "1:get a",
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("unknown protocol '4pc', expected 2pc or 3pc"),
        "{out:?}"
    );
}
