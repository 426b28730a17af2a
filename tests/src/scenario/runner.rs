//! Carries out one scenario file: the shared local cluster (`cluster` crate, the test
//! settings of `crate::cluster_config`) with a proxy on every dialled path, the bank
//! seeded, the steps in order, then the checks; the verdict and where the files are.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{Launch, LocalCluster, Node, WorkDir};

use super::client::submit;
use super::format::{self, NodeName, Protocol, Scenario, Step};
use super::proxy::Proxy;
use super::workload::{self, Target, account};
use super::{ClientOutcome, Timeline, TxnRecord, checks};
use crate::{COORDINATOR_ID, cluster_config};

/// How often a wait looks again.
pub(super) const POLL: Duration = Duration::from_millis(50);
/// Seeding and the first connection: the nodes have just started.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a `status` command may take.
const STATUS_WITHIN: Duration = Duration::from_secs(10);
/// How long a coordinator restart waits for the old one's decisions to end.
const DECISIONS_END_WITHIN: Duration = Duration::from_secs(5);

/// How a scenario ended.
#[derive(Debug)]
pub struct Verdict {
    pub passed: bool,
    /// The timeline and the checks, as printed.
    pub report: String,
    /// Kept on failure: every database and log of the run.
    pub kept_dir: Option<PathBuf>,
}

/// Starts of the cluster tried before a scenario fails as "could not start".
const START_ATTEMPTS_MAX: u32 = 3;

/// Runs the scenario in `path`; `echo` prints the timeline as it happens. `Err`: the
/// file is not a valid scenario (nothing was started).
pub fn run_file(path: &Path, echo: bool) -> Result<Verdict, String> {
    let scenario = format::load(path)?;
    let name = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario".to_string());
    let timeline = Timeline::new(echo);
    timeline.event(
        "runner",
        format!("scenario {name}: {}", scenario.description),
    );
    // Free loopback ports are picked, released, then bound by the nodes: another process
    // on the machine (a parallel test run) can take one in between. A start that fails is
    // retried on fresh ports and a fresh directory; nothing of the scenario has run yet.
    let mut attempt = 1;
    let mut run = loop {
        match Run::start(&name, scenario.clone(), timeline.clone()) {
            Ok(run) => break run,
            Err(error) if attempt < START_ATTEMPTS_MAX => {
                timeline.event(
                    "runner",
                    format!("start failed ({error}); retrying on fresh ports"),
                );
                attempt += 1;
            }
            Err(error) => {
                timeline.event("runner", format!("FAIL: could not start: {error}"));
                return Ok(Verdict {
                    passed: false,
                    report: timeline.text(),
                    kept_dir: None,
                });
            }
        }
    };
    let steps = run.scenario.steps.clone();
    let mut failure = None;
    if let Err(error) = run.seed() {
        failure = Some(error);
    }
    for (i, step) in steps.iter().enumerate() {
        if failure.is_some() {
            break;
        }
        if let Err(error) = run.step(step) {
            failure = Some(format!(
                "step {} ({}): {error}",
                i + 1,
                format::step_kind(step)
            ));
        }
    }
    if failure.is_none()
        && let Some(mut running) = run.workload.take()
        && !running.wait(Duration::from_millis(run.scenario.checks.settle_ms))
    {
        failure = Some("the workload did not finish in time".to_string());
    }
    // A background submit ends within its own bound (`submit`).
    for thread in run.background.drain(..) {
        let _ = thread.join();
    }
    let passed = match &failure {
        Some(error) => {
            timeline.event("runner", format!("FAIL: {error}"));
            false
        }
        None => checks::run(&mut run),
    };
    run.notice_exits();
    // Every node is stopped before the directory is kept or removed.
    run.stop_nodes();
    run.proxies.clear();
    let kept_dir = if passed {
        None
    } else {
        let path = run.cluster.dir().to_path_buf();
        if let WorkDir::Temp(dir) =
            std::mem::replace(&mut run.cluster.dir, WorkDir::Kept(path.clone()))
        {
            let _ = dir.keep();
        }
        Some(path)
    };
    match &kept_dir {
        Some(dir) => timeline.event(
            "runner",
            format!(
                "VERDICT: FAIL; databases and logs kept in {}",
                dir.display()
            ),
        ),
        None => timeline.event("runner", "VERDICT: PASS"),
    }
    Ok(Verdict {
        passed,
        report: timeline.text(),
        kept_dir,
    })
}

/// A scenario being carried out.
pub struct Run {
    pub scenario: Scenario,
    pub cluster: LocalCluster,
    pub timeline: Timeline,
    /// `(dialler, participant)` -> its proxy; the coordinator dials as `COORDINATOR_ID`.
    pub proxies: BTreeMap<(u32, u32), Proxy>,
    /// Every transaction a client ran (steps and workload).
    pub txns: Arc<Mutex<Vec<TxnRecord>>>,
    /// `submit` steps' names -> txn ids, for `{txn:NAME}` in SQL.
    pub named: Arc<Mutex<BTreeMap<String, String>>>,
    /// Background submits still running.
    pub(super) background: Vec<std::thread::JoinHandle<()>>,
    /// What the seeding put in the bank (`None`: nothing seeded).
    pub seeded_total: Option<i64>,
    pub(super) coordinator_addr: Arc<Mutex<Option<SocketAddr>>>,
    pub(super) workload: Option<workload::Running>,
    /// Pids whose exit was already reported.
    pub(super) reported_exits: BTreeSet<u32>,
}

pub(super) fn node_id(node: NodeName) -> u32 {
    match node {
        NodeName::Coordinator => COORDINATOR_ID,
        NodeName::Participant(id) => id,
    }
}

impl Run {
    fn start(name: &str, scenario: Scenario, timeline: Timeline) -> Result<Run, String> {
        let n = scenario.participants;
        let config = cluster_config(n);
        let dir = WorkDir::temp(&format!("scenario-{name}-")).map_err(|e| e.to_string())?;
        let mut cluster = LocalCluster::new(config, dir).map_err(|e| e.to_string())?;
        let mut proxies = BTreeMap::new();
        for target in 1..=n {
            let real = cluster.participant_addrs()[target as usize - 1];
            for from in (1..=n)
                .filter(|from| *from != target)
                .chain([COORDINATOR_ID])
            {
                let proxy = Proxy::start(real).map_err(|e| format!("proxy: {e}"))?;
                cluster
                    .config
                    .dial_overrides
                    .insert((from, target), proxy.addr());
                proxies.insert((from, target), proxy);
            }
        }
        timeline.event(
            "runner",
            format!(
                "{n} participants, {} proxies, protocol {}, files in {}",
                proxies.len(),
                scenario.protocol.flag(),
                cluster.dir().display()
            ),
        );
        let mut run = Run {
            scenario,
            cluster,
            timeline,
            proxies,
            txns: Arc::new(Mutex::new(Vec::new())),
            named: Arc::new(Mutex::new(BTreeMap::new())),
            background: Vec::new(),
            seeded_total: None,
            coordinator_addr: Arc::new(Mutex::new(None)),
            workload: None,
            reported_exits: BTreeSet::new(),
        };
        for id in 1..=n {
            run.restart(NodeName::Participant(id), &[])?;
        }
        run.restart(NodeName::Coordinator, &[])?;
        Ok(run)
    }

    /// Seeds every account, then restarts the nodes of `crash_at` with their points (so
    /// the seeding cannot trip them).
    fn seed(&mut self) -> Result<(), String> {
        self.wait_connected(READY_WITHIN)?;
        let accounts = self.scenario.accounts.clone();
        let n = self.scenario.participants;
        if accounts.per_participant > 0 {
            let ops: Vec<String> = (1..=n)
                .flat_map(|p| {
                    (0..accounts.per_participant)
                        .map(move |i| format!("{p}:put {} {}", account(p, i), accounts.balance))
                })
                .collect();
            let record = self.submit(&ops, Some(Protocol::TwoPhase), (1..=n).collect());
            if record.outcome != ClientOutcome::Committed {
                return Err(format!("seeding did not commit: {:?}", record.outcome));
            }
            // The crash points armed below must not meet the seeding's own phase two (an
            // ack can still be on its way, or a Decide re-sent, after the client heard).
            if let Some(id) = &record.id {
                self.wait_applied(id, n, READY_WITHIN)?;
            }
            let count = i64::from(n * accounts.per_participant);
            self.seeded_total = Some(count * accounts.balance);
            self.timeline.event(
                "runner",
                format!("seeded {count} accounts of {}", accounts.balance),
            );
        }
        let crash_at = self.scenario.crash_at.clone();
        for (node, points) in &crash_at {
            let node = NodeName::parse(node, n)?;
            self.restart(node, points)?;
        }
        if !crash_at.is_empty() {
            self.wait_connected(READY_WITHIN)?;
        }
        if self.scenario.workload.is_some()
            && !self
                .scenario
                .steps
                .iter()
                .any(|step| matches!(step, Step::StartWorkload {}))
        {
            self.start_workload();
        }
        Ok(())
    }

    pub(super) fn start_workload(&mut self) {
        let Some(spec) = self.scenario.workload.clone() else {
            return;
        };
        let target = Target {
            coordinator: self.coordinator_addr.clone(),
            protocol: self.scenario.protocol,
            timeout_ms: self.scenario.timeout_ms,
            participants: self.scenario.participants,
            accounts: self.scenario.accounts.per_participant,
        };
        self.timeline.event(
            "runner",
            format!("workload: {:?}, {} client(s)", spec.kind, spec.clients),
        );
        self.workload = Some(workload::start(
            &spec,
            target,
            self.txns.clone(),
            self.timeline.clone(),
        ));
    }

    /// Runs one transaction on the coordinator now, records and prints its outcome.
    pub(super) fn submit(
        &mut self,
        ops: &[String],
        protocol: Option<Protocol>,
        writes: Vec<u32>,
    ) -> TxnRecord {
        let addr = self.cluster.coordinator_addr();
        let protocol = protocol.unwrap_or(self.scenario.protocol);
        let record = submit(addr, protocol, self.scenario.timeout_ms, ops, writes);
        self.timeline.event(
            "client",
            format!(
                "{} [{}]: {}",
                protocol.flag(),
                ops.join(", "),
                workload::describe(&record)
            ),
        );
        self.txns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record.clone());
        record
    }

    /// Waits until the coordinator's `status` shows every participant up. A status
    /// report, not a probe transaction: a probe would trip the crash points.
    /// Waits until txn `id` is committed in the files of participants 1..=`n`.
    fn wait_applied(&mut self, id: &str, n: u32, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let sql = format!("SELECT state FROM txn WHERE txn_id = '{id}'");
        loop {
            let applied = (1..=n).all(|p| {
                self.query(NodeName::Participant(p), &sql)
                    .is_ok_and(|rows| rows == [vec!["committed".to_string()]])
            });
            if applied {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "seeding txn {id} not committed everywhere within {within:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(super) fn wait_connected(&mut self, within: Duration) -> Result<(), String> {
        let n = self.scenario.participants;
        let deadline = Instant::now() + within;
        loop {
            if let Some(addr) = self.running(NodeName::Coordinator).map(Node::addr) {
                let ran = Launch::new("status", crate::binary("coordinator"))
                    .args([
                        "status",
                        "--addr",
                        &addr.to_string(),
                        "--cluster",
                        crate::CLUSTER,
                    ])
                    .run(STATUS_WITHIN);
                let up = ran.map_or(0, |ran| {
                    (1..=n)
                        .filter(|id| {
                            ran.stdout.lines().any(|line| {
                                line.trim_start().starts_with(&format!("{id} "))
                                    && line.contains(" up")
                            })
                        })
                        .count()
                });
                if up == n as usize {
                    self.timeline
                        .event("runner", "coordinator connected to every participant");
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("not connected within {within:?}"));
            }
            self.notice_exits();
            std::thread::sleep(POLL * 2);
        }
    }

    /// Waits (up to `DECISIONS_END_WITHIN`) until the coordinator's log has no unfinished
    /// decision: ends are written lazily, and a restarted coordinator would re-send the
    /// Commit of one, tripping its new crash points on an old transaction.
    fn wait_decisions_ended(&self) {
        let deadline = Instant::now() + DECISIONS_END_WITHIN;
        while Instant::now() < deadline
            && self.query(NodeName::Coordinator, "SELECT count(*) FROM unfinished")
                != Ok(vec![vec!["0".to_string()]])
        {
            std::thread::sleep(POLL);
        }
    }

    /// (Re)starts a node with crash points armed. A coordinator is restarted only once
    /// its old decision log has no unfinished decision left to re-send, or after 5 s.
    pub(super) fn restart(&mut self, node: NodeName, crash_at: &[String]) -> Result<(), String> {
        let extra: Vec<String> = crash_at
            .iter()
            .flat_map(|point| ["--crash-at".to_string(), point.clone()])
            .collect();
        let with = if crash_at.is_empty() {
            String::new()
        } else {
            format!(" with --crash-at {}", crash_at.join(" "))
        };
        self.notice_exits();
        let was_running = self.process(node).is_some();
        match node {
            NodeName::Participant(id) => self
                .cluster
                .start_participant(id, &extra)
                .map_err(|e| e.to_string())?,
            NodeName::Coordinator => {
                if self.running(NodeName::Coordinator).is_some() {
                    self.wait_decisions_ended();
                }
                self.cluster
                    .start_coordinator(&extra)
                    .map_err(|e| e.to_string())?;
                *self
                    .coordinator_addr
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = self.cluster.coordinator_addr();
            }
        }
        let verb = if was_running {
            "restart (killed first)"
        } else {
            "start"
        };
        let pid = self.process(node).map(Node::pid).unwrap_or(0);
        self.timeline
            .event(&node.to_string(), format!("{verb}, pid {pid}{with}"));
        Ok(())
    }

    pub fn process(&self, node: NodeName) -> Option<&Node> {
        match node {
            NodeName::Coordinator => self.cluster.coordinator.as_ref(),
            NodeName::Participant(id) => self.cluster.participants[id as usize - 1].as_ref(),
        }
    }

    /// The node's process if it has not exited.
    pub fn running(&self, node: NodeName) -> Option<&Node> {
        self.process(node)
            .filter(|process| process.wait_exit(Duration::ZERO).is_none())
    }

    pub(super) fn take(&mut self, node: NodeName) -> Option<Node> {
        match node {
            NodeName::Coordinator => self.cluster.coordinator.take(),
            NodeName::Participant(id) => self.cluster.participants[id as usize - 1].take(),
        }
    }

    /// Prints every node that exited by itself since last looked, with its crash point.
    pub fn notice_exits(&mut self) {
        let mut exited = Vec::new();
        for node in self.nodes() {
            if let Some(process) = self.process(node)
                && !self.reported_exits.contains(&process.pid())
                && let Some(status) = process.wait_exit(Duration::ZERO)
            {
                let why = process
                    .log()
                    .and_then(|log| std::fs::read_to_string(log).ok())
                    .and_then(|log| {
                        log.lines()
                            .rev()
                            .find(|line| line.starts_with("crash point"))
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| format!("exited: {status}"));
                exited.push((node, process.pid(), why));
            }
        }
        for (node, pid, why) in exited {
            self.reported_exits.insert(pid);
            self.timeline.event(&node.to_string(), why);
        }
    }

    pub fn nodes(&self) -> Vec<NodeName> {
        (1..=self.scenario.participants)
            .map(NodeName::Participant)
            .chain([NodeName::Coordinator])
            .collect()
    }

    /// The node's database file.
    pub fn db(&self, node: NodeName) -> PathBuf {
        match node {
            NodeName::Coordinator => self.cluster.coordinator_db(COORDINATOR_ID),
            NodeName::Participant(id) => self.cluster.participant_db(id),
        }
    }

    pub fn query(&self, node: NodeName, sql: &str) -> Result<Vec<Vec<String>>, String> {
        cluster::query(&self.db(node), sql).map_err(|e| e.to_string())
    }

    /// `sql` with every `{txn:NAME}` replaced by that submit's txn id.
    pub fn expand(&self, sql: &str) -> Result<String, String> {
        let mut out = sql.to_string();
        while let Some(start) = out.find("{txn:") {
            let end = out[start..]
                .find('}')
                .map(|end| start + end)
                .ok_or(format!("unclosed {{txn: in `{sql}`"))?;
            let name = &out[start + 5..end];
            let id = self
                .named
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
                .cloned()
                .ok_or(format!("no submit step named '{name}' got a txn id"))?;
            out.replace_range(start..=end, &id);
        }
        Ok(out)
    }

    fn stop_nodes(&mut self) {
        for node in self.nodes() {
            if let Some(process) = self.take(node) {
                process.kill();
            }
        }
    }
}
