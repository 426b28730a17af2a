//! One `coordinator submit` as a scenario's client runs it: bounded, registered with the
//! cluster crate (so Ctrl-C stops it too), its outcome read from the exit code.

use std::net::SocketAddr;
use std::time::Duration;

use cluster::Launch;

use super::format::Protocol;
use super::{ClientOutcome, TxnRecord};
use crate::{find_txn_id, submit_args};

/// A submit process may run this much longer than its transaction's timeout.
const SUBMIT_SLACK: Duration = Duration::from_secs(10);

/// The participants `ops` write on (`N:put`, `N:add`, `N:del`).
pub fn writes_of(ops: &[String]) -> Vec<u32> {
    let mut writes: Vec<u32> = ops
        .iter()
        .filter_map(|op| {
            let (node, rest) = op.split_once(':')?;
            (!rest.trim_start().starts_with("get")).then(|| node.parse().ok())?
        })
        .collect();
    writes.sort_unstable();
    writes.dedup();
    writes
}

/// Runs `coordinator submit` once (bounded; killed on Ctrl-C like every node).
pub fn submit(
    addr: Option<SocketAddr>,
    protocol: Protocol,
    timeout_ms: u64,
    ops: &[String],
    writes: Vec<u32>,
) -> TxnRecord {
    let not_sent = TxnRecord {
        id: None,
        writes: writes.clone(),
        outcome: ClientOutcome::NotSent,
        output: String::new(),
    };
    let Some(addr) = addr else {
        return not_sent;
    };
    let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
    let launch = Launch::new("submit", crate::binary("coordinator")).args(submit_args(
        addr,
        protocol.flag(),
        timeout_ms,
        &ops,
    ));
    let Ok(ran) = launch.run(Duration::from_millis(timeout_ms) + SUBMIT_SLACK) else {
        return not_sent;
    };
    let outcome = match ran.status.and_then(|status| status.code()) {
        Some(0) => ClientOutcome::Committed,
        Some(1) if ran.stdout.contains("aborted") => ClientOutcome::Aborted,
        Some(3) => ClientOutcome::Unknown,
        // Killed at the deadline: the client cannot know either.
        None => ClientOutcome::Unknown,
        Some(_) => ClientOutcome::NotSent,
    };
    TxnRecord {
        id: find_txn_id(&ran.stdout),
        writes,
        outcome,
        output: ran.stdout,
    }
}
