//! `coordinator demo`: a local cluster of real processes (participants + one coordinator)
//! running a bank-transfer workload, then a conservation check and the `sqlite3` commands
//! to inspect what every participant logged. Leaves no process behind, even on Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cluster::{ClusterConfig, LocalCluster, StartError, WorkDir};
use coordinator::shell::commands::{self, CallError};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wire::runtime;
use wire::{Protocol, TxnId, TxnResult, TxnSpec};

use crate::bank::{
    self, ACCOUNTS_MAX, Accounts, Bank, INITIAL_BALANCE, PARTICIPANTS_MAX, Tally, WorkloadError,
};

pub const CLUSTER_ID: &str = "demo";
/// The coordinator's node id (participants are 1..=N; clients are 0).
pub const COORDINATOR_ID: u32 = 100;
pub const TRANSFERS_MAX: u64 = 10_000_000;
pub const CONCURRENCY_MAX: usize = 4_096;

#[derive(Clone, Debug)]
pub struct DemoConfig {
    pub participants: u32,
    /// Accounts per participant.
    pub accounts: u32,
    pub transfers: u64,
    pub concurrency: usize,
    pub protocol: Protocol,
    /// Where the databases and logs go; a fresh temp dir (kept) when `None`.
    pub dir: Option<PathBuf>,
    pub seed: Option<u64>,
    /// Every node's `--retain` (theirs by default).
    pub retain: Option<std::time::Duration>,
    /// Where the `participant` and `coordinator` binaries are.
    pub bin_dir: PathBuf,
}

#[derive(thiserror::Error, Debug)]
pub enum DemoError {
    #[error("invalid demo settings: {0}")]
    Config(String),
    #[error("demo directory: {0}")]
    Dir(std::io::Error),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Workload(#[from] WorkloadError),
}

impl From<CallError> for DemoError {
    fn from(error: CallError) -> Self {
        DemoError::Workload(error.into())
    }
}

/// Runs the demo; `Ok(true)` if the total balance was unchanged.
pub fn run(config: DemoConfig) -> Result<bool, DemoError> {
    check(&config)?;
    let dir = match &config.dir {
        Some(dir) => WorkDir::empty_or_new(dir),
        None => WorkDir::temp_kept("coordinator-demo-"),
    }
    .map_err(DemoError::Dir)?;
    println!("demo directory: {}", dir.path().display());
    let seed = config.seed.unwrap_or_else(|| rand::rng().random());
    if let Err(error) = cluster::stop_children_on_interrupt() {
        tracing::warn!(%error, "cannot install the Ctrl-C handler");
    }

    let mut cluster_config = ClusterConfig::new(&config.bin_dir, CLUSTER_ID, config.participants);
    cluster_config.coordinator_id = COORDINATOR_ID;
    // A fresh cluster secret, handed to every node through its environment: nothing
    // else on the machine can join this cluster.
    cluster_config.cluster_secret = Some(wire::Secret::generate());
    if let Some(retain) = config.retain {
        let (participant, coordinator) =
            crate::retain::cluster_args(retain, config.protocol).map_err(DemoError::Config)?;
        cluster_config.participant_args.extend(participant);
        cluster_config.coordinator_args.extend(coordinator);
    }
    // Every node is killed when `cluster` drops, on error as on success.
    let mut cluster = LocalCluster::new(cluster_config, dir)?;
    for id in cluster.participant_ids() {
        cluster.start_participant(id, &[])?;
        println!(
            "started participant-{id} on {}",
            cluster.participant_addrs()[id as usize - 1]
        );
    }
    cluster.start_coordinator(&[])?;
    let coordinator = cluster.coordinator_addr().expect("just started");
    println!("started coordinator on {coordinator}");

    let bank = Bank {
        participants: config.participants,
        accounts: config.accounts,
        protocol: config.protocol,
    };
    let (tally, elapsed, total) = runtime::block_on(workload(&config, &bank, coordinator, seed))?;
    print_summary(&config, &bank, cluster.dir(), &tally, elapsed, total, seed);
    let stopped = cluster.nodes().count();
    cluster.participants.clear();
    cluster.coordinator = None;
    println!("stopped {stopped} processes");
    Ok(total == bank.expected_total())
}

fn check(config: &DemoConfig) -> Result<(), DemoError> {
    let bad = |what: String| Err(DemoError::Config(what));
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
    if config.transfers > TRANSFERS_MAX {
        return bad(format!(
            "--transfers {} above {TRANSFERS_MAX}",
            config.transfers
        ));
    }
    if !(1..=CONCURRENCY_MAX).contains(&config.concurrency) {
        return bad(format!(
            "--concurrency {} outside 1..={CONCURRENCY_MAX}",
            config.concurrency
        ));
    }
    check_binaries(&config.bin_dir).map_err(DemoError::Config)
}

/// Both node binaries are where the cluster will start them from.
pub fn check_binaries(bin_dir: &Path) -> Result<(), String> {
    for bin in ["participant", "coordinator"] {
        let path = bin_dir.join(bin);
        if !path.is_file() {
            return Err(format!(
                "the {bin} binary is not at {} (build it: cargo build -p {bin})",
                path.display()
            ));
        }
    }
    Ok(())
}

async fn workload(
    config: &DemoConfig,
    bank: &Bank,
    coordinator: std::net::SocketAddr,
    seed: u64,
) -> Result<(Tally, Duration, i64), DemoError> {
    let client = commands::connect(coordinator, CLUSTER_ID).await?;
    bank::wait_for_participants(&client, config.participants).await?;
    bank.seed(&client).await?;
    println!(
        "seeded {} x {} accounts with balance {INITIAL_BALANCE} (total {})",
        config.participants,
        config.accounts,
        bank.expected_total()
    );

    println!(
        "running {} transfers, {} in flight, seed {seed} ...",
        config.transfers, config.concurrency
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let accounts = Accounts::new(config.accounts, 0.0);
    let transfers: Vec<TxnSpec> = (0..config.transfers)
        .map(|_| bank.transfer(&accounts, 1, &mut rng))
        .collect();
    let started = Instant::now();
    let outcomes: Vec<Result<TxnResult, CallError>> = futures::stream::iter(transfers)
        .map(|spec| {
            let client = &client;
            async move { commands::submit_on(client, TxnId::new_v7(), spec).await }
        })
        .buffer_unordered(config.concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut tally = Tally::default();
    for outcome in &outcomes {
        tally.count(outcome)?;
    }
    let total = bank.total(&client).await?;
    Ok((tally, elapsed, total))
}

fn print_summary(
    config: &DemoConfig,
    bank: &Bank,
    dir: &Path,
    tally: &Tally,
    elapsed: Duration,
    total: i64,
    seed: u64,
) {
    let done = tally.done();
    println!();
    println!("transfers:  {}", config.transfers);
    println!("committed:  {}", tally.committed);
    println!(
        "aborted:    {} (by reason; N stands for the ids and amounts that vary)",
        tally.aborted_total()
    );
    for (reason, count) in &tally.aborted {
        println!("  {count:>7}  {reason}");
    }
    if !tally.rejected.is_empty() {
        println!("rejected:   {}", tally.rejected_total());
        for (reason, count) in &tally.rejected {
            println!("  {count:>7}  {reason}");
        }
    }
    if tally.unknown > 0 {
        println!("outcome unknown (no answer in time): {}", tally.unknown);
    }
    let seconds = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    println!(
        "throughput: {:.0} txn/s ({done} txns in {seconds:.2} s, {} in flight, seed {seed})",
        done as f64 / seconds,
        config.concurrency
    );
    println!();
    println!("inspect the logs:");
    for id in 1..=config.participants {
        let db = dir.join(format!("participant-{id}.db"));
        let db = db.display();
        println!("  sqlite3 {db} \"SELECT count(*), sum(value) FROM kv\"");
        println!("  sqlite3 {db} \"SELECT * FROM txn_counts\"");
        println!("  sqlite3 {db} \"SELECT * FROM txn ORDER BY txn_id DESC LIMIT 5\"");
        println!("  sqlite3 {db} \"SELECT * FROM txn_log ORDER BY txn_id DESC, seq LIMIT 5\"");
    }
    let db = dir.join("coordinator.db");
    println!(
        "  sqlite3 {} \"SELECT * FROM decision_counts\"",
        db.display()
    );
    println!("  (process logs: {}/*.log)", dir.display());
    println!();
    let expected = bank.expected_total();
    if total == expected {
        println!("total balance: {total} (expected {expected}): OK, nothing created or lost");
    } else {
        println!("total balance: {total} (expected {expected}): MISMATCH, atomicity violated");
    }
}
