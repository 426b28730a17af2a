//! A coordinator and N participants on 127.0.0.1, each with its own SQLite file and log in
//! one work directory: the command lines are built here, once, for the demo, the benchmark
//! and the tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::{Launch, Node, StartError, WorkDir, reserve_loopback_addrs};

/// What every node of the cluster shares, and the extra flags of each kind.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Where the `participant` and `coordinator` binaries are.
    pub bin_dir: PathBuf,
    pub cluster_id: String,
    /// Participants get ids 1..=participants.
    pub participants: u32,
    /// The main coordinator's node id (clients use 0; participants 1..=N).
    pub coordinator_id: u32,
    /// `--heartbeat-ms` for every node; the nodes' default when `None`.
    pub heartbeat_ms: Option<u64>,
    /// Extra flags for every participant and for every coordinator.
    pub participant_args: Vec<String>,
    pub coordinator_args: Vec<String>,
    /// `RUST_LOG` for the nodes; inherited when `None`.
    pub rust_log: Option<String>,
    /// `(from, to) -> addr`: node `from` is told participant `to` is at `addr` (e.g. a
    /// fault-injecting proxy) instead of its listen address.
    pub dial_overrides: BTreeMap<(u32, u32), SocketAddr>,
    /// The cluster secret every node gets in its environment (`wire::CLUSTER_SECRET_ENV`);
    /// inherited when `None`.
    pub cluster_secret: Option<wire::Secret>,
}

impl ClusterConfig {
    /// `participants` participants and coordinator 100, the binaries in `bin_dir`.
    pub fn new(bin_dir: impl Into<PathBuf>, cluster_id: &str, participants: u32) -> Self {
        ClusterConfig {
            bin_dir: bin_dir.into(),
            cluster_id: cluster_id.to_string(),
            participants,
            coordinator_id: 100,
            heartbeat_ms: None,
            participant_args: Vec::new(),
            coordinator_args: Vec::new(),
            rust_log: None,
            dial_overrides: BTreeMap::new(),
            cluster_secret: None,
        }
    }
}

/// The running nodes. Every node is killed when the cluster (or the `Node` taken out of
/// it) drops.
#[derive(Debug)]
pub struct LocalCluster {
    pub config: ClusterConfig,
    pub dir: WorkDir,
    /// Participant `id` is at index `id - 1`; `None` while it is down.
    pub participants: Vec<Option<Node>>,
    pub coordinator: Option<Node>,
    /// Participant addresses, fixed for the cluster's life so a restarted participant is
    /// found where the coordinator and its peers dial.
    participant_addrs: Vec<SocketAddr>,
}

impl LocalCluster {
    /// Reserves the participants' addresses; starts nothing.
    pub fn new(config: ClusterConfig, dir: WorkDir) -> Result<LocalCluster, StartError> {
        let count = usize::try_from(config.participants).unwrap_or(usize::MAX);
        let participant_addrs = reserve_loopback_addrs(count).map_err(StartError::Ports)?;
        Ok(LocalCluster {
            participants: (0..count).map(|_| None).collect(),
            coordinator: None,
            participant_addrs,
            config,
            dir,
        })
    }

    /// Every participant, then the coordinator, with no extra flags.
    pub fn start(config: ClusterConfig, dir: WorkDir) -> Result<LocalCluster, StartError> {
        let mut cluster = LocalCluster::new(config, dir)?;
        for id in 1..=cluster.config.participants {
            cluster.start_participant(id, &[])?;
        }
        cluster.start_coordinator(&[])?;
        Ok(cluster)
    }

    pub fn participant_ids(&self) -> impl Iterator<Item = u32> + use<> {
        1..=self.config.participants
    }

    pub fn participant_addrs(&self) -> &[SocketAddr] {
        &self.participant_addrs
    }

    pub fn participant_db(&self, id: u32) -> PathBuf {
        self.dir.path().join(format!("participant-{id}.db"))
    }

    /// The decision log of coordinator `id` (`coordinator.db` for the main one).
    pub fn coordinator_db(&self, id: u32) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.db", self.coordinator_name(id)))
    }

    fn coordinator_name(&self, id: u32) -> String {
        if id == self.config.coordinator_id {
            "coordinator".to_string()
        } else {
            format!("coordinator-{id}")
        }
    }

    /// The main coordinator's client address.
    pub fn coordinator_addr(&self) -> Option<SocketAddr> {
        self.coordinator.as_ref().map(Node::addr)
    }

    /// Every node running now, participants first.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.participants.iter().flatten().chain(&self.coordinator)
    }

    /// (Re)starts participant `id` on its reserved address, killing the old process first.
    pub fn start_participant(&mut self, id: u32, extra: &[String]) -> Result<(), StartError> {
        let index = self.index(id);
        if let Some(old) = self.participants[index].take() {
            old.kill();
        }
        let name = format!("participant-{id}");
        let mut launch = Launch::new(&name, self.config.bin_dir.join("participant"))
            .args(["serve", "--id"])
            .arg(id.to_string())
            .arg("--listen")
            .arg(self.participant_addrs[index].to_string())
            .arg("--db")
            .arg(self.participant_db(id))
            .args(self.common_args());
        for peer in self.participant_ids().filter(|peer| *peer != id) {
            let addr = self.dial_addr(id, peer);
            launch = launch.arg("--peer").arg(format!("{peer}={addr}"));
        }
        let launch = launch.args(&self.config.participant_args).args(extra);
        self.participants[index] = Some(self.launch(launch, &name)?);
        Ok(())
    }

    /// (Re)starts the main coordinator, killing the old process first.
    pub fn start_coordinator(&mut self, extra: &[String]) -> Result<(), StartError> {
        if let Some(old) = self.coordinator.take() {
            old.kill();
        }
        self.coordinator = Some(self.spawn_coordinator(self.config.coordinator_id, extra)?);
        Ok(())
    }

    /// Starts coordinator `id` with its own decision log, dialling every participant, on a
    /// free port; the caller owns it (several coordinators may serve one cluster).
    pub fn spawn_coordinator(&self, id: u32, extra: &[String]) -> Result<Node, StartError> {
        let name = self.coordinator_name(id);
        let mut launch = Launch::new(&name, self.config.bin_dir.join("coordinator"))
            .args(["serve", "--id"])
            .arg(id.to_string())
            .args(["--listen", "127.0.0.1:0", "--db"])
            .arg(self.coordinator_db(id))
            .args(self.common_args());
        for participant in self.participant_ids() {
            let addr = self.dial_addr(id, participant);
            launch = launch
                .arg("--participant")
                .arg(format!("{participant}={addr}"));
        }
        let launch = launch.args(&self.config.coordinator_args).args(extra);
        self.launch(launch, &name)
    }

    /// The address node `from` dials for participant `to`.
    fn dial_addr(&self, from: u32, to: u32) -> SocketAddr {
        match self.config.dial_overrides.get(&(from, to)) {
            Some(addr) => *addr,
            None => self.participant_addrs[self.index(to)],
        }
    }

    fn common_args(&self) -> Vec<String> {
        let mut args = vec!["--cluster".to_string(), self.config.cluster_id.clone()];
        if let Some(heartbeat_ms) = self.config.heartbeat_ms {
            args.push("--heartbeat-ms".to_string());
            args.push(heartbeat_ms.to_string());
        }
        args
    }

    fn launch(&self, launch: Launch, name: &str) -> Result<Node, StartError> {
        let mut launch = launch.log_to(self.log_path(name));
        if let Some(filter) = &self.config.rust_log {
            launch = launch.env("RUST_LOG", filter);
        }
        // Through the environment, not a flag: a flag's value shows in `ps`.
        if let Some(secret) = &self.config.cluster_secret {
            launch = launch.env(wire::CLUSTER_SECRET_ENV, secret.expose());
        }
        launch.start()
    }

    /// Where node `name`'s stderr goes.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn index(&self, id: u32) -> usize {
        assert!(
            (1..=self.config.participants).contains(&id),
            "participant {id} is not in 1..={}",
            self.config.participants
        );
        id as usize - 1
    }
}
