//! `coordinator bench` run briefly as a user would, for both protocols: it must start its
//! cluster, run about two seconds of load, verify conservation and atomicity, exit 0 and
//! print one JSON object with sane figures. No figure is compared with a threshold: this
//! proves the tool works, not how fast the machine is.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::binary;

/// Far above the ~2 s of load plus start-up and seeding; only a hang reaches it.
const BENCH_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a timed-out bench gets to stop its nodes before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Runs `coordinator bench ARGS` (killed past `BENCH_TIMEOUT`): exit code, stdout, stderr.
fn bench(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(binary("coordinator"))
        .arg("bench")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run coordinator bench");
    let mut stdout = child.stdout.take().expect("stdout piped");
    let mut stderr = child.stderr.take().expect("stderr piped");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + BENCH_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            // SIGTERM first: the bench's handler then stops the nodes it started, which
            // a SIGKILL would leave running.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            std::thread::sleep(TERM_GRACE);
            let _ = child.kill();
            let _ = child.wait();
            panic!("coordinator bench {args:?} did not finish within {BENCH_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.code(),
        out.join().expect("stdout reader"),
        err.join().expect("stderr reader"),
    )
}

fn brief_bench_verifies_and_reports(protocol: &str) {
    let args = [
        "--protocol",
        protocol,
        "--duration",
        "2",
        "--clients",
        "8",
        "--accounts",
        "200",
        "--json",
    ];
    let (code, stdout, stderr) = bench(&args);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("one JSON object expected ({error}):\n{stdout}"));
    let number = |key: &str| {
        summary[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is not a number: {summary}"))
    };
    assert_eq!(summary["protocol"], protocol);
    assert!(number("committed") > 0.0, "{summary}");
    assert!(number("committed_per_s") > 0.0, "{summary}");
    assert!(number("p50_ms") > 0.0, "{summary}");
    assert!(number("p99_ms") >= number("p50_ms"), "{summary}");
    assert!(
        number("aborted") >= 0.0 && number("errors") >= 0.0,
        "{summary}"
    );
    let cpu = summary["cpu_ms_per_txn"]
        .as_object()
        .unwrap_or_else(|| panic!("cpu_ms_per_txn is not an object: {summary}"));
    for node in [
        "participant-1",
        "participant-2",
        "participant-3",
        "coordinator",
        "total",
    ] {
        assert!(
            cpu.get(node).and_then(serde_json::Value::as_f64).is_some(),
            "no CPU figure for {node}: {summary}"
        );
    }
    assert!(
        summary["sqlite_txns_per_txn"]["coordinator"]
            .as_f64()
            .is_some_and(|fsyncs| fsyncs > 0.0),
        "the coordinator logs commit decisions: {summary}"
    );
    assert_eq!(summary["conserved"], true, "{summary}");
    assert_eq!(summary["atomicity"], true, "{summary}");
    assert_eq!(summary["verified"], true, "{summary}");
}

#[test]
fn bench_two_phase_runs_briefly_verifies_and_prints_json() {
    brief_bench_verifies_and_reports("2pc");
}

#[test]
fn bench_three_phase_runs_briefly_verifies_and_prints_json() {
    brief_bench_verifies_and_reports("3pc");
}

#[test]
fn bench_refuses_stop_and_wait_for_a_cluster_it_did_not_start() {
    let (code, _, stderr) = bench(&["--coordinator", "127.0.0.1:9", "--stop-and-wait"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--channel-in-flight-max 1"), "{stderr}");
}

/// Far above the floor's tiny runs below (well under a second); only a hang reaches it.
const FLOOR_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `sqlite-floor ARGS`, killed past `FLOOR_TIMEOUT`.
fn floor(args: &[&str]) -> cluster::Ran {
    let ran = cluster::Launch::new("sqlite-floor", env!("CARGO_BIN_EXE_sqlite-floor"))
        .args(args)
        .run(FLOOR_TIMEOUT)
        .expect("run sqlite-floor");
    assert!(
        ran.status.is_some(),
        "sqlite-floor {args:?} did not finish: {ran:?}"
    );
    ran
}

/// The SQLite floor benchmark (`sqlite-floor`) runs over the participant's schema and
/// prints one line per batch size; its group commits are counted exactly: each SQLite
/// transaction takes a batch of votes and the previous batch's commits, and one last
/// transaction commits the last votes; so also without the in-doubt index, and through the
/// participant's store (`--store`: a second line per batch size, after the store counted
/// every part committed). A batch size of 0 is a usage error.
#[test]
fn sqlite_floor_prints_one_line_per_batch_size() {
    let ran = floor(&["--parts", "40", "--batch", "1", "--batch", "8"]);
    assert!(ran.status.is_some_and(|status| status.success()), "{ran:?}");
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{ran:?}");
    assert!(
        lines[0].starts_with("batch   1: 40 parts in 41 SQLite txns, "),
        "{ran:?}"
    );
    assert!(
        lines[1].starts_with("batch   8: 40 parts in 6 SQLite txns, "),
        "{ran:?}"
    );
    let ran = floor(&["--parts", "10", "--batch", "4", "--without-in-doubt-index"]);
    assert!(ran.status.is_some_and(|status| status.success()), "{ran:?}");
    assert!(
        ran.stdout
            .starts_with("batch   4: 10 parts in 4 SQLite txns, "),
        "{ran:?}"
    );
    let ran = floor(&["--parts", "40", "--batch", "8", "--store"]);
    assert!(ran.status.is_some_and(|status| status.success()), "{ran:?}");
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{ran:?}");
    assert!(
        lines[0].starts_with("batch   8: 40 parts in 6 SQLite txns, ")
            && lines[0].ends_with(", SQLite"),
        "{ran:?}"
    );
    assert!(
        lines[1].starts_with("batch   8: 40 parts in 6 SQLite txns, ")
            && lines[1].ends_with(", store"),
        "{ran:?}"
    );
    let refused = floor(&["--batch", "0"]);
    assert_eq!(
        refused.status.and_then(|status| status.code()),
        Some(2),
        "{refused:?}"
    );
    assert!(
        refused.stderr.contains("--batch must be at least 1"),
        "{refused:?}"
    );
}
