//! Atomicity (agreement): no transaction is committed at one participant and aborted at
//! another, at any moment of the run (every durable outcome ever written counts).
//!
//! 3PC is safe only under crash failures with bounded delays and a detector that
//! suspects only crashed nodes. A 3PC split is excused only when a fault outside that
//! model (a partition, a reset connection, a clock jump past the bounds: the history's
//! breaches) overlaps the transaction's life, and the excuse names it. Any other split,
//! and every 2PC split, is a violation.

use std::collections::BTreeSet;

use wire::{Decision, NodeId, Protocol, TxnId};

use super::View;
use crate::sim::history::History;
use crate::sim::trace::node_name;

pub fn check(view: &View<'_>) -> Vec<String> {
    let history = view.history;
    splits(history)
        .into_iter()
        .filter(|split| excuse(history, split.txn).is_none())
        .map(|split| split.describe(history))
        .collect()
}

/// The excused splits, one line each naming the breach that allows it.
pub fn excused(history: &History) -> Vec<String> {
    splits(history)
        .into_iter()
        .filter_map(|split| {
            let excuse = excuse(history, split.txn)?;
            Some(format!("{}, excused by {excuse}", split.describe(history)))
        })
        .collect()
}

/// The transactions whose split is excused (other checkers leave their effects alone).
pub fn excused_txns(history: &History) -> BTreeSet<TxnId> {
    splits(history)
        .into_iter()
        .filter(|split| excuse(history, split.txn).is_some())
        .map(|split| split.txn)
        .collect()
}

struct Split {
    txn: TxnId,
    committed: Vec<NodeId>,
    aborted: Vec<NodeId>,
}

impl Split {
    fn describe(&self, history: &History) -> String {
        format!(
            "{} committed at {} and aborted at {}",
            history.name(self.txn),
            names(&self.committed),
            names(&self.aborted)
        )
    }
}

fn splits(history: &History) -> Vec<Split> {
    history
        .txns
        .keys()
        .filter_map(|&txn| {
            let committed = history.applied_at(txn, Decision::Commit);
            let aborted = history.applied_at(txn, Decision::Abort);
            (!committed.is_empty() && !aborted.is_empty()).then_some(Split {
                txn,
                committed,
                aborted,
            })
        })
        .collect()
}

/// For a 3PC transaction, the breaches during its life (submission to its last durable
/// outcome), as text; `None` if there were none or it ran 2PC.
fn excuse(history: &History, txn: TxnId) -> Option<String> {
    let info = history.txns.get(&txn)?;
    if info.protocol != Protocol::ThreePhase {
        return None;
    }
    let last_ms = history
        .applied
        .range((txn, NodeId(0))..=(txn, NodeId(u32::MAX)))
        .flat_map(|(_, applied)| applied.iter().map(|a| a.at_ms))
        .max()?;
    let breaches = history.breaches_during(info.submitted_ms, last_ms);
    if breaches.is_empty() {
        return None;
    }
    let list: Vec<&str> = breaches.iter().map(|b| b.what.as_str()).collect();
    Some(list.join("; "))
}

fn names(nodes: &[NodeId]) -> String {
    nodes
        .iter()
        .map(|node| node_name(*node))
        .collect::<Vec<_>>()
        .join(",")
}
