//! Scripted crash scenarios against the real binaries: a TOML file (`format`) names the
//! nodes, the protocol, a workload, a timeline of faults (crash points, signals, restarts,
//! link faults through `proxy`) and the final checks (`checks`); `runner` carries it out
//! on the shared local cluster and prints a timeline, the checks and a verdict.

pub mod checks;
mod client;
pub mod format;
pub mod proxy;
pub mod runner;
mod steps;
mod workload;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use runner::{Verdict, run_file};

/// The outcome of one transaction as its client saw it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClientOutcome {
    Committed,
    Aborted,
    /// Sent, no answer in time (it may have committed).
    Unknown,
    /// Nothing was sent (coordinator down or refused the request).
    NotSent,
}

/// A transaction some client ran: its id (if it got one), what it writes where, and what
/// the client was told.
#[derive(Clone, Debug)]
pub struct TxnRecord {
    pub id: Option<String>,
    /// Participants the transaction writes on.
    pub writes: Vec<u32>,
    pub outcome: ClientOutcome,
    /// What the client printed.
    pub output: String,
}

/// The printed timeline: every line is time since the start, node, event.
#[derive(Clone)]
pub struct Timeline {
    start: Instant,
    lines: Arc<Mutex<Vec<String>>>,
    echo: bool,
}

/// Lines a timeline keeps (later ones are printed, not kept).
pub const TIMELINE_LINES_MAX: usize = 10_000;

impl Timeline {
    /// `echo`: print each line as it happens (the runner binary) as well as keep it.
    pub fn new(echo: bool) -> Timeline {
        Timeline {
            start: Instant::now(),
            lines: Arc::new(Mutex::new(Vec::new())),
            echo,
        }
    }

    pub fn event(&self, node: &str, event: impl AsRef<str>) {
        let ms = self.start.elapsed().as_millis();
        let line = format!(
            "{:>6}.{:03}s  {node:<12} {}",
            ms / 1000,
            ms % 1000,
            event.as_ref()
        );
        if self.echo {
            let _ = writeln!(std::io::stdout(), "{line}");
        }
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() < TIMELINE_LINES_MAX {
            lines.push(line);
        }
    }

    /// Everything so far, one line each.
    pub fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.join("\n")
    }
}
