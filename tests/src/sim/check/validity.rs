//! Validity: a transaction commits (anywhere, or as told to the client) only if every
//! participant voted YES or ReadOnly and no NO vote reached the coordinator; under 2PC a
//! participant commits only once the coordinator's commit record is durable.

use wire::{Decision, Protocol};

use super::View;
use crate::sim::history::{ClientView, VoteKind};
use crate::sim::trace::node_name;

pub fn check(view: &View<'_>) -> Vec<String> {
    let history = view.history;
    let mut found = Vec::new();
    for (&txn, info) in &history.txns {
        let committed =
            history.applied_anywhere(txn, Decision::Commit) || info.client == ClientView::Committed;
        if !committed {
            continue;
        }
        let name = history.name(txn);
        for (node, _) in &info.parts {
            let votes = history.votes_of(txn, *node);
            if !votes
                .iter()
                .any(|vote| matches!(vote, VoteKind::Yes | VoteKind::ReadOnly))
            {
                found.push(format!(
                    "{name} committed but {} never voted YES or ReadOnly (votes {votes:?})",
                    node_name(*node)
                ));
            }
        }
        if history.no_delivered.contains(&txn) {
            found.push(format!(
                "{name} committed although a NO vote reached the coordinator"
            ));
        }
        if info.protocol == Protocol::TwoPhase {
            for ((_, node), applied) in history
                .applied
                .range((txn, wire::NodeId(0))..=(txn, wire::NodeId(u32::MAX)))
            {
                if applied
                    .iter()
                    .any(|a| a.decision == Decision::Commit && !a.commit_logged)
                {
                    found.push(format!(
                        "{name} committed at {} before the coordinator's commit record was durable",
                        node_name(*node)
                    ));
                }
            }
        }
    }
    found
}
