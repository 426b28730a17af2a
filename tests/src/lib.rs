//! Harness for real-process tests: starts `coordinator` and `participant` binaries on
//! loopback in a temp directory, kills every child on drop, and reads the participants'
//! SQLite files the way a user would. The deterministic simulator (`sim`) and the model
//! checker (`mc`) of the real cores live in their own modules.

pub mod mc;
pub mod sim;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The cluster id every test cluster uses.
pub const CLUSTER: &str = "test";
/// How long a node may take to print its `LISTENING` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for any "eventually" wait in a test.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Heartbeat interval for test clusters: short, so dead peers are noticed quickly.
pub const HEARTBEAT_MS: u64 = 50;
/// The vote timeout test transactions carry (3PC: also the participants' waiting timeout).
pub const SUBMIT_TIMEOUT_MS: u64 = 3_000;

/// Path of a workspace binary, built once per test run so it is never stale.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "coordinator",
                "-p",
                "participant",
                "--bins",
            ])
            .status()
            .expect("run cargo build for the binaries");
        assert!(
            status.success(),
            "building the coordinator and participant binaries failed"
        );
    });
    // The test executable lives in target/<profile>/deps/; binaries in target/<profile>/.
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join(name);
    assert!(path.exists(), "binary {} not found", path.display());
    path
}

/// A child process that is killed (and reaped) when dropped.
pub struct Node {
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
}

impl Node {
    /// Starts `program args...` and waits for its `LISTENING <addr>` line.
    pub fn start(name: &str, program: &Path, args: &[String], log_dir: &Path) -> Node {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("{name}.log")))
            .expect("open log file");
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .env("RUST_LOG", "info")
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("LISTENING ") {
                    let _ = sender.send(addr.trim().to_string());
                }
            }
        });
        let mut node = Node {
            name: name.to_string(),
            addr: "0.0.0.0:0".parse().unwrap(),
            child,
        };
        match receiver.recv_timeout(STARTUP_TIMEOUT) {
            Ok(addr) => node.addr = addr.parse().expect("LISTENING address"),
            Err(_) => {
                let log = std::fs::read_to_string(log_dir.join(format!("{name}.log")))
                    .unwrap_or_default();
                panic!("{name} did not print LISTENING in time; its log:\n{log}");
            }
        }
        node
    }

    /// SIGKILL: the process dies with no chance to flush or clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) for the process to exit by itself, e.g. at an armed crash point.
    pub fn wait_exit(mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit in time",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`STOP`, `CONT`, ...) with the system's `kill` command.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A coordinator and N participants (ids 1..=N; the coordinator is id 100), each with its
/// own SQLite file in one temp directory.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub participants: Vec<Option<Node>>,
    pub participant_addrs: Vec<SocketAddr>,
    pub coordinator: Option<Node>,
}

pub const COORDINATOR_ID: u32 = 100;

impl Cluster {
    /// Starts `n` participants, then the coordinator; `crash_at[i]` arms crash points on
    /// participant i+1. Returns once a read-only transaction over every participant commits.
    pub fn start(
        n: usize,
        participant_crash_at: &[(u32, &str)],
        coordinator_crash_at: &[&str],
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = Cluster {
            dir,
            participants: Vec::new(),
            participant_addrs: Vec::new(),
            coordinator: None,
        };
        // Participants must know each other's addresses to form the mesh, so reserve a
        // free loopback port for each first (bind to port 0, then release it).
        cluster.participant_addrs = (0..n).map(|_| free_loopback_addr()).collect();
        for id in 1..=n as u32 {
            let crash: Vec<&str> = participant_crash_at
                .iter()
                .filter(|(node, _)| *node == id)
                .map(|(_, point)| *point)
                .collect();
            let listen = cluster.participant_addrs[id as usize - 1].to_string();
            let node = cluster.spawn_participant(id, &listen, &crash);
            cluster.participants.push(Some(node));
        }
        cluster.start_coordinator(coordinator_crash_at);
        cluster
    }

    pub fn participant_db(&self, id: u32) -> PathBuf {
        self.dir.path().join(format!("participant-{id}.db"))
    }

    fn spawn_participant(&self, id: u32, listen: &str, crash_at: &[&str]) -> Node {
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            listen.into(),
            "--db".into(),
            self.participant_db(id).display().to_string(),
            "--cluster".into(),
            CLUSTER.into(),
            "--heartbeat-ms".into(),
            HEARTBEAT_MS.to_string(),
        ];
        for (index, addr) in self.participant_addrs.iter().enumerate() {
            let peer = index as u32 + 1;
            if peer != id {
                args.push("--peer".into());
                args.push(format!("{peer}={addr}"));
            }
        }
        for point in crash_at {
            args.push("--crash-at".into());
            args.push(point.to_string());
        }
        Node::start(
            &format!("participant-{id}"),
            &binary("participant"),
            &args,
            self.dir.path(),
        )
    }

    /// Restarts participant `id` on its old address (the coordinator dials that address).
    pub fn restart_participant(&mut self, id: u32, crash_at: &[&str]) {
        let index = id as usize - 1;
        if let Some(old) = self.participants[index].take() {
            old.kill();
        }
        let listen = self.participant_addrs[index].to_string();
        let node = self.spawn_participant(id, &listen, crash_at);
        self.participants[index] = Some(node);
    }

    pub fn start_coordinator(&mut self, crash_at: &[&str]) {
        if let Some(old) = self.coordinator.take() {
            // The end of a decision is written lazily: wait for it, or the new coordinator
            // would recover the decision and re-send its Commit, which can trip the new
            // crash points before the test has even started.
            self.wait_decisions_ended();
            old.kill();
        }
        let node = self.spawn_coordinator(COORDINATOR_ID, crash_at);
        self.coordinator = Some(node);
    }

    /// Starts one more coordinator, `id`, with its own decision log, dialling every
    /// participant (several coordinators may serve one cluster). The caller owns it.
    pub fn start_extra_coordinator(&self, id: u32) -> Node {
        assert_ne!(id, COORDINATOR_ID, "coordinator ids must differ");
        self.spawn_coordinator(id, &[])
    }

    fn spawn_coordinator(&self, id: u32, crash_at: &[&str]) -> Node {
        let db_name = if id == COORDINATOR_ID {
            "coordinator.db".to_string()
        } else {
            format!("coordinator-{id}.db")
        };
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--db".into(),
            self.dir.path().join(db_name).display().to_string(),
            "--cluster".into(),
            CLUSTER.into(),
            "--heartbeat-ms".into(),
            HEARTBEAT_MS.to_string(),
        ];
        for (index, addr) in self.participant_addrs.iter().enumerate() {
            args.push("--participant".into());
            args.push(format!("{}={addr}", index + 1));
        }
        for point in crash_at {
            args.push("--crash-at".into());
            args.push(point.to_string());
        }
        let name = if id == COORDINATOR_ID {
            "coordinator".to_string()
        } else {
            format!("coordinator-{id}")
        };
        Node::start(&name, &binary("coordinator"), &args, self.dir.path())
    }

    /// Waits until the coordinator's decision log has no unfinished decision.
    pub fn wait_decisions_ended(&self) {
        let db = self.dir.path().join("coordinator.db");
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        while query_db(&db, "SELECT count(*) FROM unfinished") != vec![vec!["0".to_string()]] {
            assert!(Instant::now() < deadline, "decisions never ended");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn coordinator_addr(&self) -> SocketAddr {
        self.coordinator.as_ref().expect("coordinator running").addr
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

/// A loopback address with a port that was free a moment ago.
/// Runs `coordinator submit --protocol PROTOCOL` against the coordinator at `addr`.
pub fn submit_to(addr: SocketAddr, protocol: &str, ops: &[&str]) -> Output {
    let mut args: Vec<String> = vec![
        "submit".into(),
        "--addr".into(),
        addr.to_string(),
        "--cluster".into(),
        CLUSTER.into(),
        "--protocol".into(),
        protocol.into(),
        "--timeout-ms".into(),
        SUBMIT_TIMEOUT_MS.to_string(),
    ];
    args.extend(ops.iter().map(|op| op.to_string()));
    Command::new(binary("coordinator"))
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("run coordinator submit")
}

pub fn free_loopback_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
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
    String::from_utf8_lossy(&output.stdout)
        .split(|c: char| c.is_whitespace() || c == ',' || c == ':' || c == '=')
        .find(|word| uuid::Uuid::parse_str(word).is_ok())
        .unwrap_or_else(|| panic!("no transaction id in output: {}", describe(output)))
        .to_string()
}

/// Reads a SQLite file read-only, as `sqlite3` would; every column rendered as text
/// (NULL as "NULL").
pub fn query_db(path: &Path, sql: &'static str) -> Vec<Vec<String>> {
    use sqlx::{ConnectOptions, Row, TypeInfo, ValueRef};
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    wire::runtime::block_on(async move {
        let mut connection = options.connect().await.expect("open participant database");
        let rows = sqlx::query(sql)
            .fetch_all(&mut connection)
            .await
            .expect("query");
        rows.iter()
            .map(|row| {
                (0..row.columns().len())
                    .map(|i| {
                        let raw = row.try_get_raw(i).expect("column");
                        if raw.is_null() {
                            return "NULL".to_string();
                        }
                        match raw.type_info().name() {
                            "INTEGER" => row.get::<i64, _>(i).to_string(),
                            "REAL" => row.get::<f64, _>(i).to_string(),
                            _ => row.get::<String, _>(i),
                        }
                    })
                    .collect()
            })
            .collect()
    })
}
