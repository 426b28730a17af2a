//! The model checker's command line: explores one small configuration exhaustively and
//! prints `states=S transitions=T depth=D exhausted=E all_committed=.. all_aborted=..
//! violations=V seconds=..`; on a violation, the path to it first (exit status 1).

use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use tests::mc::{self, McOptions};
use wire::Protocol;

#[derive(Parser, Debug)]
#[command(about = "Exhaustive exploration of 1 coordinator + 2 participants over the real cores")]
struct Args {
    #[arg(long, value_enum, default_value_t = ProtocolArg::TwoPc)]
    protocol: ProtocolArg,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=2))]
    txns: u64,
    /// Crashes in one execution (of any nodes; each crashed node may restart).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=2))]
    crashes: u32,
    /// Links may lose messages (otherwise only a crash loses them).
    #[arg(long)]
    lossy: bool,
    /// Default: `mc::default_timer_firings_max` (fewer with two 3PC crashes).
    #[arg(long)]
    timer_firings_max: Option<u32>,
    #[arg(long, default_value_t = 200)]
    depth_max: usize,
    #[arg(long, default_value_t = 500_000_000)]
    transitions_max: usize,
    /// Breadth-first search: the shortest violation path, but memory grows with the
    /// frontier (tens of GB for two crashes); depth-first by default.
    #[arg(long)]
    bfs: bool,
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    threads: usize,
    /// Run the coordinator with planted bug 1 of issue 7 (a recovering 3PC coordinator
    /// that decides beside the participants' termination protocol).
    #[arg(long)]
    planted_second_decider: bool,
    /// Let participants prune any decided transaction at any time (retention).
    #[arg(long)]
    prune: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProtocolArg {
    #[value(name = "2pc")]
    TwoPc,
    #[value(name = "3pc")]
    ThreePc,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let protocol = match args.protocol {
        ProtocolArg::TwoPc => Protocol::TwoPhase,
        ProtocolArg::ThreePc => Protocol::ThreePhase,
    };
    let options = McOptions {
        protocol,
        txns: args.txns as usize,
        crashes_max: args.crashes,
        lossy: args.lossy,
        timer_firings_max: args
            .timer_firings_max
            .unwrap_or_else(|| mc::default_timer_firings_max(protocol, args.crashes)),
        depth_max: args.depth_max,
        transitions_max: args.transitions_max,
        depth_first: !args.bfs,
        threads: args.threads,
        planted_second_decider: args.planted_second_decider,
        prune: args.prune,
    };
    let report = mc::explore(&options);
    if let Some((detail, path)) = &report.violation {
        println!("VIOLATION: {detail}");
        for line in path {
            println!("{line}");
        }
    }
    println!(
        "timer_firings_max={} states={} transitions={} depth={} exhausted={} all_committed={} all_aborted={} violations={} seconds={:.1}",
        options.timer_firings_max,
        report.states,
        report.transitions,
        report.depth,
        report.exhausted,
        report.all_committed_reachable,
        report.all_aborted_reachable,
        usize::from(report.violation.is_some()),
        report.elapsed.as_secs_f64()
    );
    if report.violation.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
