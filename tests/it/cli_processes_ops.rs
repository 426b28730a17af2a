//! The operator's side of the command lines, with real processes: options from a config
//! file and the environment, and the graceful stop on SIGTERM (exit status, its one log
//! line, a cleanly closed database, nothing lost across the restart).

use std::path::Path;
use std::time::Duration;

use cluster::{Launch, Node};
use tests::{CLUSTER, Cluster, binary, describe, free_loopback_addr, signal, wait_exit};

/// A graceful stop ends well within this (drain and writer bounds are 3 s and 5 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// SIGTERM, then the exit status and the log's lines containing `line`.
fn terminate(node: &Node, line: &str) -> (Option<i32>, Vec<String>) {
    signal(node, "TERM");
    let status = wait_exit(node, STOP_TIMEOUT);
    let log = std::fs::read_to_string(node.log().expect("node has a log")).expect("read log");
    let lines = log
        .lines()
        .filter(|text| text.contains(line))
        .map(str::to_string)
        .collect();
    (status.code(), lines)
}

/// The database's write-ahead log is empty or gone: everything is in the file itself.
fn assert_checkpointed(db: &Path) {
    let wal = db.with_file_name(format!(
        "{}-wal",
        db.file_name().expect("db file").to_string_lossy()
    ));
    let len = std::fs::metadata(&wal).map(|meta| meta.len()).unwrap_or(0);
    assert_eq!(
        len,
        0,
        "{} holds {len} bytes after a clean stop",
        wal.display()
    );
}

#[test]
fn sigterm_stops_coordinator_and_participant_cleanly_and_loses_nothing() {
    let mut cluster = Cluster::start(2, &[], &[]);
    cluster.wait_all_connected();
    let seeded = cluster.submit(&["1:put alice 100", "2:put bob 100"]);
    assert!(seeded.status.success(), "{}", describe(&seeded));
    let moved = cluster.submit(&["1:add alice -5 min 0", "2:add bob 5"]);
    assert!(moved.status.success(), "{}", describe(&moved));

    let coordinator = cluster.local.coordinator.as_ref().expect("coordinator");
    let (code, lines) = terminate(coordinator, "coordinator stopped:");
    assert_eq!(code, Some(0), "coordinator exit status after SIGTERM");
    assert_eq!(lines.len(), 1, "one stop line: {lines:?}");
    assert!(lines[0].contains("left_to_recovery=0"), "{lines:?}");
    assert_checkpointed(&cluster.coordinator_db(tests::COORDINATOR_ID));

    let participant = cluster.local.participants[0]
        .as_ref()
        .expect("participant 1");
    let (code, lines) = terminate(participant, "participant stopped:");
    assert_eq!(code, Some(0), "participant exit status after SIGTERM");
    assert_eq!(lines.len(), 1, "one stop line: {lines:?}");
    assert_checkpointed(&cluster.participant_db(1));
    cluster.wait_for(1, "SELECT value FROM kv WHERE key = 'alice'", &[&["95"]]);

    // Both come back on their files and carry on where they stopped.
    cluster.restart_participant(1, &[]);
    cluster.start_coordinator(&[]);
    cluster.wait_all_connected();
    let again = cluster.submit(&["1:add alice -5 min 0", "2:add bob 5"]);
    assert!(again.status.success(), "{}", describe(&again));
    cluster.wait_for(1, "SELECT value FROM kv WHERE key = 'alice'", &[&["90"]]);
    cluster.wait_for(2, "SELECT value FROM kv WHERE key = 'bob'", &[&["110"]]);
}

#[test]
fn a_participant_takes_its_options_from_a_file_and_the_environment_wins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = free_loopback_addr();
    let config = dir.path().join("p1.toml");
    let db = dir.path().join("p1.db");
    std::fs::write(
        &config,
        format!(
            "id = 1\nlisten = \"{listen}\"\ndb = \"{}\"\ncluster = \"from-file\"\nheartbeat-ms = \"50ms\"\n",
            db.display()
        ),
    )
    .expect("write config");
    let node = Launch::new("participant", binary("participant"))
        .args(["serve", "--config", &config.display().to_string()])
        .env("PARTICIPANT_CLUSTER", CLUSTER)
        .env("RUST_LOG", "info")
        .log_to(dir.path().join("p1.log"))
        .start()
        .unwrap_or_else(|error| panic!("participant did not start: {error}"));
    assert_eq!(node.addr(), listen, "the file's listen address");
    let status = |cluster: &str| {
        Launch::new("status", binary("participant"))
            .args([
                "status",
                "--addr",
                &listen.to_string(),
                "--cluster",
                cluster,
            ])
            .args(["--timeout-ms", "5s"])
            .run(STOP_TIMEOUT)
            .expect("run status")
    };
    let ran = status(CLUSTER);
    assert_eq!(ran.status.and_then(|s| s.code()), Some(0), "{ran:?}");
    let ran = status("from-file");
    assert_eq!(ran.status.and_then(|s| s.code()), Some(1), "{ran:?}");
    assert!(db.exists(), "the file's database");
}

#[test]
fn a_config_file_with_an_unknown_key_stops_the_coordinator_with_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("coordinator.toml");
    std::fs::write(&config, "id = 100\n\nheartbeat = \"50ms\"\n").expect("write config");
    let ran = Launch::new("coordinator", binary("coordinator"))
        .args(["serve", "--config", &config.display().to_string()])
        .run(STOP_TIMEOUT)
        .expect("run coordinator");
    assert_eq!(ran.status.and_then(|s| s.code()), Some(2), "{ran:?}");
    let expected = format!(
        "config file {}, line 3: unknown key 'heartbeat' for `serve`",
        config.display()
    );
    assert!(ran.stderr.contains(&expected), "{ran:?}");
    assert!(!dir.path().join("coordinator.db").exists());
}
