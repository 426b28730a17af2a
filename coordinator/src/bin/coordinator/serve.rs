//! `coordinator serve`: the node's configuration from the flags, its start on this thread
//! and its serving on the node executor, until a stop signal or a fatal error.

use std::io::Write as _;
use std::time::Duration;

use cli::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use coordinator::shell::retention::Retention;
use coordinator::shell::{Node, ServeConfig, ShellError, Stopped, Timing};
use wire::limits::TIMEOUT_HEARTBEATS_MIN;
use wire::{NodeId, runtime};

use crate::ServeArgs;

/// `coordinator serve`: builds the node from the flags, then serves until stopped.
pub(crate) fn run(args: ServeArgs) -> u8 {
    let (auth, stop) = match cli::serve::prologue(
        &args.crash_at,
        wire::crash::Binary::Coordinator,
        &args.security,
    ) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let metrics = args.metrics;
    let config = ServeConfig {
        auth,
        connections: args.security.connection_limits(),
        node_id: NodeId(args.id),
        listen: args.listen,
        db: args.db,
        cluster_id: args.cluster,
        participants: args.participants,
        heartbeat_interval: Duration::from_millis(args.heartbeat_ms),
        txns_in_flight_max: args.txns_in_flight_max,
        ops_per_txn_max: args.ops_per_txn_max,
        key_bytes_max: args.key_bytes_max,
        value_bytes_max: args.value_bytes_max,
        channel_in_flight_max: args.channel.channel_in_flight_max(),
        frame_bytes_max: args.channel.frame_bytes_max(),
        timing: Timing {
            timeout_ms_min: args
                .timeout_ms_min
                .unwrap_or(TIMEOUT_HEARTBEATS_MIN * args.heartbeat_ms),
            timeout_ms_max: args.timeout_ms_max,
            decide_resend_ms: args.decide_resend_ms,
            precommit_margin_ms: args.precommit_margin_ms.unwrap_or(2 * args.heartbeat_ms),
            precommit_ack_timeout_ms: args
                .precommit_ack_timeout_ms
                .unwrap_or(10 * args.heartbeat_ms),
        },
        retention: Retention {
            retain: args.retain,
            retain_txns: args.retain_txns,
        },
    };
    // Started on this thread (sqlx's futures there are not `Send` to the compiler), then
    // served on the node's executor thread.
    runtime::init_node_executor();
    let started = runtime::block_on(async {
        let metrics_listener = match metrics {
            Some(addr) => match cli::metrics_http::bind(addr).await {
                Ok(listener) => Some(listener),
                Err(error) => {
                    eprintln!("error: cannot serve metrics on {addr}: {error}");
                    return Err(EXIT_FAILED);
                }
            },
            None => None,
        };
        let node = match Node::start(config).await {
            Ok(node) => node,
            Err(error) => {
                eprintln!("error: {error}");
                return Err(match error {
                    ShellError::Config(_) => EXIT_USAGE,
                    _ => EXIT_FAILED,
                });
            }
        };
        Ok((node, metrics_listener))
    });
    let (node, metrics_listener) = match started {
        Ok(started) => started,
        Err(code) => return code,
    };
    runtime::block_on_node(async move {
        if let Some(listener) = metrics_listener {
            let metrics = node.metrics();
            tracing::info!(addr = ?listener.local_addr().ok(), "metrics served at /metrics");
            cli::metrics_http::serve(listener, move || metrics.encode());
        }
        println!("LISTENING {}", node.local_addr());
        let _ = std::io::stdout().flush();
        // Besides a requested stop, `run_until` returns only on a fatal error (e.g. a
        // failed log write): stop, and let the next start recover from the log.
        match node.run_until(stop).await {
            Ok(Stopped::Clean) => EXIT_OK,
            Ok(Stopped::WriterTimedOut) => EXIT_FAILED,
            Err(error) => {
                tracing::error!(%error, "coordinator stopping");
                eprintln!("error: {error}");
                EXIT_FAILED
            }
        }
    })
}
