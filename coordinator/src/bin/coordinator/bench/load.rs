//! The benchmark's load: `clients` closed loops over shared client connections, each
//! submitting a transfer, waiting for its result and recording it, until the duration
//! or the transaction count is reached; and the progress line every second.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use coordinator::shell::commands::{self, CallError};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use wire::runtime;
use wire::{Client, NodeId, TxnId, TxnResult};

use super::{BenchConfig, BenchError};
use crate::bank::{Accounts, Bank, Tally};

/// Latencies above this are recorded as this (the histogram's range).
const LATENCY_MAX_US: u64 = 120_000_000;
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Client-side failures (unreachable, refused) before the run stops early: the cluster is
/// not serving, and more attempts measure nothing.
pub const ERRORS_MAX: u64 = 1_000;
/// Outcomes remembered for the atomicity check; past it the rest go unchecked (said in
/// the summary). About 50 bytes each.
pub const TRACKED_MAX: usize = 10_000_000;

/// What the client learned about one transaction, for the check against the files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    Committed,
    Aborted,
    Unknown,
}

#[derive(Clone, Debug)]
pub struct Tracked {
    pub txn: TxnId,
    pub seen: Seen,
    pub parts: [NodeId; 2],
}

/// The load's results.
pub struct LoadOutcome {
    pub tally: Tally,
    /// Calls that failed on the client side (unreachable, refused), not counting unknown
    /// outcomes (in `tally.unknown`).
    pub errors: u64,
    pub last_error: Option<String>,
    /// Latency of committed transactions, in microseconds.
    pub latency: Histogram<u64>,
    pub elapsed: Duration,
    pub tracked: Vec<Tracked>,
    /// Outcomes not tracked because `TRACKED_MAX` was reached.
    pub untracked: u64,
}

struct Stats {
    tally: Tally,
    errors: u64,
    last_error: Option<String>,
    latency: Histogram<u64>,
    tracked: Vec<Tracked>,
    untracked: u64,
}

fn lock(stats: &Mutex<Stats>) -> MutexGuard<'_, Stats> {
    stats
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct Load {
    config: BenchConfig,
    bank: Bank,
    seed: u64,
}

impl Load {
    pub fn new(config: &BenchConfig, bank: &Bank, seed: u64) -> Load {
        Load {
            config: config.clone(),
            bank: bank.clone(),
            seed,
        }
    }

    pub async fn run(
        self,
        coordinator: SocketAddr,
        cluster_id: &str,
        first: Arc<Client>,
    ) -> Result<LoadOutcome, BenchError> {
        let mut connections = vec![first];
        for _ in 1..self.config.connections {
            connections.push(Arc::new(commands::connect(coordinator, cluster_id).await?));
        }
        let histogram = || {
            Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_SIGNIFICANT_DIGITS)
                .expect("valid histogram bounds")
        };
        let stats = Arc::new(Mutex::new(Stats {
            tally: Tally::default(),
            errors: 0,
            last_error: None,
            latency: histogram(),
            tracked: Vec::new(),
            untracked: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let tickets = Arc::new(AtomicU64::new(0));
        let accounts = Arc::new(Accounts::new(self.config.accounts, self.config.skew));
        if !self.config.json {
            eprintln!(
                "bench: {} {} clients on {} connections, {} participants x {} accounts, {}, seed {}",
                self.config.protocol.as_str(),
                self.config.clients,
                self.config.connections,
                self.config.participants,
                self.config.accounts,
                match self.config.transactions {
                    Some(count) => format!("{count} transactions"),
                    None => format!("{} s", self.config.duration.as_secs_f64()),
                },
                self.seed
            );
        }
        let started = Instant::now();
        let mut workers = Vec::new();
        for index in 0..self.config.clients {
            let client = connections[index % connections.len()].clone();
            let worker = Worker {
                bank: self.bank.clone(),
                accounts: accounts.clone(),
                ops: self.config.ops_per_participant,
                rng: StdRng::seed_from_u64(self.seed.wrapping_add(index as u64)),
                stats: stats.clone(),
                stop: stop.clone(),
                tickets: tickets.clone(),
                limit: self.config.transactions,
            };
            workers.push(runtime::spawn(worker.run(client)));
        }
        let progress = runtime::spawn(progress(
            stats.clone(),
            stop.clone(),
            started,
            self.config.duration,
            self.config.transactions,
            self.config.json,
        ));
        if self.config.transactions.is_none() {
            let deadline = started + self.config.duration;
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                let left = deadline.saturating_duration_since(Instant::now());
                runtime::sleep(left.min(PROGRESS_INTERVAL)).await;
            }
            stop.store(true, Ordering::Relaxed);
        }
        for worker in workers {
            worker.await;
        }
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        progress.await;
        let mut stats = lock(&stats);
        Ok(LoadOutcome {
            tally: std::mem::take(&mut stats.tally),
            errors: stats.errors,
            last_error: stats.last_error.take(),
            latency: std::mem::replace(&mut stats.latency, histogram()),
            elapsed,
            tracked: std::mem::take(&mut stats.tracked),
            untracked: stats.untracked,
        })
    }
}

/// One closed loop: submit, wait, record, repeat.
struct Worker {
    bank: Bank,
    accounts: Arc<Accounts>,
    ops: u32,
    rng: StdRng,
    stats: Arc<Mutex<Stats>>,
    stop: Arc<AtomicBool>,
    tickets: Arc<AtomicU64>,
    limit: Option<u64>,
}

impl Worker {
    async fn run(mut self, client: Arc<Client>) {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            if let Some(limit) = self.limit
                && self.tickets.fetch_add(1, Ordering::Relaxed) >= limit
            {
                return;
            }
            let spec = self.bank.transfer(&self.accounts, self.ops, &mut self.rng);
            let parts = [spec.parts[0].0, spec.parts[1].0];
            let txn = TxnId::new_v7();
            let sent = Instant::now();
            let outcome = commands::submit_on(&client, txn, spec).await;
            let latency_us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
            let seen = match &outcome {
                Ok(TxnResult::Committed { .. }) => Some(Seen::Committed),
                Ok(TxnResult::Aborted { .. } | TxnResult::Rejected { .. }) => Some(Seen::Aborted),
                Err(CallError::OutcomeUnknown { .. }) => Some(Seen::Unknown),
                Err(_) => None,
            };
            let mut stats = lock(&self.stats);
            if let Err(error) = stats.tally.count(&outcome) {
                stats.errors += 1;
                stats.last_error = Some(error.to_string());
                if stats.errors >= ERRORS_MAX {
                    self.stop.store(true, Ordering::Relaxed);
                }
            }
            if seen == Some(Seen::Committed) {
                stats.latency.saturating_record(latency_us.max(1));
            }
            if let Some(seen) = seen {
                if stats.tracked.len() < TRACKED_MAX {
                    stats.tracked.push(Tracked { txn, seen, parts });
                } else {
                    stats.untracked += 1;
                }
            }
        }
    }
}

/// Every second: committed txn/s over that second, p50/p99 so far, aborts so far. A
/// progress bar when stdout is a terminal; plain lines on stderr otherwise. Nothing with
/// `--json` (stdout is the summary, and stderr stays quiet for scripts).
async fn progress(
    stats: Arc<Mutex<Stats>>,
    stop: Arc<AtomicBool>,
    started: Instant,
    duration: Duration,
    transactions: Option<u64>,
    json: bool,
) {
    if json {
        return;
    }
    let bar = std::io::stdout().is_terminal().then(|| {
        let (length, template) = match transactions {
            Some(count) => (count, "{bar:30} {pos}/{len} txns  {msg}"),
            None => (duration.as_secs().max(1), "{bar:30} {pos}/{len} s  {msg}"),
        };
        let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar
    });
    let mut last_committed = 0;
    let mut last_at = started;
    while !stop.load(Ordering::Relaxed) {
        runtime::sleep(PROGRESS_INTERVAL).await;
        let now = Instant::now();
        let (committed, done, aborted, p50, p99) = {
            let stats = lock(&stats);
            let latency = &stats.latency;
            (
                stats.tally.committed,
                stats.tally.done() + stats.errors,
                stats.tally.aborted_total() + stats.tally.rejected_total(),
                latency.value_at_quantile(0.50) as f64 / 1000.0,
                latency.value_at_quantile(0.99) as f64 / 1000.0,
            )
        };
        let rate = (committed - last_committed) as f64
            / now
                .duration_since(last_at)
                .as_secs_f64()
                .max(f64::MIN_POSITIVE);
        last_committed = committed;
        last_at = now;
        let elapsed = now.duration_since(started).as_secs_f64();
        let line = format!(
            "{elapsed:5.1} s  {rate:8.0} txn/s  p50 {p50:.2} ms  p99 {p99:.2} ms  \
             committed {committed}  aborted {aborted}"
        );
        match &bar {
            Some(bar) => {
                bar.set_position(match transactions {
                    Some(_) => done,
                    None => elapsed as u64,
                });
                bar.set_message(line);
            }
            None => eprintln!("progress: {line}"),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
