//! `coordinator demo`: a local cluster of real processes (participants + one coordinator)
//! running a bank-transfer workload, then a conservation check and the `sqlite3` commands
//! to inspect what every participant logged. Leaves no process behind, even on Ctrl-C.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wire::{Client, NodeId, Op, Protocol, TxnId, TxnResult, TxnSpec, Value};

use super::commands::{self, CallError};
use super::runtime;

pub const CLUSTER_ID: &str = "demo";
/// Every account starts with this balance; transfers move 1..=it, so some overdraw.
pub const INITIAL_BALANCE: i64 = 100;
/// The coordinator's node id (participants are 1..=N; clients are 0).
pub const COORDINATOR_ID: u32 = 100;
pub const TXN_TIMEOUT_MS: u64 = 5_000;
pub const PARTICIPANTS_MAX: u32 = 16;
pub const ACCOUNTS_MAX: u32 = 100_000;
pub const TRANSFERS_MAX: u64 = 10_000_000;
pub const CONCURRENCY_MAX: usize = 4_096;
/// Ops per seeding or reading transaction (below the coordinator's per-txn limit).
const OPS_PER_TXN: usize = 500;
/// How long a child may take to print its LISTENING line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the coordinator may take to see every participant up.
const CONNECT_ALL_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Attempts to read the balances: a read votes NO while a finishing commit holds a lock.
const READ_ATTEMPTS_MAX: u32 = 50;
const READ_RETRY_PAUSE: Duration = Duration::from_millis(100);

#[derive(Clone, Debug)]
pub struct DemoConfig {
    pub participants: u32,
    /// Accounts per participant.
    pub accounts: u32,
    pub transfers: u64,
    pub concurrency: usize,
    pub protocol: Protocol,
    /// Where the databases and logs go; a fresh temp dir when `None`.
    pub dir: Option<PathBuf>,
    pub seed: Option<u64>,
    /// Where the `participant` and `coordinator` binaries are.
    pub bin_dir: PathBuf,
}

#[derive(thiserror::Error, Debug)]
pub enum DemoError {
    #[error("invalid demo settings: {0}")]
    Config(String),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{name} did not start: {reason} (see {})", log.display())]
    Startup {
        name: String,
        reason: String,
        log: PathBuf,
    },
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("{0}")]
    Workload(String),
}

/// The workload's outcome.
#[derive(Debug, Default)]
pub struct Tally {
    pub committed: u64,
    /// Abort reasons with their numbers replaced by `N`, and how often each occurred.
    pub aborted: BTreeMap<String, u64>,
    pub rejected: BTreeMap<String, u64>,
    /// Transfers whose outcome the client never learned.
    pub unknown: u64,
}

/// Runs the demo; `Ok(true)` if the total balance was unchanged.
pub fn run(config: DemoConfig) -> Result<bool, DemoError> {
    check(&config)?;
    let dir = prepare_dir(config.dir.as_deref())?;
    println!("demo directory: {}", dir.display());
    let seed = config.seed.unwrap_or_else(|| rand::rng().random());
    let children = Children::default();
    let _stop_on_drop = StopOnDrop(children.clone());
    let for_signal = children.clone();
    if let Err(error) = ctrlc::set_handler(move || {
        eprintln!("interrupted: stopping every demo process");
        for_signal.stop_all();
        std::process::exit(130);
    }) {
        tracing::warn!(%error, "cannot install the Ctrl-C handler");
    }

    // The participant mesh (termination protocol, in-doubt peers asking each other)
    // needs every participant to know the others' addresses before it starts. With
    // ephemeral ports that means choosing them first: `reserve_ports` binds free ports
    // and releases them just before the participants bind them again.
    let participant_bin = config.bin_dir.join("participant");
    let listen = reserve_ports(config.participants)?;
    let mut participant_addrs = Vec::new();
    for (id, addr) in (1..=config.participants).zip(&listen) {
        let name = format!("participant-{id}");
        let mut args = vec![
            "serve".to_string(),
            "--id".to_string(),
            id.to_string(),
            "--listen".to_string(),
            addr.to_string(),
            "--db".to_string(),
            dir.join(format!("{name}.db")).display().to_string(),
            "--cluster".to_string(),
            CLUSTER_ID.to_string(),
        ];
        for (peer, peer_addr) in (1..=config.participants).zip(&listen) {
            if peer != id {
                args.push("--peer".to_string());
                args.push(format!("{peer}={peer_addr}"));
            }
        }
        let addr = children.start(&name, &participant_bin, &args, &dir)?;
        println!("started {name} on {addr}");
        participant_addrs.push((NodeId(id), addr));
    }
    let mut args = vec![
        "serve".to_string(),
        "--id".to_string(),
        COORDINATOR_ID.to_string(),
        "--listen".to_string(),
        "127.0.0.1:0".to_string(),
        "--db".to_string(),
        dir.join("coordinator.db").display().to_string(),
        "--cluster".to_string(),
        CLUSTER_ID.to_string(),
    ];
    for (id, addr) in &participant_addrs {
        args.push("--participant".to_string());
        args.push(format!("{id}={addr}"));
    }
    let coordinator = children.start(
        "coordinator",
        &config.bin_dir.join("coordinator"),
        &args,
        &dir,
    )?;
    println!("started coordinator on {coordinator}");

    // On error, `_stop_on_drop` stops every child as this returns.
    let (tally, elapsed, total) = runtime::block_on(workload(&config, coordinator, seed))?;
    print_summary(&config, &dir, &tally, elapsed, total, seed);
    let stopped = children.stop_all();
    println!("stopped {stopped} processes");
    Ok(total == expected_total(&config))
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
    for bin in ["participant", "coordinator"] {
        let path = config.bin_dir.join(bin);
        if !path.is_file() {
            return bad(format!(
                "the {bin} binary is not at {} (build it: cargo build -p {bin})",
                path.display()
            ));
        }
    }
    Ok(())
}

/// `count` distinct free loopback addresses: all bound at once (so they differ), then
/// released for the participants to bind. Another process could take one in between;
/// that participant then fails to start with a clear error (acceptable for a demo).
fn reserve_ports(count: u32) -> Result<Vec<SocketAddr>, DemoError> {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let io = |source| DemoError::Io {
        what: "cannot reserve a loopback port",
        path: PathBuf::from(any.to_string()),
        source,
    };
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind(any).map_err(io))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map_err(io))
        .collect()
}

fn prepare_dir(dir: Option<&Path>) -> Result<PathBuf, DemoError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| DemoError::Io { what, path, source }
    };
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
            let mut entries = std::fs::read_dir(dir).map_err(io("cannot read", dir))?;
            if entries.next().is_some() {
                return Err(DemoError::Config(format!(
                    "--dir {} is not empty: the demo needs a fresh directory",
                    dir.display()
                )));
            }
            Ok(dir.to_path_buf())
        }
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let dir = std::env::temp_dir()
                .join(format!("coordinator-demo-{stamp}-{}", std::process::id()));
            std::fs::create_dir(&dir).map_err(io("cannot create", &dir))?;
            Ok(dir)
        }
    }
}

fn expected_total(config: &DemoConfig) -> i64 {
    i64::from(config.participants) * i64::from(config.accounts) * INITIAL_BALANCE
}

fn account(index: u32) -> String {
    format!("acct-{index}")
}

async fn workload(
    config: &DemoConfig,
    coordinator: SocketAddr,
    seed: u64,
) -> Result<(Tally, Duration, i64), DemoError> {
    let client = commands::connect(coordinator, CLUSTER_ID).await?;
    wait_for_participants(&client, config.participants).await?;

    for participant in 1..=config.participants {
        let puts: Vec<Op> = (0..config.accounts)
            .map(|index| Op::Put {
                key: account(index),
                value: Value::Int(INITIAL_BALANCE),
            })
            .collect();
        for chunk in puts.chunks(OPS_PER_TXN) {
            let spec = spec(config.protocol, vec![(NodeId(participant), chunk.to_vec())]);
            let txn = TxnId::new_v7();
            match commands::submit_on(&client, txn, spec).await? {
                TxnResult::Committed { .. } => {}
                other => {
                    return Err(DemoError::Workload(format!(
                        "seeding participant {participant} failed (txn {txn}): {other:?}"
                    )));
                }
            }
        }
    }
    println!(
        "seeded {} x {} accounts with balance {INITIAL_BALANCE} (total {})",
        config.participants,
        config.accounts,
        expected_total(config)
    );

    println!(
        "running {} transfers, {} in flight, seed {seed} ...",
        config.transfers, config.concurrency
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let transfers: Vec<TxnSpec> = (0..config.transfers)
        .map(|_| transfer(config, &mut rng))
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
    for outcome in outcomes {
        match outcome {
            Ok(TxnResult::Committed { .. }) => tally.committed += 1,
            Ok(TxnResult::Aborted { reason }) => {
                *tally.aborted.entry(numbers_as_n(&reason)).or_insert(0) += 1;
            }
            Ok(TxnResult::Rejected { reason }) => {
                *tally.rejected.entry(numbers_as_n(&reason)).or_insert(0) += 1;
            }
            Err(CallError::OutcomeUnknown { .. }) => tally.unknown += 1,
            Err(error) => return Err(error.into()),
        }
    }
    let total = total_balance(config, &client).await?;
    Ok((tally, elapsed, total))
}

/// Waits until the coordinator reports no participant down (it dials them after it
/// starts listening, so the first transactions could otherwise abort as "down").
async fn wait_for_participants(client: &Client, participants: u32) -> Result<(), DemoError> {
    let deadline = Instant::now() + CONNECT_ALL_TIMEOUT;
    loop {
        let report = match client
            .call(wire::ClientRequest::Status, commands::STATUS_TIMEOUT)
            .await
        {
            Ok(wire::Response::Client(wire::ClientResponse::StatusReport { text })) => text,
            other => {
                return Err(DemoError::Workload(format!(
                    "status request failed: {other:?}"
                )));
            }
        };
        if !report.contains(" DOWN") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(DemoError::Workload(format!(
                "the coordinator did not reach all {participants} participants within {} s:\n{report}",
                CONNECT_ALL_TIMEOUT.as_secs()
            )));
        }
        runtime::sleep(POLL_INTERVAL).await;
    }
}

fn spec(protocol: Protocol, parts: Vec<(NodeId, Vec<Op>)>) -> TxnSpec {
    TxnSpec {
        protocol,
        timeout_ms: TXN_TIMEOUT_MS,
        parts,
    }
}

/// A random transfer between accounts on two distinct participants.
fn transfer(config: &DemoConfig, rng: &mut StdRng) -> TxnSpec {
    let from = rng.random_range(1..=config.participants);
    let to = loop {
        let to = rng.random_range(1..=config.participants);
        if to != from {
            break to;
        }
    };
    let amount = rng.random_range(1..=INITIAL_BALANCE);
    let debit = Op::Add {
        key: account(rng.random_range(0..config.accounts)),
        delta: -amount,
        min: Some(0),
        max: None,
    };
    let credit = Op::Add {
        key: account(rng.random_range(0..config.accounts)),
        delta: amount,
        min: None,
        max: None,
    };
    spec(
        config.protocol,
        vec![(NodeId(from), vec![debit]), (NodeId(to), vec![credit])],
    )
}

/// Reads every account through read-only transactions and sums the balances.
async fn total_balance(config: &DemoConfig, client: &Client) -> Result<i64, DemoError> {
    let mut total = 0i64;
    for participant in 1..=config.participants {
        let gets: Vec<Op> = (0..config.accounts)
            .map(|index| Op::Get {
                key: account(index),
            })
            .collect();
        for chunk in gets.chunks(OPS_PER_TXN) {
            total += read_sum(config, client, NodeId(participant), chunk).await?;
        }
    }
    Ok(total)
}

async fn read_sum(
    config: &DemoConfig,
    client: &Client,
    participant: NodeId,
    gets: &[Op],
) -> Result<i64, DemoError> {
    let mut last = String::new();
    for _ in 0..READ_ATTEMPTS_MAX {
        let spec = spec(config.protocol, vec![(participant, gets.to_vec())]);
        match commands::submit_on(client, TxnId::new_v7(), spec).await? {
            TxnResult::Committed { reads } => {
                let mut sum = 0i64;
                for read in reads.iter().flat_map(|(_, reads)| reads) {
                    match &read.value {
                        Some(Value::Int(balance)) => sum += balance,
                        other => {
                            return Err(DemoError::Workload(format!(
                                "participant {participant}: {} holds {other:?}, not a balance",
                                read.key
                            )));
                        }
                    }
                }
                return Ok(sum);
            }
            other => {
                // A commit still being applied holds its locks: try again shortly.
                last = format!("{other:?}");
                runtime::sleep(READ_RETRY_PAUSE).await;
            }
        }
    }
    Err(DemoError::Workload(format!(
        "could not read the balances on participant {participant}: {last}"
    )))
}

/// Groups reasons that differ only in ids and numbers: a transaction id becomes `<txn>`,
/// every other run of digits `N` ("participant 2 ... acct-17 ... -3").
fn numbers_as_n(reason: &str) -> String {
    let words: Vec<String> = reason
        .split(' ')
        .map(|word| {
            let bare = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
            if uuid::Uuid::parse_str(bare).is_ok() {
                word.replace(bare, "<txn>")
            } else {
                digits_as_n(word)
            }
        })
        .collect();
    words.join(" ")
}

fn digits_as_n(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut in_number = false;
    for c in word.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

fn print_summary(
    config: &DemoConfig,
    dir: &Path,
    tally: &Tally,
    elapsed: Duration,
    total: i64,
    seed: u64,
) {
    let done = tally.committed
        + tally.aborted.values().sum::<u64>()
        + tally.rejected.values().sum::<u64>()
        + tally.unknown;
    println!();
    println!("transfers:  {}", config.transfers);
    println!("committed:  {}", tally.committed);
    println!("aborted:    {}", tally.aborted.values().sum::<u64>());
    for (reason, count) in &tally.aborted {
        println!("  {count:>7}  {reason}");
    }
    if !tally.rejected.is_empty() {
        println!("rejected:   {}", tally.rejected.values().sum::<u64>());
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
    let expected = expected_total(config);
    if total == expected {
        println!("total balance: {total} (expected {expected}): OK, nothing created or lost");
    } else {
        println!("total balance: {total} (expected {expected}): MISMATCH, atomicity violated");
    }
}

/// The demo's child processes, shared with the Ctrl-C handler; `stop_all` kills and
/// reaps them (idempotent).
#[derive(Clone, Default)]
struct Children {
    running: Arc<Mutex<Vec<(String, Child)>>>,
}

impl Children {
    fn lock(&self) -> MutexGuard<'_, Vec<(String, Child)>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts `bin args` with stderr to `dir/name.log` and returns the address from its
    /// `LISTENING ip:port` line.
    fn start(
        &self,
        name: &str,
        bin: &Path,
        args: &[String],
        dir: &Path,
    ) -> Result<SocketAddr, DemoError> {
        let log = dir.join(format!("{name}.log"));
        let stderr = File::create(&log).map_err(|source| DemoError::Io {
            what: "cannot create",
            path: log.clone(),
            source,
        })?;
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|source| DemoError::Io {
                what: "cannot start",
                path: bin.to_path_buf(),
                source,
            })?;
        let stdout = child.stdout.take();
        self.lock().push((name.to_string(), child));
        let startup_error = |reason: String| DemoError::Startup {
            name: name.to_string(),
            reason,
            log: log.clone(),
        };
        let stdout = stdout.ok_or_else(|| startup_error("no stdout pipe".to_string()))?;
        let (line_tx, line_rx) = mpsc::channel();
        // Reads the LISTENING line, then keeps draining stdout so the child never blocks
        // on a full pipe. Ends when the child exits.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(addr) = line.strip_prefix("LISTENING ") {
                    sent = line_tx.send(addr.trim().to_string()).is_ok();
                }
            }
        });
        let addr = line_rx
            .recv_timeout(STARTUP_TIMEOUT)
            .map_err(|_| startup_error("no LISTENING line (exited or timed out)".to_string()))?;
        addr.parse()
            .map_err(|_| startup_error(format!("bad LISTENING address {addr:?}")))
    }

    /// Kills and reaps every child; returns how many there were.
    fn stop_all(&self) -> usize {
        let mut running = self.lock();
        let count = running.len();
        for (name, child) in running.iter_mut() {
            if let Err(error) = child.kill() {
                tracing::debug!(%name, %error, "kill failed (already exited?)");
            }
            let _ = child.wait();
        }
        running.clear();
        count
    }
}

/// Stops every child when the demo returns, whichever way (error, panic or success).
struct StopOnDrop(Children);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_differing_only_in_numbers_and_ids_group_together() {
        assert_eq!(
            numbers_as_n("participant 2 voted no: add on acct-17 would leave -3 below min 0"),
            "participant N voted no: add on acct-N would leave -N below min N"
        );
        assert_eq!(
            numbers_as_n(
                "participant 1 voted no: lock conflict on \"acct-9\" held by txn \
                 01a20111-3ef4-7296-a6fa-b7c407deddf4."
            ),
            "participant N voted no: lock conflict on \"acct-N\" held by txn <txn>."
        );
    }

    #[test]
    fn a_transfer_moves_an_amount_between_two_distinct_participants() {
        let config = DemoConfig {
            participants: 2,
            accounts: 3,
            transfers: 1,
            concurrency: 1,
            protocol: Protocol::TwoPhase,
            dir: None,
            seed: None,
            bin_dir: PathBuf::new(),
        };
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let spec = transfer(&config, &mut rng);
            let [(from, debit), (to, credit)] = spec.parts.as_slice() else {
                panic!("two parts expected: {spec:?}");
            };
            assert_ne!(from, to);
            let (
                Op::Add {
                    delta: minus,
                    min: Some(0),
                    ..
                },
                Op::Add { delta: plus, .. },
            ) = (&debit[0], &credit[0])
            else {
                panic!("debit with min 0 and credit expected: {spec:?}");
            };
            assert_eq!(-minus, *plus);
            assert!((1..=INITIAL_BALANCE).contains(plus));
        }
    }
}
