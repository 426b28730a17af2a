//! The operator's side of the command lines, with real processes: options from a config
//! file and the environment, the graceful stop on SIGTERM (exit status, its one log line,
//! a cleanly closed database, nothing lost across the restart), and `--metrics` scraped
//! over HTTP, logs in which `grep txn=ID` finds every line about a transaction, and a
//! participant's smaller `--frame-bytes-max` honoured at submit.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use cluster::{Launch, Node};
use tests::{
    CLUSTER, CONVERGE_TIMEOUT, Cluster, binary, describe, free_loopback_addr, signal, txn_id_of,
    wait_exit,
};

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

/// `GET /metrics` over plain HTTP, as Prometheus does; the body.
fn scrape(addr: SocketAddr) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to metrics");
    stream
        .set_read_timeout(Some(STOP_TIMEOUT))
        .expect("read timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .expect("a body")
}

/// The sample `series` (name and labels exactly as exposed), or 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().expect("a number"))
}

/// Scrapes until `series` satisfies `ok` (gauges are refreshed as the node works).
fn wait_sample(addr: SocketAddr, series: &str, ok: impl Fn(f64) -> bool) -> String {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let text = scrape(addr);
        if ok(sample(&text, series)) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never as expected:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn both_nodes_serve_metrics_that_move_with_the_work() {
    let mut cluster = Cluster::start(2, &[], &[]);
    let participant_metrics = free_loopback_addr();
    let coordinator_metrics = free_loopback_addr();
    let metrics_flag = |addr: SocketAddr| vec!["--metrics".to_string(), addr.to_string()];
    cluster
        .local
        .start_participant(1, &metrics_flag(participant_metrics))
        .expect("restart participant 1 with --metrics");
    cluster
        .local
        .start_coordinator(&metrics_flag(coordinator_metrics))
        .expect("restart the coordinator with --metrics");
    cluster.wait_all_connected();

    let committed = r#"coordinator_txns_total{protocol="2pc",outcome="committed"}"#;
    let before = sample(&scrape(coordinator_metrics), committed);
    let participant_before = scrape(participant_metrics);
    let output = cluster.submit(&["1:put alice 100", "2:put bob 100"]);
    assert!(output.status.success(), "{}", describe(&output));

    let text = scrape(coordinator_metrics);
    assert_eq!(sample(&text, committed), before + 1.0, "{text}");
    let total = r#"coordinator_phase_seconds_count{protocol="2pc",phase="total"}"#;
    assert!(sample(&text, total) >= before + 1.0, "{text}");
    let vote = r#"coordinator_phase_seconds_count{protocol="2pc",phase="vote"}"#;
    assert!(sample(&text, vote) >= 1.0, "{text}");
    assert!(
        sample(&text, "coordinator_log_batch_records_count") >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, r#"coordinator_frames_total{direction="out"}"#) > 0.0,
        "{text}"
    );
    assert!(
        sample(&text, r#"coordinator_bytes_total{direction="in"}"#) > 0.0,
        "{text}"
    );
    assert!(
        text.contains("coordinator_handshakes_rejected_total"),
        "{text}"
    );
    wait_sample(
        coordinator_metrics,
        r#"coordinator_peer_up{peer="2"}"#,
        |up| up == 1.0,
    );
    wait_sample(coordinator_metrics, "coordinator_txns_in_flight", |n| {
        n == 0.0
    });

    let committed_records = r#"participant_records_total{kind="committed"}"#;
    let text = wait_sample(participant_metrics, committed_records, |n| {
        n >= sample(&participant_before, committed_records) + 1.0
    });
    assert!(
        sample(&text, r#"participant_records_total{kind="prepared"}"#) >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "participant_record_durable_seconds_count") >= 2.0,
        "{text}"
    );
    assert!(
        sample(&text, r#"participant_bytes_total{direction="out"}"#) > 0.0,
        "{text}"
    );
    assert!(
        text.contains(r#"participant_txns{state="in_doubt"}"#),
        "{text}"
    );
    wait_sample(
        participant_metrics,
        r#"participant_peer_up{peer="2"}"#,
        |up| up == 1.0,
    );
}

#[test]
fn every_log_line_about_a_transaction_carries_txn_equals_its_id() {
    let mut cluster = Cluster::start(2, &[], &[]);
    // sqlx's statement lines are about SQL, not transactions.
    cluster.local.config.rust_log = Some("debug,sqlx=warn".to_string());
    cluster.restart_participant(1, &[]);
    cluster.start_coordinator(&[]);
    cluster.wait_all_connected();
    let output = cluster.submit(&["1:put alice 1", "2:put bob 2"]);
    assert!(output.status.success(), "{}", describe(&output));
    let txn = txn_id_of(&output);
    cluster.wait_decisions_ended();
    let tagged = format!("txn={txn}");
    for name in ["coordinator", "participant-1"] {
        let path = cluster.log_path(name);
        let log = std::fs::read_to_string(&path).expect("read the node's log");
        let about: Vec<&str> = log.lines().filter(|line| line.contains(&txn)).collect();
        assert!(
            !about.is_empty(),
            "{name} logged nothing about {txn}:\n{log}"
        );
        for line in about {
            assert!(
                line.contains(&tagged),
                "{name}: a line without {tagged}: {line}"
            );
        }
    }
}

#[test]
fn a_transaction_over_a_participants_frame_limit_is_refused_at_submit_and_the_cluster_serves_on() {
    let mut cluster = Cluster::start(2, &[], &[]);
    let small = ["--frame-bytes-max".to_string(), "65536".to_string()];
    cluster
        .local
        .start_participant(1, &small)
        .expect("restart participant 1 with a 64 KiB frame limit");
    cluster.wait_all_connected();
    // Ten 7,000-byte values: within the coordinator's own limits, but a Prepare of
    // about 70 KB for participant 1.
    let value = "x".repeat(7_000);
    let ops: Vec<String> = (0..10).map(|i| format!("1:put k{i} {value}")).collect();
    let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
    let output = cluster.submit(&ops);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let text = describe(&output);
    assert!(
        text.contains("too large for participant 1") && text.contains("65536 bytes"),
        "{text}"
    );
    // The same transaction fits participant 2 (16 MiB), and participant 1 still takes
    // small ones: nothing was dropped.
    let ops: Vec<String> = (0..10).map(|i| format!("2:put k{i} {value}")).collect();
    let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
    let output = cluster.submit(&ops);
    assert!(output.status.success(), "{}", describe(&output));
    let output = cluster.submit(&["1:put alice 1", "2:put bob 2"]);
    assert!(output.status.success(), "{}", describe(&output));
}
