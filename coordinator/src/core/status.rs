//! The read-only queries behind status reports: where each transaction stands
//! (`TxnPhase`), per protocol and per participant, and which ones await their decision or
//! their end.

use std::collections::BTreeMap;
use std::fmt;

use wire::{NodeId, TxnId};

use super::Coordinator;
use super::txn::{PartState, Phase, Txn};

/// Where a transaction stands, for status reports.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum TxnPhase {
    /// Prepare (3PC: CanCommit) sent; waiting for votes.
    Collecting,
    /// All voted Yes/ReadOnly; the commit record (3PC: precommit) is not yet durable.
    Logging,
    /// 3PC: the precommit is durable; waiting for PreCommit acks.
    PreCommitting,
    /// The commit is durable (3PC: DoCommit sent); waiting for acks.
    Committing,
    /// 3PC recovery: a logged precommit without end; asking the participants' states.
    Resolving,
    /// 3PC: a participant reported an abort; the adopted abort is not yet durable.
    LoggingAbort,
}

impl TxnPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            TxnPhase::Collecting => "collecting votes",
            TxnPhase::Logging => "logging commit",
            TxnPhase::PreCommitting => "precommitted, awaiting precommit acks",
            TxnPhase::Committing => "committed, awaiting acks",
            TxnPhase::Resolving => "recovered, asking participants' states",
            TxnPhase::LoggingAbort => "logging adopted abort",
        }
    }
}

impl fmt::Display for TxnPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Coordinator {
    pub fn is_up(&self, peer: NodeId) -> bool {
        self.up.contains(&peer)
    }

    /// Transactions tracked, including `Ended` records not yet durable.
    pub fn txns_in_flight(&self) -> usize {
        self.txns.len() + self.ended_pending
    }

    pub fn txns_by_phase(&self) -> BTreeMap<TxnPhase, usize> {
        let mut counts = BTreeMap::new();
        for txn in self.txns.values() {
            *counts.entry(txn.phase_name()).or_insert(0) += 1;
        }
        counts
    }

    /// Like `txns_by_phase`, split by protocol (`"2pc"`, `"3pc"`).
    pub fn txns_by_protocol_and_phase(&self) -> BTreeMap<(&'static str, TxnPhase), usize> {
        let mut counts = BTreeMap::new();
        for txn in self.txns.values() {
            *counts
                .entry((txn.protocol.as_str(), txn.phase_name()))
                .or_insert(0) += 1;
        }
        counts
    }

    /// Per participant: transactions waiting for its vote, ack or state.
    pub fn in_flight_by_peer(&self) -> BTreeMap<NodeId, usize> {
        let mut counts: BTreeMap<NodeId, usize> =
            self.config.participants.iter().map(|&p| (p, 0)).collect();
        for part in self.txns.values().flat_map(|txn| &txn.parts) {
            if matches!(
                part.state,
                PartState::AwaitingVote
                    | PartState::AwaitingAck
                    | PartState::AwaitingPreAck
                    | PartState::AwaitingState
            ) {
                *counts.entry(part.node).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Transactions without a durable decision (collecting votes or logging the commit).
    pub fn undecided(&self) -> impl Iterator<Item = TxnId> + '_ {
        self.txns
            .iter()
            .filter(|(_, txn)| !txn.phase.is_decided())
            .map(|(id, _)| *id)
    }

    /// Durable commits (3PC: precommits) whose end is not logged yet: some ack is
    /// missing, or a recovered 3PC transaction is being resolved.
    pub fn decided_not_ended(&self) -> impl Iterator<Item = TxnId> + '_ {
        self.txns
            .iter()
            .filter(|(_, txn)| txn.phase.is_decided())
            .map(|(id, _)| *id)
    }
}

impl Txn {
    /// The status report's name for where the transaction stands.
    pub(super) fn phase_name(&self) -> TxnPhase {
        match self.phase {
            Phase::Collecting { .. } => TxnPhase::Collecting,
            Phase::Logging { .. } => TxnPhase::Logging,
            Phase::PreCommitting { .. } => TxnPhase::PreCommitting,
            Phase::Committing { .. } => TxnPhase::Committing,
            Phase::Resolving { .. } => TxnPhase::Resolving,
            Phase::LoggingAbort { .. } => TxnPhase::LoggingAbort,
        }
    }
}
