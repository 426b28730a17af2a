//! The text a `Status` request gets: what an operator asks first about a participant.

use std::fmt::Write;
use std::net::SocketAddr;

use wire::NodeId;

use crate::core::{Millis, Participant};

/// In-doubt txns listed one per line; the rest are counted.
pub const STATUS_IN_DOUBT_LINES_MAX: usize = 20;

pub struct Report<'a> {
    pub node_id: NodeId,
    pub addr: SocketAddr,
    pub now: Millis,
    pub core: &'a Participant,
    /// The `txn_counts` view, or why it could not be read.
    pub stored: Result<Vec<(String, i64)>, String>,
    pub coordinators: Vec<(NodeId, SocketAddr)>,
    pub clients: usize,
    pub writer_outstanding: usize,
}

pub fn report(report: Report<'_>) -> String {
    let mut text = String::new();
    let counts = report.core.counts();
    // Writing to a String cannot fail.
    let _ = writeln!(text, "participant {} at {}", report.node_id, report.addr);
    let _ = writeln!(
        text,
        "active txns: {} preparing, {} in doubt, {} committing; locks held: {}",
        counts.preparing,
        counts.in_doubt,
        counts.committing,
        report.core.locks_held()
    );
    let _ = writeln!(
        text,
        "recent outcomes in memory: {} committed, {} aborted; records being written: {}",
        counts.committed, counts.aborted, report.writer_outstanding
    );
    match &report.stored {
        Ok(rows) if rows.is_empty() => {
            let _ = writeln!(text, "stored txns: none");
        }
        Ok(rows) => {
            let rows: Vec<String> = rows
                .iter()
                .map(|(state, n)| format!("{state} {n}"))
                .collect();
            let _ = writeln!(text, "stored txns: {}", rows.join(", "));
        }
        Err(error) => {
            let _ = writeln!(text, "stored txns: unavailable ({error})");
        }
    }
    let in_doubt = report.core.in_doubt(report.now);
    let _ = writeln!(text, "in doubt: {}", in_doubt.len());
    for txn in in_doubt.iter().take(STATUS_IN_DOUBT_LINES_MAX) {
        let _ = writeln!(
            text,
            "  {} coordinator {} for {:.1} s",
            txn.txn,
            txn.coordinator,
            txn.age_ms as f64 / 1000.0
        );
    }
    if in_doubt.len() > STATUS_IN_DOUBT_LINES_MAX {
        let _ = writeln!(
            text,
            "  ... and {} more",
            in_doubt.len() - STATUS_IN_DOUBT_LINES_MAX
        );
    }
    let mut coordinators = report.coordinators;
    coordinators.sort();
    let coordinators: Vec<String> = coordinators
        .iter()
        .map(|(node, addr)| format!("{node} ({addr})"))
        .collect();
    let _ = writeln!(
        text,
        "connected coordinators: {}; clients: {}",
        if coordinators.is_empty() {
            "none".to_string()
        } else {
            coordinators.join(", ")
        },
        report.clients
    );
    text
}
