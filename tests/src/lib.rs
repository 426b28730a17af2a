//! Harness for real-process tests: the shared local cluster (`cluster` crate: binaries on
//! loopback in a temp directory, every child killed on drop) with test settings and
//! panics for errors, and the participants' SQLite files read the way a user would. The deterministic simulator (`sim`) and the model
//! checker (`mc`) of the real cores live in their own modules.

pub mod mc;
pub mod scenario;
pub mod sim;

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cluster::{ClusterConfig, LocalCluster, WorkDir};

/// The cluster id every test cluster uses.
pub const CLUSTER: &str = "test";
/// Upper bound for any "eventually" wait in a test.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Heartbeat interval for test clusters: short, so dead peers are noticed quickly.
pub const HEARTBEAT_MS: u64 = 50;
/// The vote timeout test transactions carry (3PC: also the participants' waiting timeout).
pub const SUBMIT_TIMEOUT_MS: u64 = 3_000;

/// Path of a workspace binary, built once per run (in the profile of the running
/// executable) so it is never stale.
pub fn binary(name: &str) -> PathBuf {
    // A test executable lives in target/<profile>/deps/, a bin (the scenario runner) in
    // target/<profile>/; the node binaries in target/<profile>/.
    let exe = std::env::current_exe().expect("current exe");
    let mut profile_dir = exe.parent().expect("target/<profile>").to_path_buf();
    if profile_dir.file_name().is_some_and(|dir| dir == "deps") {
        profile_dir.pop();
    }
    let release = profile_dir.file_name().is_some_and(|dir| dir == "release");
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command.args([
            "build",
            "--quiet",
            "-p",
            "coordinator",
            "-p",
            "participant",
            "--bins",
        ]);
        if release {
            command.arg("--release");
        }
        let status = command.status().expect("run cargo build for the binaries");
        assert!(
            status.success(),
            "building the coordinator and participant binaries failed"
        );
    });
    let path = profile_dir.join(name);
    assert!(path.exists(), "binary {} not found", path.display());
    path
}

/// A node of a test cluster (killed and reaped when dropped).
pub use cluster::Node;

/// Starts `program args...`, logging to `log_dir/name.log`, and waits for its `LISTENING`
/// line; panics with the node's log if it does not start.
pub fn start_node(name: &str, program: &Path, args: &[String], log_dir: &Path) -> Node {
    let launch = cluster::Launch::new(name, program)
        .args(args)
        .log_to(log_dir.join(format!("{name}.log")))
        .env("RUST_LOG", "info");
    started(launch.start())
}

/// The node, or a panic that shows why it did not start and its log.
fn started(result: Result<Node, cluster::StartError>) -> Node {
    match result {
        Ok(node) => node,
        Err(error) => {
            let log = error
                .log()
                .and_then(|path| std::fs::read_to_string(path).ok())
                .unwrap_or_default();
            panic!("{error}; its log:\n{log}");
        }
    }
}

/// Waits (bounded) for `node` to exit by itself, e.g. at an armed crash point.
pub fn wait_exit(node: &Node, timeout: Duration) -> ExitStatus {
    node.wait_exit(timeout)
        .unwrap_or_else(|| panic!("{} did not exit within {timeout:?}", node.name()))
}

/// Sends a signal by name (`STOP`, `CONT`, ...).
pub fn signal(node: &Node, name: &str) {
    node.signal(name)
        .unwrap_or_else(|error| panic!("signal {name} to {}: {error}", node.name()));
}

/// A coordinator and N participants (ids 1..=N; the coordinator is id 100), each with its
/// own SQLite file in one temp directory: the shared local cluster, with test settings
/// (short heartbeats, logs at info) and panics instead of errors.
pub struct Cluster {
    pub local: LocalCluster,
}

impl Deref for Cluster {
    type Target = LocalCluster;
    fn deref(&self) -> &LocalCluster {
        &self.local
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut LocalCluster {
        &mut self.local
    }
}

pub const COORDINATOR_ID: u32 = 100;

/// Crash-point flags for a node's command line.
fn crash_args(points: &[&str]) -> Vec<String> {
    points
        .iter()
        .flat_map(|point| ["--crash-at".to_string(), point.to_string()])
        .collect()
}

/// The settings of every test cluster (and scenario) of `participants` participants:
/// the binaries just built, short heartbeats, logs at info.
pub fn cluster_config(participants: u32) -> ClusterConfig {
    let bin_dir = binary("coordinator")
        .parent()
        .expect("target/<profile>")
        .to_path_buf();
    // Both binaries are built by `binary`; asking for the other checks it is there.
    binary("participant");
    let mut config = ClusterConfig::new(bin_dir, CLUSTER, participants);
    config.coordinator_id = COORDINATOR_ID;
    config.heartbeat_ms = Some(HEARTBEAT_MS);
    config.rust_log = Some("info".to_string());
    // Every test cluster authenticates its members, as a deployment should.
    config.cluster_secret = Some(wire::Secret::generate());
    config
}

impl Cluster {
    /// Starts `n` participants, then the coordinator; `participant_crash_at` arms crash
    /// points on the participants it names, `coordinator_crash_at` on the coordinator.
    pub fn start(
        n: usize,
        participant_crash_at: &[(u32, &str)],
        coordinator_crash_at: &[&str],
    ) -> Cluster {
        let config = cluster_config(n as u32);
        let dir = WorkDir::temp("cluster-test-").expect("temp dir");
        let local = LocalCluster::new(config, dir).expect("reserve loopback ports");
        let mut cluster = Cluster { local };
        for id in 1..=n as u32 {
            let crash: Vec<&str> = participant_crash_at
                .iter()
                .filter(|(node, _)| *node == id)
                .map(|(_, point)| *point)
                .collect();
            cluster.restart_participant(id, &crash);
        }
        cluster.start_coordinator(coordinator_crash_at);
        cluster
    }

    /// (Re)starts participant `id` on its old address (the coordinator dials that address).
    pub fn restart_participant(&mut self, id: u32, crash_at: &[&str]) {
        let result = self.local.start_participant(id, &crash_args(crash_at));
        if let Err(error) = result {
            started(Err(error));
        }
    }

    pub fn start_coordinator(&mut self, crash_at: &[&str]) {
        if self.local.coordinator.is_some() {
            // The end of a decision is written lazily: wait for it, or the new coordinator
            // would recover the decision and re-send its Commit, which can trip the new
            // crash points before the test has even started.
            self.wait_decisions_ended();
        }
        let result = self.local.start_coordinator(&crash_args(crash_at));
        if let Err(error) = result {
            started(Err(error));
        }
    }

    /// Starts one more coordinator, `id`, with its own decision log, dialling every
    /// participant (several coordinators may serve one cluster). The caller owns it.
    pub fn start_extra_coordinator(&self, id: u32) -> Node {
        assert_ne!(id, COORDINATOR_ID, "coordinator ids must differ");
        started(self.local.spawn_coordinator(id, &[]))
    }

    /// Waits until the coordinator's decision log has no unfinished decision.
    pub fn wait_decisions_ended(&self) {
        let db = self.coordinator_db(COORDINATOR_ID);
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        while query_db(&db, "SELECT count(*) FROM unfinished") != vec![vec!["0".to_string()]] {
            assert!(Instant::now() < deadline, "decisions never ended");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn coordinator_addr(&self) -> SocketAddr {
        self.local.coordinator_addr().expect("coordinator running")
    }

    /// Runs `coordinator submit` (2PC) with the given ops; returns its output.
    pub fn submit(&self, ops: &[&str]) -> Output {
        self.submit_with("2pc", ops)
    }

    /// Runs `coordinator submit --protocol PROTOCOL` with the given ops.
    pub fn submit_with(&self, protocol: &str, ops: &[&str]) -> Output {
        submit_to(self.coordinator_addr(), protocol, ops)
    }

    /// Waits until a read-only transaction touching every participant commits, i.e. the
    /// coordinator is connected to all of them.
    pub fn wait_all_connected(&self) {
        let ops: Vec<String> = (1..=self.participants.len())
            .map(|id| format!("{id}:get probe"))
            .collect();
        let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let output = self.submit(&ops);
            if output.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster never became ready: {}",
                describe(&output)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Rows of `sql` on participant `id`'s database, each column rendered as text.
    pub fn query(&self, id: u32, sql: &'static str) -> Vec<Vec<String>> {
        query_db(&self.participant_db(id), sql)
    }

    /// Polls `sql` on participant `id` until it returns `expected` (bounded).
    pub fn wait_for(&self, id: u32, sql: &'static str, expected: &[&[&str]]) {
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let rows = self.query(id, sql);
            let matches = rows.len() == expected.len()
                && rows
                    .iter()
                    .zip(expected)
                    .all(|(row, want)| row.iter().map(String::as_str).eq(want.iter().copied()));
            if matches {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "participant {id}: `{sql}` returned {rows:?}, expected {expected:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs `coordinator submit --protocol PROTOCOL` against the coordinator at `addr`.
pub fn submit_to(addr: SocketAddr, protocol: &str, ops: &[&str]) -> Output {
    Command::new(binary("coordinator"))
        .args(submit_args(addr, protocol, SUBMIT_TIMEOUT_MS, ops))
        .stdin(Stdio::null())
        .output()
        .expect("run coordinator submit")
}

/// The arguments of `coordinator submit` for one transaction.
pub fn submit_args(addr: SocketAddr, protocol: &str, timeout_ms: u64, ops: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "submit".into(),
        "--addr".into(),
        addr.to_string(),
        "--cluster".into(),
        CLUSTER.into(),
        "--protocol".into(),
        protocol.into(),
        "--timeout-ms".into(),
        timeout_ms.to_string(),
    ];
    args.extend(ops.iter().map(|op| op.to_string()));
    args
}

/// A loopback address with a port that was free a moment ago.
pub fn free_loopback_addr() -> SocketAddr {
    cluster::free_loopback_addr().expect("bind 127.0.0.1:0")
}

/// Exit code, stdout and stderr of a finished command, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The transaction id a `coordinator submit` printed (the first UUID in its output).
pub fn txn_id_of(output: &Output) -> String {
    find_txn_id(&String::from_utf8_lossy(&output.stdout))
        .unwrap_or_else(|| panic!("no transaction id in output: {}", describe(output)))
}

/// The first UUID in a `coordinator submit`'s stdout.
pub fn find_txn_id(stdout: &str) -> Option<String> {
    stdout
        .split(|c: char| c.is_whitespace() || c == ',' || c == ':' || c == '=')
        .find(|word| uuid::Uuid::parse_str(word).is_ok())
        .map(str::to_string)
}

/// Reads a SQLite file read-only, as `sqlite3` would; every column rendered as text
/// (NULL as "NULL").
pub fn query_db(path: &Path, sql: &str) -> Vec<Vec<String>> {
    cluster::query(path, sql).unwrap_or_else(|error| panic!("query `{sql}`: {error}"))
}
