//! What status reports show: counts per state and the in-doubt txns, with whether
//! anybody reachable can resolve them.

use wire::{NodeId, Protocol, TxnId, TxnState};

use super::state::{Active, End};
use super::{Millis, Participant};

/// A transaction voted YES with no outcome yet, as status reports show it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct InDoubtTxn {
    pub txn: TxnId,
    pub coordinator: NodeId,
    pub age_ms: u64,
    pub protocol: Protocol,
    /// `Prepared` (2PC), `Waiting` or `PreCommitted` (3PC): the state it is moving to.
    pub state: TxnState,
    /// The txn's other participants.
    pub peers: Vec<NodeId>,
    /// Found in doubt at startup (3PC: never decides alone).
    pub recovered: bool,
    /// 3PC: the current termination leader, while the termination protocol runs (`None`
    /// as well while no operational participant is up to lead it).
    pub leader: Option<NodeId>,
    /// Nobody reachable can resolve it now: 2PC with the coordinator down and every peer
    /// down or in doubt too; 3PC recovered with the coordinator down and every peer down
    /// or recovered too.
    pub blocked: bool,
}

/// How many transactions the core holds in each state.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TxnCounts {
    /// Voted YES, the vote's record not yet durable.
    pub preparing: usize,
    /// Voted YES, no outcome yet (`prepared + waiting + precommitted`).
    pub in_doubt: usize,
    /// `Committed` not yet durable.
    pub committing: usize,
    /// Remembered outcomes (older ones live only in the store).
    pub committed: usize,
    pub aborted: usize,
    /// The in-doubt txns by state.
    pub prepared: usize,
    pub waiting: usize,
    pub precommitted: usize,
    /// In-doubt 3PC txns running the termination protocol.
    pub terminating: usize,
    /// In-doubt txns nobody reachable can resolve (see [`InDoubtTxn::blocked`]).
    pub blocked: usize,
    /// Remembered ReadOnly votes on txns with other participants.
    pub read_only: usize,
}

impl Participant {
    pub fn counts(&self) -> TxnCounts {
        let mut counts = TxnCounts::default();
        for active in self.active.values() {
            if active.durable.is_none() {
                counts.preparing += 1;
                continue;
            }
            if active.target == TxnState::Committed {
                counts.committing += 1;
                continue;
            }
            counts.in_doubt += 1;
            match active.target {
                TxnState::Prepared => counts.prepared += 1,
                TxnState::Waiting => counts.waiting += 1,
                TxnState::PreCommitted => counts.precommitted += 1,
                // Committing is counted above; an active txn never targets `Aborted`
                // (`check_invariants` holds it to its protocol's states).
                TxnState::Committed | TxnState::Aborted => {}
            }
            if active.termination.is_some() {
                counts.terminating += 1;
            }
            if self.is_blocked(active) {
                counts.blocked += 1;
            }
        }
        for done in self.done.values() {
            match done.end {
                End::Committed => counts.committed += 1,
                End::Aborted { .. } => counts.aborted += 1,
                End::ReadOnly => counts.read_only += 1,
            }
        }
        counts
    }

    pub fn in_doubt(&self, now: Millis) -> Vec<InDoubtTxn> {
        self.active
            .iter()
            .filter(|(_, active)| active.is_undecided())
            .map(|(txn, active)| InDoubtTxn {
                txn: *txn,
                coordinator: active.coordinator,
                age_ms: now.0.saturating_sub(active.since.0),
                protocol: active.protocol,
                state: active.target,
                peers: active.peers.clone(),
                recovered: active.recovered,
                leader: active.termination.as_ref().and_then(|t| t.leader),
                blocked: self.is_blocked(active),
            })
            .collect()
    }

    fn is_blocked(&self, active: &Active) -> bool {
        if self.peers_up.contains(&active.coordinator) {
            return false;
        }
        match active.protocol {
            Protocol::TwoPhase => active
                .peers
                .iter()
                .all(|peer| !self.peers_up.contains(peer) || active.undecided_peers.contains(peer)),
            Protocol::ThreePhase => {
                active.recovered
                    && !active.peers.iter().any(|peer| {
                        self.peers_up.contains(peer)
                            && !active.termination.as_ref().is_some_and(|t| {
                                t.recovered.contains(peer) || t.non_voters.contains(peer)
                            })
                    })
            }
        }
    }
}
