//! The background workload of a scenario: `clients` threads, each running one
//! `coordinator submit` after another (bank transfers, or a mix with reads), recording
//! what every client was told.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;

use super::client::submit;
use super::format::{Protocol, Workload, WorkloadKind};
use super::{ClientOutcome, Timeline, TxnRecord};

/// Pause after a transaction that was not sent (coordinator down), so a client does not
/// spin starting processes.
const NOT_SENT_PAUSE: Duration = Duration::from_millis(100);

/// Everything a client needs: where to send, and the bank's shape.
#[derive(Clone)]
pub struct Target {
    /// The coordinator's client address now (`None` while it is down).
    pub coordinator: Arc<Mutex<Option<SocketAddr>>>,
    pub protocol: Protocol,
    pub timeout_ms: u64,
    pub participants: u32,
    pub accounts: u32,
}

/// The running workload; `wait` joins it.
pub struct Running {
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Running {
    /// Waits at most `within` for every client to finish; `false` if one is still busy
    /// (it is then told to stop after its current transaction).
    pub fn wait(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.threads.iter().any(|thread| !thread.is_finished()) {
            if Instant::now() >= deadline {
                self.stop.store(true, Ordering::Relaxed);
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        true
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub fn start(
    workload: &Workload,
    target: Target,
    txns: Arc<Mutex<Vec<TxnRecord>>>,
    timeline: Timeline,
) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicU32::new(0));
    let deadline = workload
        .duration_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let threads = (0..workload.clients)
        .map(|client| {
            let (workload, target, txns, timeline) = (
                workload.clone(),
                target.clone(),
                txns.clone(),
                timeline.clone(),
            );
            let (stop, started) = (stop.clone(), started.clone());
            std::thread::spawn(move || {
                let mut rng = rand::rng();
                loop {
                    if stop.load(Ordering::Relaxed)
                        || deadline.is_some_and(|at| Instant::now() >= at)
                    {
                        return;
                    }
                    if let Some(count) = workload.count
                        && started.fetch_add(1, Ordering::Relaxed) >= count
                    {
                        return;
                    }
                    let (ops, writes) = transaction(&workload, &target, &mut rng);
                    let addr = *target.coordinator.lock().unwrap_or_else(|p| p.into_inner());
                    let record = submit(addr, target.protocol, target.timeout_ms, &ops, writes);
                    let name = format!("client-{client}");
                    timeline.event(&name, describe(&record));
                    let not_sent = record.outcome == ClientOutcome::NotSent;
                    txns.lock().unwrap_or_else(|p| p.into_inner()).push(record);
                    if not_sent {
                        std::thread::sleep(NOT_SENT_PAUSE);
                    }
                }
            })
        })
        .collect();
    Running { threads, stop }
}

/// One line for the timeline: the outcome and the txn id.
pub fn describe(record: &TxnRecord) -> String {
    let outcome = match record.outcome {
        ClientOutcome::Committed => "committed",
        ClientOutcome::Aborted => "aborted",
        ClientOutcome::Unknown => "outcome UNKNOWN",
        ClientOutcome::NotSent => "not sent (coordinator unreachable)",
    };
    match &record.id {
        Some(id) => format!("txn {id} {outcome}"),
        None => format!("txn {outcome}"),
    }
}

/// The account key `i` of participant `p`.
pub fn account(p: u32, i: u32) -> String {
    format!("acct{p}_{i}")
}

/// A random transaction of the workload: its ops and the participants it writes on.
fn transaction(
    workload: &Workload,
    target: &Target,
    rng: &mut impl Rng,
) -> (Vec<String>, Vec<u32>) {
    let n = target.participants;
    let pick = |rng: &mut dyn rand::RngCore| rng.random_range(0..target.accounts);
    let from = rng.random_range(1..=n);
    let to = loop {
        let to = rng.random_range(1..=n);
        if to != from {
            break to;
        }
    };
    let amount = rng.random_range(1..=workload.amount_max);
    let transfer = vec![
        format!("{from}:add {} -{amount} min 0", account(from, pick(rng))),
        format!("{to}:add {} {amount}", account(to, pick(rng))),
    ];
    if workload.kind == WorkloadKind::Transfers || rng.random_bool(0.5) {
        return (transfer, vec![from, to]);
    }
    // A read of one account on every participant: read-only, touches everyone.
    let reads = (1..=n)
        .map(|p| format!("{p}:get {}", account(p, pick(rng))))
        .collect();
    (reads, Vec::new())
}
