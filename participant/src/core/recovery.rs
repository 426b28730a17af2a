//! Startup: every txn the store holds in doubt becomes active again, its keys relocked,
//! asking (it never decides alone).

use std::collections::BTreeSet;

use tracing::{error, info, warn};
use wire::{Protocol, TxnState};

use super::answer::reads_of;
use super::locks;
use super::state::Active;
use super::{Millis, Participant, StoredState, StoredTxn};

impl Participant {
    pub(super) fn on_recover(&mut self, now: Millis, txns: Vec<StoredTxn>) {
        let backoff_ms = self.config.decision_query_backoff_min_ms;
        for stored in txns {
            let txn = stored.txn;
            let state = match (stored.protocol, stored.state) {
                (Protocol::TwoPhase, StoredState::Prepared) => TxnState::Prepared,
                (Protocol::ThreePhase, StoredState::Waiting) => TxnState::Waiting,
                (Protocol::ThreePhase, StoredState::PreCommitted) => TxnState::PreCommitted,
                (
                    protocol @ Protocol::TwoPhase,
                    state @ (StoredState::Waiting | StoredState::PreCommitted),
                )
                | (protocol @ Protocol::ThreePhase, state @ StoredState::Prepared) => {
                    error!(%txn, protocol = protocol.as_str(), state = state.as_str(), "recovered a state its protocol does not have; left alone");
                    continue;
                }
                (
                    _,
                    state @ (StoredState::Committed
                    | StoredState::Aborted
                    | StoredState::HeuristicCommit
                    | StoredState::HeuristicAbort
                    | StoredState::ReadOnly),
                ) => {
                    warn!(%txn, state = state.as_str(), "recovery skipped a txn that is not in doubt");
                    continue;
                }
            };
            if self.knows(txn) {
                warn!(%txn, "recovery skipped a txn already known");
                continue;
            }
            for (key, mode) in locks::modes_of_entries(&stored.entries) {
                if let Some(holder) = self.locks.acquire(txn, &key, mode) {
                    // Durability is prefix-closed, so two in-doubt txns conflicting on one
                    // key mean the store was edited by hand. Keep both in doubt; the first
                    // keeps the key.
                    error!(%txn, %key, %holder, "recovered txns conflict on a key");
                }
            }
            let timer_at = now.plus(backoff_ms);
            self.timers.insert((timer_at, txn));
            info!(%txn, peer = %stored.coordinator, state = stored.state.as_str(), "recovered in doubt");
            let peers = self.peers_of(&stored.participants);
            self.active.insert(
                txn,
                Active {
                    protocol: stored.protocol,
                    coordinator: stored.coordinator,
                    peers,
                    reads: reads_of(&stored.entries),
                    entries: stored.entries,
                    since: now,
                    waiting_timeout_ms: self.config.waiting_timeout_min_ms,
                    recovered: true,
                    durable: Some(state),
                    target: state,
                    waiters: Vec::new(),
                    timer_at: Some(timer_at),
                    backoff_ms,
                    termination: None,
                    undecided_peers: BTreeSet::new(),
                },
            );
        }
    }
}
