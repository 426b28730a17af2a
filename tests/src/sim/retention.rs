//! Retention in the simulator (`Options::retain_ms`): after every group commit a
//! participant moves its horizon on (its own clock minus the window), tells its core
//! first and then prunes its disk below it, as `participant::shell` does; a coordinator
//! prunes its ended decisions. The disk keeps what it pruned for the checkers only.

use participant::core::StoredState;
use wire::NodeId;
use wire::retention::Horizon;

use super::disk::{CoordinatorDisk, ParticipantDisk};
use super::trace::node_name;
use super::world::World;

impl ParticipantDisk {
    /// The real store's prune (`participant::store::retention`), without its window on
    /// the outcome's age and its per-step bound (so the simulator prunes more eagerly):
    /// decided txns and read-only votes below `horizon`; never an in-doubt txn or a
    /// heuristic mark. Returns how many were pruned.
    pub fn prune(&mut self, horizon: Horizon) -> usize {
        self.horizon = self.horizon.max(horizon);
        let gone: Vec<_> = self
            .txns
            .iter()
            .filter(|(txn, row)| {
                horizon.forgets(**txn)
                    && matches!(row.state, StoredState::Committed | StoredState::Aborted)
            })
            .map(|(txn, row)| (*txn, row.state))
            .collect();
        for (txn, state) in &gone {
            self.txns.remove(txn);
            self.pruned.insert(*txn, *state);
        }
        let read_only: Vec<_> = self
            .read_only
            .keys()
            .copied()
            .filter(|txn| horizon.forgets(*txn))
            .collect();
        for txn in &read_only {
            self.read_only.remove(txn);
            // Its hold and keys go with the vote, as `read_only_key` rows do in the store.
            self.read_holds.remove(txn);
            self.pruned.insert(*txn, StoredState::ReadOnly);
        }
        gone.len() + read_only.len()
    }

    /// The txn's state, from its row or (pruned) from what pruning deleted.
    pub fn state_kept_or_pruned(&self, txn: wire::TxnId) -> Option<StoredState> {
        self.txns
            .get(&txn)
            .map(|row| row.state)
            .or_else(|| self.pruned.get(&txn).copied())
    }
}

impl CoordinatorDisk {
    /// `coordinator::store::retention`: ended decisions below `horizon`.
    pub fn prune(&mut self, horizon: Horizon) -> usize {
        let before = self.decisions.len();
        self.decisions
            .retain(|txn, row| !(row.ended && horizon.forgets(*txn)));
        before - self.decisions.len()
    }
}

impl World {
    fn horizon_of(&self, node: NodeId) -> Option<Horizon> {
        let retain_ms = self.options.retain_ms?;
        Some(Horizon::at_unix_ms(
            self.local_ms(node).saturating_sub(retain_ms),
        ))
    }

    /// After a participant's group commit: the core's horizon first, then the disk's.
    pub(super) fn participant_prune(&mut self, node: NodeId) {
        let Some(horizon) = self.horizon_of(node) else {
            return;
        };
        let Some(core) = self
            .participants
            .get_mut(&node)
            .and_then(|participant| participant.core.as_mut())
        else {
            return;
        };
        core.set_horizon(horizon);
        let participant = self.participants.get_mut(&node).expect("known node");
        let pruned = participant.disk.prune(horizon);
        if pruned > 0 {
            note!(self, "; {} pruned {pruned}", node_name(node));
        }
    }

    /// After a coordinator's group commit.
    pub(super) fn coordinator_prune(&mut self, node: NodeId) {
        let Some(horizon) = self.horizon_of(node) else {
            return;
        };
        let pruned = self.coord_mut(node).disk.prune(horizon);
        if pruned > 0 {
            note!(self, "; {} pruned {pruned} ended", node_name(node));
        }
    }
}
