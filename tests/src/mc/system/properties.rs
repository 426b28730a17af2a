//! What the checker judges in every state: atomicity and the values on disk (`always`
//! properties), and the two outcomes that must be reachable, all committed and all
//! aborted (`sometimes`).

use participant::core::StoredState;
use wire::{NodeId, Op, Value};

use crate::sim::history::txn_name;
use crate::sim::workload;

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

    /// Values: every key that only `add`s touch holds, at each participant, its initial
    /// value plus the deltas of exactly the transactions durably committed there. A
    /// transaction that evaluated its adds on a value older than a commit before it (a
    /// lost update) breaks it.
    pub fn value_violation(&self, limits: &Limits) -> Option<String> {
        let initial = workload::initial_data();
        self.participants.iter().find_map(|(node, (_, disk))| {
            let mut expected: std::collections::BTreeMap<&str, Option<i64>> = Default::default();
            let mut other_ops = std::collections::BTreeSet::new();
            for (index, spec) in limits.txns.iter().enumerate() {
                let committed =
                    disk.state_kept_or_pruned(txn_id(index)) == Some(StoredState::Committed);
                let ops = spec.parts.iter().filter(|(part, _)| part == node);
                for op in ops.flat_map(|(_, ops)| ops) {
                    let Op::Add { key, delta, .. } = op else {
                        other_ops.insert(op.key());
                        continue;
                    };
                    let slot = expected
                        .entry(key)
                        .or_insert_with(|| match initial.get(key) {
                            Some(Value::Int(int)) => Some(*int),
                            _ => None,
                        });
                    if committed {
                        *slot = Some(slot.unwrap_or(0) + delta);
                    }
                }
            }
            expected
                .into_iter()
                .filter(|(key, _)| !other_ops.contains(key))
                .find_map(|(key, want)| {
                    let have = match disk.kv.get(key) {
                        Some(Value::Int(int)) => Some(*int),
                        _ => None,
                    };
                    (have != want).then(|| {
                        format!(
                            "{key} at participant {node} is {have:?}, but its initial value \
                             plus the adds committed there give {want:?}"
                        )
                    })
                })
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
