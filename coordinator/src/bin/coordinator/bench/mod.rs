//! `coordinator bench`: bank transfers at a fixed number of transactions in flight, in
//! the spirit of pgbench, against a local cluster it starts (or one already running), a
//! progress line every second, a summary with latency percentiles and the cost per
//! committed transaction on every node, and a check that the bank total is conserved and
//! every transaction has one outcome everywhere.

mod load;
mod report;
mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cluster::{ClusterConfig, CpuTime, LocalCluster, StartError, WorkDir};
use coordinator::shell::commands::{self, CallError};
use rand::Rng;
use wire::Protocol;
use wire::runtime;

use crate::bank::{self, ACCOUNTS_MAX, Bank, PARTICIPANTS_MAX, WorkloadError};
use crate::demo::{COORDINATOR_ID, check_binaries};
use load::Load;
pub use report::Summary;
use verify::{IoCounts, Verdict};

pub const CLIENTS_MAX: usize = 4_096;
pub const CONNECTIONS_MAX: usize = 64;
pub const OPS_PER_PARTICIPANT_MAX: u32 = 100;
pub const TRANSACTIONS_MAX: u64 = 100_000_000;
pub const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);
/// Cluster id of the clusters the benchmark starts.
pub const CLUSTER_ID: &str = "bench";

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub protocol: Protocol,
    pub participants: u32,
    /// Transactions in flight (closed loop: each client submits its next one when the
    /// last one's result arrives).
    pub clients: usize,
    /// Client connections the clients share (each pipelines its clients' requests).
    pub connections: usize,
    pub duration: Duration,
    /// Stop after this many transactions instead of after `duration`.
    pub transactions: Option<u64>,
    pub accounts: u32,
    /// Zipf exponent of the account choice (0: uniform).
    pub skew: f64,
    pub ops_per_participant: u32,
    /// One request in flight per participant channel.
    pub stop_and_wait: bool,
    /// An existing cluster's coordinator instead of a local cluster.
    pub coordinator: Option<SocketAddr>,
    pub cluster_id: String,
    /// Leave the accounts as they are (an existing cluster seeded earlier).
    pub no_init: bool,
    pub json: bool,
    pub dir: Option<PathBuf>,
    pub seed: Option<u64>,
    /// Every local node's `--retain` (theirs by default).
    pub retain: Option<Duration>,
    pub bin_dir: PathBuf,
}

#[derive(thiserror::Error, Debug)]
pub enum BenchError {
    #[error("invalid bench settings: {0}")]
    Config(String),
    #[error("bench directory: {0}")]
    Dir(std::io::Error),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Workload(#[from] WorkloadError),
}

impl From<CallError> for BenchError {
    fn from(error: CallError) -> Self {
        BenchError::Workload(error.into())
    }
}

/// A node whose cost the benchmark measures: its client address, and its process if the
/// benchmark started it.
struct Measured {
    name: String,
    addr: SocketAddr,
    pid: Option<u32>,
}

/// Runs the benchmark; the summary says whether verification passed.
pub fn run(config: BenchConfig) -> Result<Summary, BenchError> {
    check(&config)?;
    let seed = config.seed.unwrap_or_else(|| rand::rng().random());
    let bank = Bank {
        participants: config.participants,
        accounts: config.accounts,
        protocol: config.protocol,
    };
    let mut local = match config.coordinator {
        Some(_) => None,
        None => Some(start_local(&config)?),
    };
    let coordinator = match (&local, config.coordinator) {
        (Some(local), _) => local.coordinator_addr().expect("just started"),
        (None, Some(addr)) => addr,
        (None, None) => unreachable!("a coordinator address or a local cluster"),
    };
    let mut measured: Vec<Measured> = Vec::new();
    if let Some(local) = &local {
        for (id, addr) in local.participant_ids().zip(local.participant_addrs()) {
            let pid = local.participants[id as usize - 1]
                .as_ref()
                .map(cluster::Node::pid);
            measured.push(Measured {
                name: format!("participant-{id}"),
                addr: *addr,
                pid,
            });
        }
    }
    measured.push(Measured {
        name: "coordinator".to_string(),
        addr: coordinator,
        pid: local
            .as_ref()
            .and_then(|local| local.coordinator.as_ref())
            .map(cluster::Node::pid),
    });

    let cluster_id = config.cluster_id.clone();
    // The load runs on one executor thread, as a node does: its clients' wake-ups stay
    // off the other core, which the nodes need.
    let load_config = config.clone();
    let mut summary = runtime::block_on_node(async move {
        let config = load_config;
        let client = Arc::new(commands::connect(coordinator, &cluster_id).await?);
        bank::wait_for_participants(&client, config.participants).await?;
        if !config.no_init {
            bank.seed(&client).await?;
        }
        let total_before = bank.total(&client).await?;
        let cpu_before = cpu_times(&measured);
        let io_before = io_counts(&measured, &cluster_id).await;
        let load = Load::new(&config, &bank, seed);
        let outcome = load.run(coordinator, &cluster_id, client.clone()).await?;
        let cpu_after = cpu_times(&measured);
        let io_after = io_counts(&measured, &cluster_id).await;
        let total_after = bank.total(&client).await?;
        verify::settle(&client).await;
        let mut summary = Summary::new(&config, seed, outcome);
        summary.conservation(total_before, total_after);
        for (index, node) in measured.iter().enumerate() {
            summary.node_cost(
                &node.name,
                cpu_delta(&cpu_before[index], &cpu_after[index]),
                io_delta(&io_before[index], &io_after[index]),
            );
        }
        Ok::<_, BenchError>(summary)
    })?;

    if let Some(local) = &mut local {
        // Stopped (SIGKILL) before reading: the files then hold exactly what was durable.
        local.participants.iter_mut().for_each(|node| *node = None);
        local.coordinator = None;
        let verdict = verify::from_files(local, &summary.tracked);
        summary.verdict = verdict;
    } else {
        summary.verdict = Verdict::remote();
    }
    Ok(summary)
}

fn check(config: &BenchConfig) -> Result<(), BenchError> {
    let bad = |what: String| Err(BenchError::Config(what));
    if !(2..=PARTICIPANTS_MAX).contains(&config.participants) {
        return bad(format!(
            "--participants {} outside 2..={PARTICIPANTS_MAX} (a transfer needs two)",
            config.participants
        ));
    }
    if !(1..=ACCOUNTS_MAX).contains(&config.accounts) {
        return bad(format!(
            "--accounts {} outside 1..={ACCOUNTS_MAX}",
            config.accounts
        ));
    }
    if !(1..=CLIENTS_MAX).contains(&config.clients) {
        return bad(format!(
            "--clients {} outside 1..={CLIENTS_MAX}",
            config.clients
        ));
    }
    if !(1..=CONNECTIONS_MAX).contains(&config.connections) {
        return bad(format!(
            "--connections {} outside 1..={CONNECTIONS_MAX}",
            config.connections
        ));
    }
    if !(1..=OPS_PER_PARTICIPANT_MAX).contains(&config.ops_per_participant)
        || config.ops_per_participant > config.accounts
    {
        return bad(format!(
            "--ops-per-participant {} outside 1..={OPS_PER_PARTICIPANT_MAX} or above --accounts",
            config.ops_per_participant
        ));
    }
    if !(0.0..=10.0).contains(&config.skew) {
        return bad(format!("--skew {} outside 0..=10", config.skew));
    }
    if config.duration.is_zero() || config.duration > DURATION_MAX {
        return bad("--duration must be between 1 s and 24 h".to_string());
    }
    if config
        .transactions
        .is_some_and(|n| n == 0 || n > TRANSACTIONS_MAX)
    {
        return bad(format!("--transactions outside 1..={TRANSACTIONS_MAX}"));
    }
    if config.coordinator.is_some() && config.stop_and_wait {
        return bad(
            "--stop-and-wait starts its own coordinator; for an existing cluster, start the \
             coordinator with --channel-in-flight-max 1 instead"
                .to_string(),
        );
    }
    if config.coordinator.is_none() {
        check_binaries(&config.bin_dir).map_err(BenchError::Config)?;
    }
    Ok(())
}

fn start_local(config: &BenchConfig) -> Result<LocalCluster, BenchError> {
    let dir = match &config.dir {
        Some(dir) => WorkDir::empty_or_new(dir),
        None => WorkDir::temp("coordinator-bench-"),
    }
    .map_err(BenchError::Dir)?;
    if let Err(error) = cluster::stop_children_on_interrupt() {
        tracing::warn!(%error, "cannot install the Ctrl-C handler");
    }
    let mut cluster_config = ClusterConfig::new(&config.bin_dir, CLUSTER_ID, config.participants);
    cluster_config.coordinator_id = COORDINATOR_ID;
    // A fresh cluster secret, handed to every node through its environment: nothing
    // else on the machine can join this cluster.
    cluster_config.cluster_secret = Some(wire::Secret::generate());
    cluster_config.rust_log = Some("warn".to_string());
    // Every client's transaction must fit, with room for the seeding and the reads.
    cluster_config.coordinator_args = vec![
        "--txns-in-flight-max".to_string(),
        (config.clients + CLIENTS_MAX).to_string(),
    ];
    if config.stop_and_wait {
        cluster_config
            .coordinator_args
            .extend(["--channel-in-flight-max".to_string(), "1".to_string()]);
    }
    if let Some(retain) = config.retain {
        let (participant, coordinator) =
            crate::retain::cluster_args(retain, config.protocol).map_err(BenchError::Config)?;
        cluster_config.participant_args.extend(participant);
        cluster_config.coordinator_args.extend(coordinator);
    }
    let cluster = LocalCluster::start(cluster_config, dir)?;
    if !config.json {
        eprintln!(
            "local cluster: {} participants and a coordinator in {}",
            config.participants,
            cluster.dir().display()
        );
    }
    Ok(cluster)
}

/// Each node's CPU time now (`None` for a node the benchmark did not start).
fn cpu_times(nodes: &[Measured]) -> Vec<Option<CpuTime>> {
    nodes
        .iter()
        .map(|node| node.pid.and_then(|pid| cluster::cpu_time_of(pid).ok()))
        .collect()
}

fn cpu_delta(before: &Option<CpuTime>, after: &Option<CpuTime>) -> Option<Duration> {
    Some(
        after
            .as_ref()?
            .total()
            .saturating_sub(before.as_ref()?.total()),
    )
}

/// Each node's status counters now (`None` if it does not report them).
async fn io_counts(nodes: &[Measured], cluster_id: &str) -> Vec<Option<IoCounts>> {
    let mut counts = Vec::new();
    for node in nodes {
        let report = commands::status(commands::Target {
            addr: node.addr,
            cluster_id,
            token: None,
        })
        .await
        .ok();
        counts.push(report.as_deref().and_then(IoCounts::parse));
    }
    counts
}

fn io_delta(before: &Option<IoCounts>, after: &Option<IoCounts>) -> Option<IoCounts> {
    Some(after.as_ref()?.minus(before.as_ref()?))
}
