//! Durability: a transaction the client was told is committed is committed in the durable
//! data of every participant that had writes in it (checked after healing).

use participant::core::StoredState;

use super::View;
use crate::sim::history::ClientView;
use crate::sim::trace::node_name;

pub fn check(view: &View<'_>) -> Vec<String> {
    let history = view.history;
    let mut found = Vec::new();
    for (&txn, info) in &history.txns {
        if info.client != ClientView::Committed || view.excused.contains(&txn) {
            continue;
        }
        for (node, ops) in &info.parts {
            if ops.iter().all(|op| op.is_read()) {
                continue;
            }
            let Some(end) = view.participants.iter().find(|p| p.id == *node) else {
                continue;
            };
            let state = end.disk.state_kept_or_pruned(txn);
            if state != Some(StoredState::Committed) {
                found.push(format!(
                    "{} was reported committed but {} holds it as {}",
                    history.name(txn),
                    node_name(*node),
                    state.map_or("nothing", StoredState::as_str)
                ));
            }
        }
    }
    found
}
