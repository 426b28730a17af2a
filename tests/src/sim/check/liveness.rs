//! Liveness of 3PC during faults: a participant that voted YES and does not crash decides
//! within `View::decision_bound_ms` of its vote, while crashes go on around it (3PC's
//! promise of non-blocking, checked during the safety phase, not only after healing).
//! Transactions a breach of the model touched (a partition, a reset, a clock jump past
//! the bounds) are left out: there 3PC promises nothing.

use wire::Protocol;

use super::View;
use crate::sim::trace::node_name;

pub fn check(view: &View<'_>) -> Vec<String> {
    let history = view.history;
    let mut found = Vec::new();
    for (&(txn, node), &voted_ms) in &history.voted_yes_ms {
        let Some(info) = history.txns.get(&txn) else {
            continue;
        };
        if info.protocol != Protocol::ThreePhase {
            continue;
        }
        let due_ms = voted_ms + view.decision_bound_ms;
        let decided_ms = history
            .applied
            .get(&(txn, node))
            .and_then(|applied| applied.iter().map(|a| a.at_ms).min());
        let until_ms = decided_ms.unwrap_or(u64::MAX).min(due_ms);
        // A run that ends before the bound passes is judged by the termination checker.
        let undecided_at_end = decided_ms.is_none() && due_ms > view.end_ms;
        if undecided_at_end
            || history.crashed_during(node, voted_ms, until_ms)
            || !history
                .breaches_during(info.submitted_ms, until_ms)
                .is_empty()
        {
            continue;
        }
        match decided_ms {
            Some(at) if at <= due_ms => {}
            Some(at) => found.push(format!(
                "{} decided {} only {} ms after its yes vote (bound {} ms)",
                node_name(node),
                history.name(txn),
                at - voted_ms,
                view.decision_bound_ms
            )),
            None => found.push(format!(
                "{} never decided {} (voted yes at {voted_ms} ms)",
                node_name(node),
                history.name(txn)
            )),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use wire::{Decision, NodeId, TxnId};

    use super::*;
    use crate::sim::history::{Applied, ClientView, History, TxnInfo, TxnKind};

    /// A 3PC txn that p1 voted YES on at 100 ms and decided at `decided_ms`.
    fn history(decided_ms: Option<u64>, crashed_ms: Option<u64>) -> History {
        let txn = TxnId(uuid::Uuid::from_u128(1));
        let mut history = History::default();
        history.txns.insert(
            txn,
            TxnInfo {
                number: 1,
                kind: TxnKind::Transfer,
                protocol: Protocol::ThreePhase,
                parts: Vec::new(),
                submitted_ms: 90,
                in_healing: false,
                client: ClientView::Pending,
                reads: Vec::new(),
            },
        );
        history.voted_yes_ms.insert((txn, NodeId(1)), 100);
        if let Some(at_ms) = decided_ms {
            history.applied.insert(
                (txn, NodeId(1)),
                vec![Applied {
                    decision: Decision::Commit,
                    at_ms,
                    commit_logged: true,
                }],
            );
        }
        if let Some(at) = crashed_ms {
            history.crashed_ms.insert(NodeId(1), vec![at]);
        }
        history
    }

    fn found(history: &History) -> Vec<String> {
        let view = View {
            history,
            participants: Vec::new(),
            coordinators: Vec::new(),
            bank_total: 0,
            excused: BTreeSet::new(),
            decision_bound_ms: 1_000,
            end_ms: 10_000,
        };
        check(&view)
    }

    #[test]
    fn a_decision_past_the_bound_is_reported_and_one_within_it_is_not() {
        assert_eq!(found(&history(Some(1_100), None)), Vec::<String>::new());
        assert_eq!(
            found(&history(Some(1_101), None)),
            vec!["p1 decided t1 only 1001 ms after its yes vote (bound 1000 ms)".to_string()]
        );
        assert_eq!(
            found(&history(None, None)),
            vec!["p1 never decided t1 (voted yes at 100 ms)".to_string()]
        );
    }

    #[test]
    fn a_participant_that_crashed_before_deciding_is_not_held_to_the_bound() {
        assert_eq!(
            found(&history(Some(5_000), Some(500))),
            Vec::<String>::new()
        );
    }
}
