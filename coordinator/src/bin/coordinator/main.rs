//! The `coordinator` binary: `serve` a coordinator node, `submit` a transaction, ask for
//! `status`, look up one `txn` in a decision log (`txn.rs`), run the local-cluster `demo`,
//! or `bench` a cluster.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use cli::{
    EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN, EXIT_UNREACHABLE, EXIT_USAGE, LogFormat, init_tracing,
};
use coordinator::client::{self, ResultText};
use coordinator::core::{
    DECIDE_RESEND_MS_DEFAULT, KEY_BYTES_MAX_DEFAULT, OPS_PER_TXN_MAX_DEFAULT,
    TIMEOUT_MS_MAX_DEFAULT, TXNS_IN_FLIGHT_MAX_DEFAULT, VALUE_BYTES_MAX_DEFAULT,
};
use coordinator::shell::commands::{self, CallError};
use wire::runtime;
use wire::{NodeId, Protocol, TxnId, TxnResult, TxnSpec};

use crate::bench::BenchConfig;
use crate::demo::DemoConfig;

mod bank;
mod bench;
mod demo;
mod retain;
mod serve;
mod txn;

/// mimalloc, not glibc's malloc: a node allocates and frees small buffers for every
/// message and record, and glibc's malloc and free were about a tenth of its CPU at load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "coordinator",
    version,
    about = "Atomic-commit coordinator (2PC with presumed abort, or 3PC) and its client commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines on stderr as text, or as one JSON object per line (fields `timestamp`,
    /// `level`, `fields`, `target`, `spans`). Colour codes only when stderr is a terminal.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a coordinator node: prints `LISTENING ip:port` once ready, logs to stderr.
    #[command(after_help = SERVE_HELP)]
    Serve(Box<ServeArgs>),
    /// Submit one transaction and print its outcome.
    #[command(after_help = SUBMIT_HELP)]
    Submit(SubmitArgs),
    /// Print a running coordinator's status report.
    #[command(after_help = STATUS_HELP)]
    Status(AddrArgs),
    /// Print one transaction as the decision log records it.
    #[command(after_help = txn::TXN_HELP)]
    Txn(txn::TxnArgs),
    /// Start a local cluster (participants + coordinator), run bank transfers, check
    /// that the total balance is unchanged, stop everything.
    #[command(after_help = DEMO_HELP)]
    Demo(DemoArgs),
    /// Benchmark bank transfers: a local cluster (or --coordinator ADDR), a progress
    /// line every second, a summary, then a check of conservation and atomicity.
    #[command(after_help = BENCH_HELP)]
    Bench(BenchArgs),
}

const SERVE_HELP: &str = "\
Example (participants 1 and 2 already listening on 7001 and 7002):
  coordinator serve --id 100 --listen 127.0.0.1:7000 --db coordinator.db --cluster demo \\
      --participant 1=127.0.0.1:7001 --participant 2=127.0.0.1:7002

Addresses may name a host (localhost:7000); it is resolved once, at start-up. The listen
address is bound before the decision log is opened and before any participant is dialled.
SIGTERM or Ctrl-C stops it gracefully: new transactions are refused, those in flight
have up to 3 s to finish, then connections and the decision log close, one log line,
exit status 0 (a second signal: at once, 130).
Exit status: 1 if it cannot start (address in use, database unusable) or stops on a
failed log write; 2 usage or invalid configuration.";

const STATUS_HELP: &str = "\
Example:
  coordinator status --addr 127.0.0.1:7000 --cluster demo

Exit status: 0 report printed; 1 refused or rejected (e.g. a wrong --cluster); 2 usage
error; 4 coordinator unreachable or no answer.";

const DEMO_HELP: &str = "\
Examples:
  coordinator demo
  coordinator demo --protocol 3pc --transfers 10000 --accounts 100 --dir demo-files

Exit status: 0 the total balance is unchanged; 1 it changed, or the demo could not run;
2 usage error.";

const BENCH_HELP: &str = "\
Examples:
  coordinator bench --clients 1 --duration 10
  coordinator bench --clients 64 --protocol 3pc --duration 10 --json
  coordinator bench --clients 64 --stop-and-wait --duration 10
  coordinator bench --coordinator 127.0.0.1:7000 --cluster demo --participants 2

Progress goes to stderr (a bar when stdout is a terminal); the summary, or with --json
one JSON object, to stdout. Exit status: 0 verified; 1 a conservation or atomicity
violation, or the benchmark could not run; 2 usage error.";

const SUBMIT_HELP: &str = "\
Operations (one argument each, quoted):
  NODE:get KEY                          read KEY
  NODE:put KEY VALUE                    write VALUE: 42 or -5 is an integer, \"007\" (in double
                                        quotes) is text, other words are text; 007, +5 or a
                                        number past 64 bits is refused (quote it for text)
  NODE:del KEY                          delete KEY
  NODE:add KEY DELTA [min M] [max M]    add to an integer; votes NO if the result leaves the bounds

Examples:
  # seed two accounts first (a transfer on an empty cluster aborts: no balance to debit)
  coordinator submit --addr 127.0.0.1:7000 --cluster demo '1:put alice 100' '2:put bob 100'
  # a bank transfer: 5 from alice on participant 1 to bob on participant 2
  coordinator submit --addr 127.0.0.1:7000 --cluster demo '1:add alice -5 min 0' '2:add bob 5'
  coordinator submit --addr 127.0.0.1:7000 --cluster demo '1:get alice' '2:get bob'
  # text that looks like a number: double quotes inside the argument
  coordinator submit --addr 127.0.0.1:7000 --cluster demo '1:put zip \"007\"'
  # the same transfer with three-phase commit (non-blocking if the coordinator crashes)
  coordinator submit --addr 127.0.0.1:7000 --cluster demo --protocol 3pc '1:add alice -5 min 0' '2:add bob 5'

Prints the transaction id, then `committed` (and the values read) or `aborted: <reason>`.
Exit status: 0 committed; 1 aborted, refused or rejected (e.g. a wrong --cluster); 2 usage
error; 3 outcome UNKNOWN (sent, no answer in time: it may have committed); 4 coordinator
unreachable (nothing was sent).";

#[derive(Args, Debug)]
struct ServeArgs {
    /// This coordinator's node id.
    #[arg(long)]
    id: u32,
    /// Address for client connections, IP:PORT or HOST:PORT (port 0: any free port).
    #[arg(long, value_parser = wire::addr::resolve)]
    listen: SocketAddr,
    /// The decision log (SQLite; created if missing).
    #[arg(long)]
    db: PathBuf,
    /// Cluster id: every node and client of the cluster must use the same.
    #[arg(long)]
    cluster: String,
    /// A participant as ID=ADDR (repeat for each), e.g. --participant 1=127.0.0.1:7001
    /// or 1=localhost:7001.
    #[arg(long = "participant", value_name = "ID=ADDR", required = true, value_parser = client::parse_participant)]
    participants: Vec<(NodeId, SocketAddr)>,
    /// Heartbeat interval on participant channels; 10 silent intervals mean down.
    /// Every timeout below must span several heartbeats (startup fails otherwise).
    #[arg(long, default_value_t = wire::limits::HEARTBEAT_INTERVAL_MS_DEFAULT, value_parser = cli::duration_ms_in(1, 60_000))]
    heartbeat_ms: u64,
    /// Smallest transaction timeout a client may ask for (`submit --timeout-ms`), at
    /// least 3 heartbeats [default: 3 heartbeats]. 3pc timeouts must also cover the
    /// precommit margin.
    #[arg(long, value_parser = cli::duration_ms)]
    timeout_ms_min: Option<u64>,
    /// Largest transaction timeout a client may ask for.
    #[arg(long, default_value_t = TIMEOUT_MS_MAX_DEFAULT, value_parser = cli::duration_ms)]
    timeout_ms_max: u64,
    /// How often a missing Commit ack (3pc also: PreCommit ack, recovery state reply) is
    /// asked for again, at least one heartbeat.
    #[arg(long, default_value_t = DECIDE_RESEND_MS_DEFAULT, value_parser = cli::duration_ms)]
    decide_resend_ms: u64,
    /// 3pc: all votes must be in this long before the participants' waiting timeout
    /// (the txn timeout, counted from CanCommit), or the txn aborts; covers the precommit
    /// log write and the PreCommit's trip. At least one heartbeat [default: 2 heartbeats].
    #[arg(long, value_parser = cli::duration_ms)]
    precommit_margin_ms: Option<u64>,
    /// 3pc: how long PreCommit acks are awaited before a silent participant is treated
    /// as failed and DoCommit goes out anyway; at least 3 heartbeats [default: 10
    /// heartbeats, when the wire declares a silent participant down].
    #[arg(long, value_parser = cli::duration_ms)]
    precommit_ack_timeout_ms: Option<u64>,
    /// Keep ended decisions this long, then prune them: `10s`, `1h`, `500ms`, or plain
    /// milliseconds. Unfinished decisions are never pruned.
    #[arg(long, default_value = "1h", value_parser = wire::retention::parse_retain)]
    retain: Duration,
    /// Past this many kept decisions, prune down to a window of one second.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    retain_txns: Option<u64>,
    /// Transactions in flight at once; past it submissions are rejected as overload.
    #[arg(long, default_value_t = TXNS_IN_FLIGHT_MAX_DEFAULT)]
    txns_in_flight_max: usize,
    /// Operations in one transaction, over all its participants; a larger Submit is
    /// rejected. ops x (key + value) must fit in a --frame-bytes-max frame.
    #[arg(long, default_value_t = OPS_PER_TXN_MAX_DEFAULT)]
    ops_per_txn_max: usize,
    /// Longest key, in bytes; a Submit with a longer one is rejected.
    #[arg(long, default_value_t = KEY_BYTES_MAX_DEFAULT)]
    key_bytes_max: usize,
    /// Longest text value, in bytes; a Submit with a longer one is rejected (the
    /// participants' --value-bytes-max has the same default).
    #[arg(long, default_value_t = VALUE_BYTES_MAX_DEFAULT)]
    value_bytes_max: usize,
    /// Serve Prometheus metrics on this address, IP:PORT or HOST:PORT (`GET /metrics`):
    /// transactions by outcome, phase latencies, in flight and in doubt, group-commit
    /// batches, peer liveness, frames and bytes. Bound before anything else, like --listen.
    #[arg(long, value_name = "ADDR", value_parser = wire::addr::resolve)]
    metrics: Option<SocketAddr>,
    /// Abort the process at a named crash point (for crash tests; repeatable).
    #[arg(long = "crash-at", value_name = "NAME[@N][:TXN]",
        long_help = wire::crash::help(wire::crash::Binary::Coordinator))]
    crash_at: Vec<String>,
    #[command(flatten)]
    channel: cli::channel::ChannelArgs,
    #[command(flatten)]
    security: cli::security::ServeSecurityArgs,
}

#[derive(Args, Debug)]
struct AddrArgs {
    /// The coordinator's client address, IP:PORT or HOST:PORT.
    #[arg(long, value_parser = wire::addr::resolve)]
    addr: SocketAddr,
    /// Cluster id (must match the coordinator's).
    #[arg(long)]
    cluster: String,
    #[command(flatten)]
    token: cli::security::ClientTokenArgs,
}

#[derive(Args, Debug)]
struct SubmitArgs {
    #[command(flatten)]
    target: AddrArgs,
    /// Commit protocol: 2pc (presumed abort) or 3pc (non-blocking under crashes).
    #[arg(long, default_value = "2pc", value_parser = parse_protocol)]
    protocol: Protocol,
    /// How long participants have to vote, in milliseconds. For 3pc it is also each
    /// participant's waiting timeout after its YES vote (votes are due the coordinator's
    /// precommit margin before it).
    #[arg(long, default_value_t = 5_000, value_parser = cli::duration_ms)]
    timeout_ms: u64,
    /// Operations, one argument each (see below).
    #[arg(value_name = "OP", required = true, allow_hyphen_values = true)]
    ops: Vec<String>,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Participants to start (each with its own SQLite file and accounts).
    #[arg(long, default_value_t = 3)]
    participants: u32,
    /// Accounts per participant (fewer accounts: more lock conflicts).
    #[arg(long, default_value_t = 1_000)]
    accounts: u32,
    /// Bank transfers to run, each between two random participants.
    #[arg(long, default_value_t = 3_000)]
    transfers: u64,
    /// Transfers in flight at once (pipelined on one connection).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Commit protocol of every transaction: 2pc or 3pc.
    #[arg(long, default_value = "2pc", value_parser = parse_protocol)]
    protocol: Protocol,
    /// Directory for the databases and logs (must be empty or missing); default: a new temp dir.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// RNG seed for the workload (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Retention window of every node (`--retain` of serve); default: theirs (1h).
    #[arg(long, value_parser = wire::retention::parse_retain)]
    retain: Option<Duration>,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Commit protocol of every transfer: 2pc or 3pc.
    #[arg(long, default_value = "2pc", value_parser = parse_protocol)]
    protocol: Protocol,
    /// Participants (a local cluster starts this many; for --coordinator, how many the
    /// cluster has).
    #[arg(long, default_value_t = 3)]
    participants: u32,
    /// Transactions in flight: each client submits its next transfer when its last one's
    /// result arrives.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Client connections the clients share (each pipelines its clients' requests).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Seconds of load (ignored with --transactions).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many transfers instead of after --duration.
    #[arg(long)]
    transactions: Option<u64>,
    /// Accounts per participant (fewer accounts: more lock conflicts).
    #[arg(long, default_value_t = 10_000)]
    accounts: u32,
    /// Contention skew: accounts drawn Zipf-distributed with this exponent (0: uniform;
    /// 1: the first 1% of 10,000 accounts get about half the transfers).
    #[arg(long, default_value_t = 0.0)]
    skew: f64,
    /// Debits (and matching credits) per participant in each transfer.
    #[arg(long, default_value_t = 1)]
    ops_per_participant: u32,
    /// One request in flight per participant channel (the local coordinator is started
    /// with --channel-in-flight-max 1), to compare with pipelining.
    #[arg(long)]
    stop_and_wait: bool,
    /// Benchmark an existing cluster through this coordinator instead of starting one
    /// (its accounts are (re)seeded unless --no-init; CPU and atomicity are then not
    /// measured per node, the conserved total is still checked).
    #[arg(long, value_parser = wire::addr::resolve)]
    coordinator: Option<SocketAddr>,
    /// Cluster id of the existing cluster (with --coordinator).
    #[arg(long, default_value = bench::CLUSTER_ID)]
    cluster: String,
    /// Keep the accounts of an existing cluster as they are.
    #[arg(long)]
    no_init: bool,
    /// Print the summary as one JSON object (and no progress lines).
    #[arg(long)]
    json: bool,
    /// Directory for the local cluster's databases and logs, kept afterwards (must be
    /// empty or missing); default: a temp dir, removed at the end.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// RNG seed of the workload (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Retention window of every node of the local cluster (`--retain` of serve);
    /// default: theirs (1h).
    #[arg(long, value_parser = wire::retention::parse_retain)]
    retain: Option<Duration>,
}

fn parse_protocol(text: &str) -> Result<Protocol, String> {
    match text {
        "2pc" => Ok(Protocol::TwoPhase),
        "3pc" => Ok(Protocol::ThreePhase),
        other => Err(format!("unknown protocol '{other}', expected 2pc or 3pc")),
    }
}

/// `serve`, `demo` and `bench` also take `--config FILE` and environment variables
/// (README, "Configuration").
const CONFIG: cli::Setup = cli::Setup {
    env_prefix: "COORDINATOR_",
    subcommands: &[
        ("serve", "COORDINATOR_"),
        ("demo", "COORDINATOR_DEMO_"),
        ("bench", "COORDINATOR_BENCH_"),
    ],
};

fn main() -> ExitCode {
    let cli = cli::config::parse::<Cli>(&CONFIG);
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    init_tracing(default_level, cli.log_format);
    let code = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Submit(args) => submit(args),
        Command::Status(args) => status(args),
        Command::Txn(args) => txn::run(args),
        Command::Demo(args) => run_demo(args),
        Command::Bench(args) => run_bench(args),
    };
    ExitCode::from(code)
}

fn submit(args: SubmitArgs) -> u8 {
    let parts = match client::parse_ops(&args.ops) {
        Ok(parts) => parts,
        Err(error) => {
            eprintln!("error: {error}\n\nexpected: {}", client::OP_SYNTAX);
            return EXIT_USAGE;
        }
    };
    let spec = TxnSpec {
        protocol: args.protocol,
        timeout_ms: args.timeout_ms,
        parts,
    };
    // The id goes out first: if the answer never comes, the user still knows what to ask
    // `coordinator status` or the participants' `txn` tables about.
    let txn = TxnId::new_v7();
    println!("txn {txn}");
    let _ = std::io::stdout().flush();
    let token = match args.target.token.token() {
        Ok(token) => token,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };
    let target = commands::Target {
        addr: args.target.addr,
        cluster_id: &args.target.cluster,
        token: token.as_ref(),
    };
    match runtime::block_on(commands::submit(target, txn, spec)) {
        Ok(result) => {
            print!("{}", ResultText { result: &result });
            match result {
                TxnResult::Committed { .. } => EXIT_OK,
                TxnResult::Aborted { .. } | TxnResult::Rejected { .. } => EXIT_FAILED,
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            call_exit_code(&error)
        }
    }
}

fn status(args: AddrArgs) -> u8 {
    let token = match args.token.token() {
        Ok(token) => token,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };
    let target = commands::Target {
        addr: args.addr,
        cluster_id: &args.cluster,
        token: token.as_ref(),
    };
    match runtime::block_on(commands::status(target)) {
        Ok(text) => {
            print!("{text}");
            EXIT_OK
        }
        Err(error) => {
            eprintln!("error: {error}");
            call_exit_code(&error)
        }
    }
}

fn call_exit_code(error: &CallError) -> u8 {
    match error {
        CallError::Unreachable { .. } => EXIT_UNREACHABLE,
        CallError::OutcomeUnknown { .. } => EXIT_UNKNOWN,
        CallError::Rejected { .. } | CallError::Refused { .. } => EXIT_FAILED,
    }
}

/// Where this binary is: the cluster's nodes are started from beside it.
fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the coordinator binary")?;
    Ok(exe
        .parent()
        .context("the coordinator binary has no parent directory")?
        .to_path_buf())
}

fn run_bench(args: BenchArgs) -> u8 {
    let result = (|| -> anyhow::Result<bench::Summary> {
        if !(args.duration.is_finite() && args.duration > 0.0) {
            anyhow::bail!(bench::BenchError::Config(
                "--duration must be a positive number of seconds".to_string()
            ));
        }
        let config = BenchConfig {
            protocol: args.protocol,
            participants: args.participants,
            clients: args.clients,
            connections: args.connections,
            duration: Duration::from_secs_f64(
                args.duration.min(bench::DURATION_MAX.as_secs_f64() + 1.0),
            ),
            transactions: args.transactions,
            accounts: args.accounts,
            skew: args.skew,
            ops_per_participant: args.ops_per_participant,
            stop_and_wait: args.stop_and_wait,
            coordinator: args.coordinator,
            cluster_id: args.cluster,
            no_init: args.no_init,
            json: args.json,
            dir: args.dir,
            seed: args.seed,
            retain: args.retain,
            bin_dir: bin_dir()?,
        };
        Ok(bench::run(config)?)
    })();
    match result {
        Ok(summary) => {
            if args.json {
                println!("{}", summary.json());
            } else {
                print!("{}", summary.text());
            }
            if summary.verified() {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            match error.downcast_ref::<bench::BenchError>() {
                Some(bench::BenchError::Config(_)) => EXIT_USAGE,
                _ => EXIT_FAILED,
            }
        }
    }
}

fn run_demo(args: DemoArgs) -> u8 {
    let result = (|| -> anyhow::Result<bool> {
        let bin_dir = bin_dir()?;
        let config = DemoConfig {
            participants: args.participants,
            accounts: args.accounts,
            transfers: args.transfers,
            concurrency: args.concurrency,
            protocol: args.protocol,
            dir: args.dir,
            seed: args.seed,
            retain: args.retain,
            bin_dir,
        };
        Ok(demo::run(config)?)
    })();
    match result {
        Ok(true) => EXIT_OK,
        Ok(false) => EXIT_FAILED,
        Err(error) => {
            eprintln!("error: {error:#}");
            match error.downcast_ref::<demo::DemoError>() {
                Some(demo::DemoError::Config(_)) => EXIT_USAGE,
                _ => EXIT_FAILED,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;

    /// `--help` on every command explains every option and shows an example.
    #[test]
    fn every_command_has_an_example_and_every_option_a_description() {
        let cli = cli::config::command::<Cli>(&super::CONFIG);
        cli.clone().debug_assert();
        for command in cli.get_subcommands() {
            let name = command.get_name();
            let after = command.get_after_help().map(|text| text.to_string());
            assert!(
                after.is_some_and(|text| text.contains("Example")),
                "`{name} --help` shows no example"
            );
            for arg in command.get_arguments() {
                assert!(
                    arg.get_help().is_some(),
                    "`{name} --{}` has no description",
                    arg.get_id()
                );
            }
        }
    }
}
