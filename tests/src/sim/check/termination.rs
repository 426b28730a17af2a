//! Termination: after the healing phase (no faults, every node up, the coordinator too,
//! so even 2PC must not block) every transaction has ended everywhere: nothing in doubt
//! on any participant's disk or in its core, nothing unfinished at the coordinator, and
//! every client request answered unless the coordinator crashed while holding it.

use super::View;
use crate::sim::history::ClientView;
use crate::sim::trace::node_name;

pub fn check(view: &View<'_>) -> Vec<String> {
    let history = view.history;
    let mut found = Vec::new();
    for end in &view.participants {
        for (txn, row) in &end.disk.txns {
            if row.state.is_in_doubt() {
                found.push(format!(
                    "{} still holds {} as {} after healing",
                    node_name(end.id),
                    history.name(*txn),
                    row.state.as_str()
                ));
            }
        }
        if end.active() > 0 {
            found.push(format!(
                "{} core still holds {} active txns after healing ({:?})",
                node_name(end.id),
                end.active(),
                end.counts
            ));
        }
    }
    for coordinator in &view.coordinators {
        let name = node_name(coordinator.id);
        if coordinator.txns_in_flight > 0 {
            found.push(format!(
                "coordinator {name} still tracks {} txns after healing",
                coordinator.txns_in_flight
            ));
        }
        for (txn, row) in &coordinator.disk.decisions {
            if !row.ended && row.decision == wire::Decision::Commit {
                found.push(format!(
                    "coordinator {name}'s commit of {} never ended",
                    history.name(*txn)
                ));
            }
        }
    }
    for (txn, info) in &history.txns {
        if info.client == ClientView::Pending {
            found.push(format!(
                "{} submitted at {} ms never got an answer",
                history.name(*txn),
                info.submitted_ms
            ));
        }
    }
    found
}
