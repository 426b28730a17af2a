//! The simulator's command line: `--seeds N` runs a batch and ends with one summary line
//! `mode=M seeds=N txns=T violations=V excused_splits=E seeds_per_s=R` (exit status 1 if
//! V > 0); `--faults every` runs each mode in turn, one summary line each; `--seed S`
//! replays one seed and prints its event trace first.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use tests::sim::{
    self, COORDINATORS_MAX, FaultOptions, Options, PARTICIPANTS_MAX, PARTICIPANTS_MIN, Planted,
    ProtocolMix, Report,
};

/// Violations printed per failing seed in batch mode (the replay shows them all).
const VIOLATIONS_SHOWN_MAX: usize = 5;
/// Trace lines printed for the first failing seed of a batch (its replay prints all).
const TRACE_TAIL_LINES: usize = 40;

#[derive(Parser, Debug)]
#[command(about = "Deterministic simulation of the real coordinator and participant cores")]
struct Args {
    /// Run this many seeds (from --start) and print a summary line.
    #[arg(long, conflicts_with = "seed", required_unless_present = "seed")]
    seeds: Option<u64>,
    /// First seed of a batch.
    #[arg(long, default_value_t = 0, requires = "seeds")]
    start: u64,
    /// Replay one seed and print its event trace.
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, value_enum, default_value_t = ProtocolArg::TwoPc)]
    protocol: ProtocolArg,
    /// Participants per cluster (default: each seed picks one).
    #[arg(long, value_parser = clap::value_parser!(u64).range(PARTICIPANTS_MIN as u64..=PARTICIPANTS_MAX as u64))]
    participants: Option<u64>,
    /// Coordinators, each with its own channels and decision log; transactions spread
    /// over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=COORDINATORS_MAX as u64))]
    coordinators: u64,
    #[arg(long, value_enum, default_value_t = FaultsArg::All)]
    faults: FaultsArg,
    /// Override the chance (percent) that a coordinator log write makes it crash around
    /// the time the record becomes durable.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
    coordinator_crash_on_persist_pct: Option<u32>,
    /// The same for participants' log writes.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
    participant_crash_on_persist_pct: Option<u32>,
    /// Run against a deliberately broken variant (the checkers should fail).
    #[arg(long, value_enum, default_value_t = PlantedArg::None)]
    planted: PlantedArg,
    /// Retention window in virtual ms: participants and coordinators prune decided txns
    /// below their horizon after every group commit (default: no pruning).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    retain_ms: Option<u64>,
    /// Worker threads for a batch (default: available cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: Option<u64>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProtocolArg {
    #[value(name = "2pc")]
    TwoPc,
    #[value(name = "3pc")]
    ThreePc,
    Mixed,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FaultsArg {
    /// Crashes, partitions (symmetric and one-way), resets, clock jumps.
    All,
    /// Crashes only, a failure detector that suspects only crashed nodes, good clocks.
    CrashOnly,
    /// Partitions (symmetric and one-way), resets, clock jumps and drift, slow writes; no
    /// crashes.
    Network,
    /// One coordinator crash just after a PreCommit, nothing else.
    SingleCoordinatorCrash,
    /// Crash-only, and one group commit in ten takes up to 3 s.
    SlowDisk,
    /// Crash-only, with clock drift and jumps inside 3PC's timing bounds.
    Clock,
    /// Crash-only, with crashes aimed at termination leaders right after their decision,
    /// at the coordinator's log writes and PreCommits (often 2-3 crashes in a txn).
    AimedCrash,
    None,
    /// Every mode above, one after another, each with `--seeds` seeds and
    /// its own summary line.
    Every,
}

/// The modes `--faults every` runs, in order.
const EVERY_MODE: [FaultsArg; 8] = [
    FaultsArg::CrashOnly,
    FaultsArg::SlowDisk,
    FaultsArg::Clock,
    FaultsArg::AimedCrash,
    FaultsArg::SingleCoordinatorCrash,
    FaultsArg::Network,
    FaultsArg::All,
    FaultsArg::None,
];

fn fault_options(faults: FaultsArg) -> FaultOptions {
    match faults {
        FaultsArg::All => FaultOptions::all(),
        FaultsArg::CrashOnly => FaultOptions::crash_only(),
        FaultsArg::Network => FaultOptions::network_only(),
        FaultsArg::SingleCoordinatorCrash => FaultOptions::single_coordinator_crash(),
        FaultsArg::SlowDisk => FaultOptions::slow_disk(),
        FaultsArg::Clock => FaultOptions::clock(),
        FaultsArg::AimedCrash => FaultOptions::aimed_crashes(),
        FaultsArg::None | FaultsArg::Every => FaultOptions::none(),
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PlantedArg {
    None,
    CommitBeforeDurable,
    ForgetPrepared,
    TimeoutsWithoutTermination,
    ReleaseReadLocksAtVote,
    ForgetReadHolds,
}

fn options(args: &Args, faults: FaultsArg) -> Options {
    let mut options = Options {
        participants: args.participants.map(|n| n as usize),
        protocol: match args.protocol {
            ProtocolArg::TwoPc => ProtocolMix::TwoPhase,
            ProtocolArg::ThreePc => ProtocolMix::ThreePhase,
            ProtocolArg::Mixed => ProtocolMix::Mixed,
        },
        faults: fault_options(faults),
        planted: match args.planted {
            PlantedArg::None => Planted::None,
            PlantedArg::CommitBeforeDurable => Planted::CommitBeforeDurable,
            PlantedArg::ForgetPrepared => Planted::ForgetPreparedOnRestart,
            PlantedArg::TimeoutsWithoutTermination => Planted::TimeoutsWithoutTermination,
            PlantedArg::ReleaseReadLocksAtVote => Planted::ReleaseReadLocksAtVote,
            PlantedArg::ForgetReadHolds => Planted::ForgetReadHoldsOnRestart,
        },
        coordinators: args.coordinators as usize,
        retain_ms: args.retain_ms,
        ..Options::default()
    };
    if let Some(pct) = args.coordinator_crash_on_persist_pct {
        options.faults.coordinator_crash_on_persist_pct = pct;
    }
    if let Some(pct) = args.participant_crash_on_persist_pct {
        options.faults.participant_crash_on_persist_pct = pct;
    }
    options
}

fn main() -> ExitCode {
    let args = Args::parse();
    let modes: Vec<FaultsArg> = match args.faults {
        FaultsArg::Every => {
            if args.seed.is_some() {
                eprintln!("error: --faults every runs batches; replay one mode with --seed");
                return ExitCode::from(2);
            }
            EVERY_MODE.to_vec()
        }
        mode => vec![mode],
    };
    let mut failed_any = false;
    for mode in modes {
        match run_mode(&args, mode) {
            Ok(true) => {}
            Ok(false) => failed_any = true,
            Err(code) => return code,
        }
    }
    if failed_any {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs the seeds (or replays one) under one fault mode and prints its summary line;
/// `Ok(false)` if a seed failed.
fn run_mode(args: &Args, mode: FaultsArg) -> Result<bool, ExitCode> {
    let mut options = options(args, mode);
    if let Err(reason) = options.validate() {
        eprintln!("error: {reason}");
        return Err(ExitCode::from(2));
    }
    let started = Instant::now();
    let reports = match args.seed {
        Some(seed) => {
            options.trace = true;
            let report = sim::run(seed, &options);
            for line in &report.trace {
                println!("{line}");
            }
            vec![report]
        }
        None => {
            let count = args.seeds.unwrap_or(0);
            let threads = args.threads.map_or_else(
                || std::thread::available_parallelism().map_or(1, |n| n.get()),
                |n| n as usize,
            );
            batch(args.start, count, threads, &options)
        }
    };
    let elapsed_s = started.elapsed().as_secs_f64().max(1e-9);
    let txns: u64 = reports.iter().map(|report| report.txns).sum();
    let failed: Vec<&Report> = reports
        .iter()
        .filter(|report| !report.violations.is_empty())
        .collect();
    for report in &failed {
        println!(
            "seed={} participants={} FAILED with {} violations",
            report.seed,
            report.participants,
            report.violations.len()
        );
        let shown = if args.seed.is_some() {
            report.violations.len()
        } else {
            VIOLATIONS_SHOWN_MAX
        };
        for violation in report.violations.iter().take(shown) {
            println!("  {violation}");
        }
        if args.seed.is_none() {
            println!("  replay: {}", replay_command(report.seed, args, mode));
        }
    }
    if let (None, Some(first)) = (args.seed, failed.first()) {
        let traced = sim::run(
            first.seed,
            &Options {
                trace: true,
                ..options.clone()
            },
        );
        let tail = traced.trace.len().saturating_sub(TRACE_TAIL_LINES);
        println!(
            "seed={} trace, last {} lines:",
            first.seed,
            traced.trace.len() - tail
        );
        for line in &traced.trace[tail..] {
            println!("{line}");
        }
    }
    let excused: usize = reports.iter().map(|report| report.excused.len()).sum();
    if args.seed.is_some() {
        for report in &reports {
            for line in &report.excused {
                println!("excused 3pc split: {line}");
            }
        }
    } else if let Some(example) = reports.iter().find_map(|report| {
        report
            .excused
            .first()
            .map(|line| format!("seed {}: {line}", report.seed))
    }) {
        println!("example excused 3pc split: {example}");
    }
    let mode_name = mode
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string());
    println!(
        "mode={mode_name} seeds={} txns={txns} violations={} excused_splits={excused} \
         seeds_per_s={:.1}",
        reports.len(),
        failed.len(),
        reports.len() as f64 / elapsed_s
    );
    Ok(failed.is_empty())
}

/// Runs seeds `start..start + count` on `threads` threads; reports in seed order.
fn batch(start: u64, count: u64, threads: usize, options: &Options) -> Vec<Report> {
    let next = AtomicU64::new(start);
    let end = start.saturating_add(count);
    let reports = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        return;
                    }
                    let report = sim::run(seed, options);
                    reports
                        .lock()
                        .expect("no worker panics holding it")
                        .push(report);
                }
            });
        }
    });
    let mut reports = std::mem::take(&mut *reports.lock().expect("workers done"));
    reports.sort_by_key(|report| report.seed);
    reports
}

fn replay_command(seed: u64, args: &Args, mode: FaultsArg) -> String {
    let mut command = format!(
        "cargo run --release -p tests --bin sim -- --seed {seed} --protocol {} --faults {}",
        args.protocol
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_string()),
        mode.to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_string()),
    );
    if let Some(pct) = args.coordinator_crash_on_persist_pct {
        command.push_str(&format!(" --coordinator-crash-on-persist-pct {pct}"));
    }
    if let Some(pct) = args.participant_crash_on_persist_pct {
        command.push_str(&format!(" --participant-crash-on-persist-pct {pct}"));
    }
    if let Some(participants) = args.participants {
        command.push_str(&format!(" --participants {participants}"));
    }
    if args.coordinators > 1 {
        command.push_str(&format!(" --coordinators {}", args.coordinators));
    }
    if let Some(planted) = args.planted.to_possible_value()
        && !matches!(args.planted, PlantedArg::None)
    {
        command.push_str(&format!(" --planted {}", planted.get_name()));
    }
    command
}
