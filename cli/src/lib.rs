//! What the `coordinator` and `participant` command lines share, so the two cannot drift:
//! the exit codes (README, "Exit status"), how logs are set up, how options are read from
//! flags, environment and a config file (`config`), and how durations are written
//! (`duration`), how a serving node hears SIGTERM and Ctrl-C (`signal`), its
//! `--metrics` endpoint (`metrics_http`) and the metrics both nodes register (`metrics`:
//! their channels', the refresh throttle), the security and connection-limit options
//! of both `serve` commands and of the clients (`security`), and their channel options
//! (`channel`: frame size, requests in flight), and what both `serve` commands do first
//! (`serve`).

pub mod channel;
pub mod config;
pub mod duration;
pub mod metrics;
pub mod metrics_http;
pub mod security;
pub mod serve;
pub mod signal;

pub use config::{ConfigError, ParseError, Setup};
pub use duration::{duration_ms, duration_ms_in};
pub use signal::{EXIT_INTERRUPTED, stop_signal};

use std::io::IsTerminal as _;

/// Committed, or the report printed.
pub const EXIT_OK: u8 = 0;
/// Aborted, refused or rejected (a wrong cluster id), or a node that could not start.
pub const EXIT_FAILED: u8 = 1;
/// Bad arguments.
pub const EXIT_USAGE: u8 = 2;
/// Only when a transaction may have reached the coordinator: it may have committed.
pub const EXIT_UNKNOWN: u8 = 3;
/// Nothing was sent: no connection (or no answer to a status request).
pub const EXIT_UNREACHABLE: u8 = 4;

/// `--log-format`: log lines on stderr as text, or one JSON object per line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr at `default_level` unless `RUST_LOG` says otherwise; colour codes only
/// when stderr is a terminal, so a log file can be searched as text.
pub fn init_tracing(default_level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}
