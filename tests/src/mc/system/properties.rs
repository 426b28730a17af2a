//! What the checker judges in every state: atomicity (an `always` property), and the
//! two outcomes that must be reachable, all committed and all aborted (`sometimes`).

use participant::core::StoredState;
use wire::{NodeId, Op};

use crate::sim::history::txn_name;

use super::{Limits, System, Told, txn_id};

impl System {
    /// Atomicity: no transaction durably committed at one participant and aborted at the
    /// other (states only move forward on disk, so checking every state is enough).
    pub fn atomicity_violation(&self, limits: &Limits) -> Option<String> {
        (0..limits.txns.len()).find_map(|index| {
            let txn = txn_id(index);
            let states: Vec<(NodeId, StoredState)> = self
                .participants
                .iter()
                .filter_map(|(node, (_, disk))| {
                    disk.state_kept_or_pruned(txn).map(|state| (*node, state))
                })
                .collect();
            let committed = states.iter().any(|(_, s)| *s == StoredState::Committed);
            let aborted = states.iter().any(|(_, s)| *s == StoredState::Aborted);
            (committed && aborted)
                .then(|| format!("{} committed and aborted: {states:?}", txn_name(txn)))
        })
    }

    /// Every transaction submitted and committed at each participant that writes in it.
    pub fn all_committed(&self, limits: &Limits) -> bool {
        self.submitted == limits.txns.len()
            && limits.txns.iter().enumerate().all(|(index, spec)| {
                spec.parts.iter().all(|(node, ops)| {
                    ops.iter().all(Op::is_read)
                        || self.participants[node]
                            .1
                            .state_kept_or_pruned(txn_id(index))
                            == Some(StoredState::Committed)
                })
            })
    }

    /// Every transaction submitted, told aborted, and nowhere committed or in doubt.
    pub fn all_aborted(&self, limits: &Limits) -> bool {
        self.submitted == limits.txns.len()
            && (0..limits.txns.len()).all(|index| {
                self.told[index] == Told::Aborted
                    && self.participants.values().all(|(_, disk)| {
                        disk.state_kept_or_pruned(txn_id(index))
                            .is_none_or(|state| state == StoredState::Aborted)
                    })
            })
    }
}
