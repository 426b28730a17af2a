//! The `participant` binary: `serve` a participant node, print a running one's `status`,
//! or (`admin.rs`) look into a participant's database (`txn`, `in-doubt`) and
//! `resolve` an in-doubt transaction by hand, on a file or (`live.rs`) a running node.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use cli::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, LogFormat, init_tracing};
use participant::core::Config;
use participant::shell::retention::Retention;
use participant::shell::{Node, Options, ShellError, Stopped};
use wire::runtime;
use wire::{ClientRequest, ClientResponse, NodeId};

mod admin;
mod live;

/// mimalloc, not glibc's malloc: a node allocates and frees small buffers for every
/// message and record, and glibc's malloc and free were about a tenth of its CPU at load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "participant",
    version,
    about = "Atomic-commit participant: votes on transactions over its shard of data (SQLite)"
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
    /// Run a participant node: prints `LISTENING ip:port` once ready, logs to stderr.
    #[command(after_help = SERVE_HELP)]
    Serve(Box<ServeArgs>),
    /// Print a running participant's status report.
    #[command(after_help = STATUS_HELP)]
    Status(StatusArgs),
    /// Print one transaction as this participant's database records it (a file, or a
    /// running participant's).
    #[command(after_help = admin::TXN_HELP)]
    Txn(admin::TxnArgs),
    /// List the transactions in doubt in this participant's database (a file, or a running
    /// participant's).
    #[command(after_help = admin::IN_DOUBT_HELP)]
    InDoubt(admin::InDoubtArgs),
    /// Commit or abort an in-doubt transaction by hand (a heuristic decision): in a
    /// running participant, or in a stopped participant's database.
    #[command(after_help = admin::RESOLVE_HELP)]
    Resolve(admin::ResolveArgs),
}

const SERVE_HELP: &str = "\
Example (participant 1 of three; every participant lists the others with --peer, so
their ports must be chosen in advance):
  participant serve --id 1 --listen 127.0.0.1:7001 --db p1.db --cluster demo \\
      --peer 2=127.0.0.1:7002 --peer 3=127.0.0.1:7003

Addresses may name a host (localhost:7001); it is resolved once, at start-up. The listen
address is bound before the database is opened and before any peer is dialled.
SIGTERM or Ctrl-C stops it gracefully: connections closed, queued log records written,
database closed, one log line, exit status 0 (a second signal: at once, 130).
Exit status: 1 if it cannot start (address in use, database unusable); 2 usage or
invalid configuration.";

const STATUS_HELP: &str = "\
Example:
  participant status --addr 127.0.0.1:7001 --cluster demo

Exit status: 0 report printed; 1 refused or rejected (e.g. a wrong --cluster); 2 usage
error; 4 participant unreachable or no answer.";

#[derive(Args, Debug)]
struct ServeArgs {
    /// This participant's node id (1 or more; 0 is the clients' id).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    id: u32,
    /// Address coordinators, clients and peer participants connect to, IP:PORT or
    /// HOST:PORT (port 0: any free port, but then no peer can list it in advance).
    #[arg(long, value_parser = wire::addr::resolve)]
    listen: SocketAddr,
    /// The participant's database (SQLite; created if missing, its directory is not).
    #[arg(long)]
    db: PathBuf,
    /// Cluster id: every node and client of the cluster must use the same.
    #[arg(long)]
    cluster: String,
    /// Another participant of the cluster, as ID=ADDR (repeatable). Participants keep one
    /// channel per pair (the mesh; the larger id dials) to ask each other about in-doubt
    /// transactions and to run the 3PC termination protocol.
    #[arg(long = "peer", value_name = "ID=ADDR", value_parser = parse_peer)]
    peers: Vec<(NodeId, SocketAddr)>,
    /// Heartbeat interval on every channel; 10 silent intervals mean down. The 3PC timeouts
    /// below must each span at least 3 heartbeat intervals.
    #[arg(long, default_value_t = wire::limits::HEARTBEAT_INTERVAL_MS_DEFAULT, value_parser = cli::duration_ms_in(1, 60_000))]
    heartbeat_ms: u64,
    /// 3PC: the shortest wait for PreCommit after a YES vote before the termination protocol
    /// starts. The wait is the coordinator's Prepare timeout, raised to at least this.
    #[arg(long, default_value_t = Config::default().waiting_timeout_min_ms, value_parser = cli::duration_ms)]
    waiting_timeout_min_ms: u64,
    /// 3PC: the longest wait for PreCommit after a YES vote. A transaction whose timeout
    /// exceeds it gets a NO vote (this participant would give up before the coordinator's
    /// PreCommit deadline).
    #[arg(long, default_value_t = Config::default().waiting_timeout_max_ms, value_parser = cli::duration_ms)]
    waiting_timeout_max_ms: u64,
    /// 3PC: how long a precommitted transaction waits for DoCommit before the termination
    /// protocol starts.
    #[arg(long, default_value_t = Config::default().precommitted_timeout_ms, value_parser = cli::duration_ms)]
    precommitted_timeout_ms: u64,
    /// 3PC termination protocol: how long a leader waits for its peers' states (and
    /// PreCommit acks), and a follower for its leader, before moving on.
    #[arg(long, default_value_t = Config::default().termination_round_ms, value_parser = cli::duration_ms)]
    termination_round_ms: u64,
    /// First decision query this long after an in-doubt vote (then doubling).
    #[arg(long, default_value_t = Config::default().decision_query_backoff_min_ms, value_parser = cli::duration_ms)]
    decision_query_backoff_min_ms: u64,
    /// Longest wait between two decision queries for one in-doubt transaction.
    #[arg(long, default_value_t = Config::default().decision_query_backoff_max_ms, value_parser = cli::duration_ms)]
    decision_query_backoff_max_ms: u64,
    /// Transactions holding locks at once; past it a Prepare gets NO (overloaded).
    #[arg(long, default_value_t = Config::default().active_txns_max)]
    active_txns_max: usize,
    /// Operations per transaction on this participant.
    #[arg(long, default_value_t = Config::default().ops_per_txn_max)]
    ops_per_txn_max: usize,
    /// Longest key, in bytes; a transaction with a longer one gets a NO vote.
    #[arg(long, default_value_t = Config::default().key_bytes_max)]
    key_bytes_max: usize,
    /// Longest text value, in bytes; a transaction with a longer one gets a NO vote (the
    /// coordinator's --value-bytes-max, which rejects it first, has the same default).
    #[arg(long, default_value_t = Config::default().value_bytes_max)]
    value_bytes_max: usize,
    /// Serve Prometheus metrics on this address, IP:PORT or HOST:PORT (`GET /metrics`):
    /// transactions by outcome, phase latencies, in flight and in doubt, group-commit
    /// batches, peer liveness, frames and bytes. Bound before anything else, like --listen.
    #[arg(long, value_name = "ADDR", value_parser = wire::addr::resolve)]
    metrics: Option<SocketAddr>,
    /// Keep decided transactions (and their undo/redo rows) this long, then prune them:
    /// `10s`, `1h`, `500ms`, or plain milliseconds. Must be at least 4 times every
    /// protocol timeout above. Messages about older transactions are refused.
    #[arg(long, default_value = "1h", value_parser = wire::retention::parse_retain)]
    retain: Duration,
    /// Past this many kept transactions, prune down to the shortest window the timeouts
    /// allow (4 times the longest), whatever --retain says.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    retain_txns: Option<u64>,
    /// Abort the process at a named crash point (for crash tests; repeatable).
    #[arg(long = "crash-at", value_name = "NAME[@N][:TXN]",
        long_help = wire::crash::help(wire::crash::Binary::Participant))]
    crash_at: Vec<String>,
    #[command(flatten)]
    channel: cli::channel::ChannelArgs,
    #[command(flatten)]
    security: cli::security::ServeSecurityArgs,
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// The participant's address, IP:PORT or HOST:PORT.
    #[arg(long, value_parser = wire::addr::resolve)]
    addr: SocketAddr,
    /// Cluster id (must match the participant's).
    #[arg(long)]
    cluster: String,
    /// How long to wait for the connection and the answer.
    #[arg(long, default_value_t = 5_000, value_parser = cli::duration_ms)]
    timeout_ms: u64,
    #[command(flatten)]
    token: cli::security::ClientTokenArgs,
}

/// `serve` also takes `--config FILE` and `PARTICIPANT_*` environment variables (README,
/// "Configuration").
const CONFIG: cli::Setup = cli::Setup {
    env_prefix: "PARTICIPANT_",
    subcommands: &[("serve", "PARTICIPANT_")],
};

fn main() -> ExitCode {
    let cli = cli::config::parse::<Cli>(&CONFIG);
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    init_tracing(default_level, cli.log_format);
    let code = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Status(args) => status(args),
        Command::Txn(args) => admin::txn(args),
        Command::InDoubt(args) => admin::in_doubt(args),
        Command::Resolve(args) => admin::resolve(args),
    };
    ExitCode::from(code)
}

fn serve(args: ServeArgs) -> u8 {
    let mut peers = BTreeMap::new();
    for (peer, addr) in &args.peers {
        if peers.insert(*peer, *addr).is_some() {
            eprintln!("error: --peer {peer} is given more than once");
            return EXIT_USAGE;
        }
    }
    let (auth, stop) = match cli::serve::prologue(
        &args.crash_at,
        wire::crash::Binary::Participant,
        &args.security,
    ) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let metrics = args.metrics;
    let options = Options {
        auth,
        connections: args.security.connection_limits(),
        frame_bytes_max: args.channel.frame_bytes_max(),
        channel_in_flight_max: args.channel.channel_in_flight_max(),
        node_id: NodeId(args.id),
        listen: args.listen,
        db: args.db,
        cluster_id: args.cluster,
        heartbeat_interval: Duration::from_millis(args.heartbeat_ms),
        core: Config {
            decision_query_backoff_min_ms: args.decision_query_backoff_min_ms,
            decision_query_backoff_max_ms: args.decision_query_backoff_max_ms,
            active_txns_max: args.active_txns_max,
            ops_per_txn_max: args.ops_per_txn_max,
            key_bytes_max: args.key_bytes_max,
            value_bytes_max: args.value_bytes_max,
            waiting_timeout_min_ms: args.waiting_timeout_min_ms,
            waiting_timeout_max_ms: args.waiting_timeout_max_ms,
            precommitted_timeout_ms: args.precommitted_timeout_ms,
            termination_round_ms: args.termination_round_ms,
            ..Config::default()
        },
        peers,
        retention: Retention {
            retain: args.retain,
            retain_txns: args.retain_txns,
        },
    };
    runtime::block_on_node(async move {
        let metrics_listener = match metrics {
            Some(addr) => match cli::metrics_http::bind(addr).await {
                Ok(listener) => Some(listener),
                Err(error) => {
                    eprintln!("error: cannot serve metrics on {addr}: {error}");
                    return EXIT_FAILED;
                }
            },
            None => None,
        };
        let node = match Node::start(options).await {
            Ok(node) => node,
            Err(error) => {
                eprintln!("error: {error}");
                return match error {
                    ShellError::Config(_) => EXIT_USAGE,
                    ShellError::Store(_)
                    | ShellError::Listen { .. }
                    | ShellError::NoDbDir { .. }
                    | ShellError::DbInUse(_) => EXIT_FAILED,
                };
            }
        };
        if let Some(listener) = metrics_listener {
            let metrics = node.metrics();
            tracing::info!(addr = ?listener.local_addr().ok(), "metrics served at /metrics");
            cli::metrics_http::serve(listener, move || metrics.encode());
        }
        println!("LISTENING {}", node.local_addr());
        let _ = std::io::stdout().flush();
        match node.run_until(stop).await {
            Stopped::Clean => EXIT_OK,
            Stopped::WriterTimedOut | Stopped::Failed => EXIT_FAILED,
        }
    })
}

/// `--peer ID=ADDR`: a participant id (1 or more) and its listen address.
fn parse_peer(text: &str) -> Result<(NodeId, SocketAddr), String> {
    let (id, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("expected ID=ADDR (e.g. 2=127.0.0.1:7002), got {text:?}"))?;
    let id: u32 = id
        .trim()
        .parse()
        .map_err(|_| format!("peer id {id:?} is not a number"))?;
    if id == 0 {
        return Err("peer id 0 is the clients' id, not a participant's".to_string());
    }
    let addr = wire::addr::resolve(addr).map_err(|reason| format!("peer {id}: {reason}"))?;
    Ok((NodeId(id), addr))
}

/// Prints a running participant's status report; the exit status as `live::call` says.
fn status(args: StatusArgs) -> u8 {
    let timeout = Duration::from_millis(args.timeout_ms);
    let answer = live::call(
        args.addr,
        &args.cluster,
        &args.token,
        timeout,
        ClientRequest::Status,
    );
    match answer {
        Ok(ClientResponse::StatusReport { text }) => {
            print!("{text}");
            EXIT_OK
        }
        Ok(other) => {
            eprintln!(
                "error: unexpected answer from participant at {}: {}",
                args.addr,
                other.kind()
            );
            EXIT_FAILED
        }
        Err(error) => {
            eprintln!("error: {}", error.message());
            error.lookup_exit()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;

    /// The README's example config file is a valid `serve` configuration, and a flag
    /// still wins over it.
    #[test]
    fn readme_config_file_loads() {
        let readme = include_str!("../../../../README.md");
        let start = readme.find("```toml\n").expect("README has a toml example") + 8;
        let end = start + readme[start..].find("```").expect("the example ends");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("p1.toml");
        std::fs::write(&path, &readme[start..end]).expect("write the example");
        let args = [
            "participant",
            "serve",
            "--config",
            path.to_str().expect("utf-8"),
        ];
        let parsed = cli::config::try_parse_from::<Cli>(&super::CONFIG, args.iter().copied());
        let Ok(Cli {
            command: super::Command::Serve(serve),
            log_format,
        }) = parsed
        else {
            panic!("the README's config does not load: {parsed:?}");
        };
        assert_eq!(serve.id, 1);
        assert_eq!(serve.listen.to_string(), "127.0.0.1:7001");
        assert_eq!(serve.peers.len(), 2);
        assert_eq!(serve.heartbeat_ms, 100);
        assert_eq!(serve.precommitted_timeout_ms, 2_000);
        assert_eq!(log_format, cli::LogFormat::Json);
        let args = [
            "participant",
            "serve",
            "--config",
            path.to_str().expect("utf-8"),
            "--id",
            "4",
        ];
        let parsed = cli::config::try_parse_from::<Cli>(&super::CONFIG, args.iter().copied());
        match parsed {
            Ok(Cli {
                command: super::Command::Serve(serve),
                ..
            }) => assert_eq!(serve.id, 4),
            other => panic!("the README's config file did not parse: {other:?}"),
        }
    }

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
