//! Isolation with real processes: two coordinators serve one cluster of three
//! participants; transfers and read-all transactions go through both at once, and every
//! committed read-all must see the conserved bank total (a read that saw half of a
//! transfer would not). Bounded in time; every child is killed on drop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tests::{Cluster, describe, submit_to};

/// Participants 1..=3 each hold one account, `acct`, of `BALANCE`.
const PARTICIPANTS: u32 = 3;
const BALANCE: i64 = 100;
/// How long the mixed load runs.
const LOAD_FOR: Duration = Duration::from_secs(6);
/// A reader's pause between two read-alls.
const READ_PAUSE: Duration = Duration::from_millis(30);
/// The second coordinator's id (the harness's own is 100).
const SECOND_COORDINATOR: u32 = 101;

/// What the reader threads saw.
#[derive(Default)]
struct Seen {
    committed_reads: u64,
    aborted_reads: u64,
    wrong_totals: Vec<String>,
    committed_transfers: u64,
    /// The first transfer that did not commit, for the failure message.
    transfer_failure: Option<String>,
}

/// The sum of `n:acct = V` lines of a committed read-all; `None` if one is missing.
fn read_total(stdout: &str) -> Option<i64> {
    let mut total = 0;
    let mut found = 0;
    for line in stdout.lines() {
        if let Some((_, value)) = line.split_once(":acct = ") {
            total += value.trim().parse::<i64>().ok()?;
            found += 1;
        }
    }
    (found == PARTICIPANTS).then_some(total)
}

fn transfer_ops(step: u64) -> Vec<String> {
    let from = step % u64::from(PARTICIPANTS) + 1;
    let to = (step + 1) % u64::from(PARTICIPANTS) + 1;
    let amount = step % 7 + 1;
    vec![
        format!("{from}:add acct -{amount} min 0"),
        format!("{to}:add acct {amount}"),
    ]
}

fn run_load(addrs: [SocketAddr; 2], protocol: &'static str) -> Seen {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let read_ops: Vec<String> = (1..=PARTICIPANTS)
        .map(|p| format!("{p}:get acct"))
        .collect();
    let mut threads = Vec::new();
    for (index, addr) in addrs.into_iter().enumerate() {
        // A writer and a reader per coordinator.
        let (seen_w, stop_w) = (seen.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut step = index as u64;
            while !stop_w.load(Ordering::Relaxed) {
                let ops = transfer_ops(step);
                let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
                let output = submit_to(addr, protocol, &ops);
                let mut seen = seen_w.lock().expect("lock");
                if output.status.success() {
                    seen.committed_transfers += 1;
                } else if seen.transfer_failure.is_none() {
                    seen.transfer_failure = Some(describe(&output));
                }
                step += 2;
            }
        }));
        let (seen_r, stop_r, read_ops) = (seen.clone(), stop.clone(), read_ops.clone());
        threads.push(std::thread::spawn(move || {
            let ops: Vec<&str> = read_ops.iter().map(String::as_str).collect();
            while !stop_r.load(Ordering::Relaxed) {
                let output = submit_to(addr, protocol, &ops);
                let mut seen = seen_r.lock().expect("lock");
                if !output.status.success() {
                    seen.aborted_reads += 1;
                    continue;
                }
                seen.committed_reads += 1;
                let stdout = String::from_utf8_lossy(&output.stdout);
                let expected = BALANCE * i64::from(PARTICIPANTS);
                if read_total(&stdout) != Some(expected) {
                    seen.wrong_totals.push(describe(&output));
                }
                drop(seen);
                // Leave writers gaps between reads: locking is no-wait, so back-to-back
                // read-alls from two readers would hold every account all the time.
                std::thread::sleep(READ_PAUSE);
            }
        }));
    }
    let started = Instant::now();
    while started.elapsed() < LOAD_FOR {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("load thread");
    }
    Arc::try_unwrap(seen)
        .ok()
        .expect("threads joined")
        .into_inner()
        .expect("lock")
}

fn reads_see_the_conserved_total_with_two_coordinators(protocol: &'static str) {
    let cluster = Cluster::start(PARTICIPANTS as usize, &[], &[]);
    cluster.wait_all_connected();
    let seed: Vec<String> = (1..=PARTICIPANTS)
        .map(|p| format!("{p}:put acct {BALANCE}"))
        .collect();
    let seed: Vec<&str> = seed.iter().map(String::as_str).collect();
    let output = cluster.submit(&seed);
    assert!(output.status.success(), "seeding: {}", describe(&output));
    let second = cluster.start_extra_coordinator(SECOND_COORDINATOR);
    // The second coordinator is ready once a read over every participant commits there.
    let probe: Vec<String> = (1..=PARTICIPANTS)
        .map(|p| format!("{p}:get acct"))
        .collect();
    let probe: Vec<&str> = probe.iter().map(String::as_str).collect();
    let deadline = Instant::now() + tests::CONVERGE_TIMEOUT;
    while !submit_to(second.addr(), protocol, &probe).status.success() {
        assert!(Instant::now() < deadline, "second coordinator never ready");
        std::thread::sleep(Duration::from_millis(100));
    }

    let seen = run_load([cluster.coordinator_addr(), second.addr()], protocol);
    assert!(
        seen.wrong_totals.is_empty(),
        "{} of {} committed reads saw a wrong total; first:\n{}",
        seen.wrong_totals.len(),
        seen.committed_reads,
        seen.wrong_totals[0]
    );
    assert!(seen.committed_reads > 0, "no read-all committed");
    assert!(
        seen.committed_transfers > 0,
        "no transfer committed; first failure:\n{}",
        seen.transfer_failure.unwrap_or_default()
    );
    eprintln!(
        "{protocol}: {} transfers and {} read-alls committed, {} read-alls aborted",
        seen.committed_transfers, seen.committed_reads, seen.aborted_reads
    );
}

#[test]
fn two_phase_reads_see_the_conserved_total_with_two_coordinators() {
    reads_see_the_conserved_total_with_two_coordinators("2pc");
}

#[test]
fn three_phase_reads_see_the_conserved_total_with_two_coordinators() {
    reads_see_the_conserved_total_with_two_coordinators("3pc");
}
