//! The `Release`s not yet answered: per participant, the read-only votes whose `Release`
//! was sent (or owed while the participant was down) and not yet answered by `Released`.
//! A `Release` lost with its connection would otherwise leave the voter's shared locks
//! held until its own hold timeout; `PeerUp` re-sends what is remembered here, and
//! `Released` forgets it. `Release` is idempotent at the participant (an unknown or
//! already released txn releases nothing and is still answered `Released`).

use std::collections::{BTreeMap, BTreeSet};

use wire::{NodeId, TxnId};

/// Unanswered `Release`s remembered per participant. Past it the oldest is forgotten: its
/// `Release` is then never re-sent, and the participant's own hold timeout releases it (as
/// it did before this table). The oldest first, because transaction ids grow with their
/// submit time (UUID v7), so its hold is the nearest to ending by itself.
pub const RELEASES_UNANSWERED_MAX: usize = 1_024;

/// Participant → the txns whose `Release` it has not answered. Ordered maps, so the
/// re-sends on `PeerUp` go out in id order and the model checker can hash the state.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub(super) struct UnansweredReleases {
    by_peer: BTreeMap<NodeId, BTreeSet<TxnId>>,
}

impl UnansweredReleases {
    /// Remembers that `peer` owes a `Released` for `txn`; forgets the oldest of `peer`'s
    /// past `RELEASES_UNANSWERED_MAX`.
    pub(super) fn remember(&mut self, peer: NodeId, txn: TxnId) {
        let txns = self.by_peer.entry(peer).or_default();
        txns.insert(txn);
        if txns.len() > RELEASES_UNANSWERED_MAX
            && let Some(oldest) = txns.pop_first()
        {
            tracing::debug!(%peer, txn_id = %oldest, "unanswered releases at their bound: the oldest is left to the participant's hold timeout");
        }
    }

    /// `peer` answered `Released` for `txn` (an answer nothing waits for changes nothing).
    pub(super) fn answered(&mut self, peer: NodeId, txn: TxnId) {
        if let Some(txns) = self.by_peer.get_mut(&peer) {
            txns.remove(&txn);
            if txns.is_empty() {
                self.by_peer.remove(&peer);
            }
        }
    }

    /// The txns whose `Release` `peer` has not answered, oldest first.
    pub(super) fn of(&self, peer: NodeId) -> Vec<TxnId> {
        self.by_peer
            .get(&peer)
            .map_or_else(Vec::new, |txns| txns.iter().copied().collect())
    }
}
