//! Heuristic outcomes: a participant an operator resolved by hand (`participant resolve`)
//! answers the decision with what it did. Agreeing, it is an ack like any other; against
//! the logged decision it is a **heuristic hazard**: made durable (`Record::Hazard`) and
//! shown by `status`, because only a person can repair that participant's data now.

use std::collections::VecDeque;

use wire::{Decision, NodeId, Outcome, TxnId};

use super::Coordinator;
use super::io::{Output, Record};

/// Hazards kept in memory for the status report (all of them are in the log).
pub const HAZARDS_KEPT_MAX: usize = 32;

/// One heuristic outcome that contradicts the logged decision.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Hazard {
    pub txn: TxnId,
    pub participant: NodeId,
    pub decision: Decision,
    pub outcome: Outcome,
}

/// The hazards found since start: the newest `HAZARDS_KEPT_MAX`, and how many in all.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub(super) struct Hazards {
    pub(super) recent: VecDeque<Hazard>,
    pub(super) found: u64,
}

/// Whether a heuristic `outcome` contradicts `decision`.
fn contradicts(decision: Decision, outcome: Outcome) -> bool {
    matches!(
        (decision, outcome),
        (Decision::Commit, Outcome::HeuristicAborted)
            | (Decision::Abort, Outcome::HeuristicCommitted)
    )
}

impl Coordinator {
    /// `from` answered the logged `decision` of `txn` with a heuristic `outcome`: a hazard
    /// if they disagree (logged at ERROR, made durable, kept for status).
    pub(super) fn on_heuristic(
        &mut self,
        txn: TxnId,
        from: NodeId,
        decision: Decision,
        outcome: Outcome,
    ) {
        if !contradicts(decision, outcome) {
            tracing::warn!(txn_id = %txn, peer = %from, ?outcome, "participant was resolved by hand, the same way as the decision");
            return;
        }
        tracing::error!(txn_id = %txn, peer = %from, ?decision, ?outcome, "HEURISTIC HAZARD: a participant resolved by hand contradicts the logged decision; its data must be repaired by hand");
        let hazard = Hazard {
            txn,
            participant: from,
            decision,
            outcome,
        };
        if self.hazards.recent.len() >= HAZARDS_KEPT_MAX {
            self.hazards.recent.pop_front();
        }
        self.hazards.recent.push_back(hazard);
        self.hazards.found += 1;
        // Nothing waits on it, so it needs no `pending` entry: a crash before it is
        // durable loses only the record, and the participant reports it again when the
        // decision is re-sent.
        let lsn = self.next_lsn();
        self.outputs.push_back(Output::Persist {
            lsn,
            record: Record::Hazard {
                txn,
                participant: from,
                decision,
                outcome,
            },
        });
    }

    /// The newest hazards found since start (oldest first), and how many were found.
    pub fn hazards(&self) -> (impl Iterator<Item = &Hazard>, u64) {
        (self.hazards.recent.iter(), self.hazards.found)
    }
}
