//! Atomicity (agreement): no transaction is committed at one participant and aborted at
//! another, at any moment of the run (every durable outcome ever written counts).

use wire::Decision;

use super::View;
use crate::sim::trace::node_name;

pub fn check(view: &View<'_>) -> Vec<String> {
    let history = view.history;
    let mut found = Vec::new();
    for &txn in history.txns.keys() {
        let committed = history.applied_at(txn, Decision::Commit);
        if committed.is_empty() {
            continue;
        }
        let aborted = history.applied_at(txn, Decision::Abort);
        if !aborted.is_empty() {
            found.push(format!(
                "{} committed at {} and aborted at {}",
                history.name(txn),
                names(&committed),
                names(&aborted)
            ));
        }
    }
    found
}

fn names(nodes: &[wire::NodeId]) -> String {
    nodes
        .iter()
        .map(|node| node_name(*node))
        .collect::<Vec<_>>()
        .join(",")
}
