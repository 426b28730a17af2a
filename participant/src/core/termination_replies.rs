//! What a termination round hears (see `termination.rs`): a peer's state, a peer's Ack
//! to the leader's PreCommit, a member going down, and word from the leader.

use tracing::{debug, info, warn};
use wire::{NodeId, Outcome, Protocol, TxnId, TxnState};

use super::state::set_timer;
use super::{Millis, Participant};

impl Participant {
    /// A peer's answer to our `StateQuery` (2PC in doubt, or a termination round).
    pub(super) fn on_state_reply(
        &mut self,
        now: Millis,
        from: NodeId,
        txn: TxnId,
        state: TxnState,
        recovered: bool,
    ) {
        let me = self.node_id;
        let Some(active) = self.active.get_mut(&txn) else {
            debug!(%txn, peer = %from, ?state, "state of a txn no longer in doubt ignored");
            return;
        };
        if !active.is_undecided() || !active.peers.contains(&from) {
            debug!(%txn, peer = %from, ?state, "state reply ignored");
            return;
        }
        let leading = active
            .termination
            .as_ref()
            .is_some_and(|termination| termination.leads(me));
        match state {
            TxnState::Committed => {
                info!(%txn, peer = %from, "a peer committed: adopting commit");
                if leading {
                    self.commit_and_tell(txn);
                } else {
                    self.commit(txn, None);
                }
            }
            TxnState::Aborted => {
                let reason = format!("participant {from} reported the txn aborted");
                if leading {
                    self.abort_and_tell(txn, &reason);
                } else {
                    self.abort_active(txn, &reason);
                }
            }
            TxnState::Prepared | TxnState::Waiting | TxnState::PreCommitted
                if active.protocol == Protocol::TwoPhase =>
            {
                active.undecided_peers.insert(from);
            }
            state @ (TxnState::Prepared | TxnState::Waiting | TxnState::PreCommitted) => {
                let Some(termination) = active.termination.as_mut() else {
                    debug!(%txn, peer = %from, ?state, "state reply outside the termination protocol ignored");
                    return;
                };
                if state == TxnState::Prepared {
                    debug!(%txn, peer = %from, "peer is not a voter of this txn");
                    termination.non_voters.insert(from);
                } else if recovered && termination.recovered.insert(from) {
                    debug!(%txn, peer = %from, "peer restarted since its vote: it does not lead, its state is no evidence");
                }
                if termination.leads(me) {
                    if termination.precommit_unacked.is_none() && termination.awaiting.remove(&from)
                    {
                        if state != TxnState::Prepared {
                            termination.replies.insert(from, state);
                        }
                        if termination.awaiting.is_empty() {
                            self.conclude_round(now, txn);
                        }
                    }
                } else if termination.leader == Some(from) && !termination.may_lead(&from) {
                    self.start_round(now, txn);
                }
            }
        }
    }

    /// A peer's Ack to the PreCommit (or Decide) this leader sent.
    pub(super) fn on_ack(&mut self, from: NodeId, txn: TxnId, outcome: Outcome) {
        let me = self.node_id;
        let unacked = self
            .active
            .get_mut(&txn)
            .and_then(|active| active.termination.as_mut())
            .filter(|termination| termination.leads(me))
            .and_then(|termination| termination.precommit_unacked.as_mut())
            .filter(|unacked| unacked.contains(&from));
        let Some(unacked) = unacked else {
            debug!(%txn, peer = %from, ?outcome, "ack ignored");
            return;
        };
        match outcome {
            Outcome::PreCommitted => {
                unacked.remove(&from);
                if unacked.is_empty() {
                    self.commit_and_tell(txn);
                }
            }
            // Committed there by hand: its data is committed, so committing keeps the
            // participants agreeing.
            Outcome::Committed | Outcome::HeuristicCommitted => self.commit_and_tell(txn),
            Outcome::HeuristicAborted => {
                warn!(%txn, peer = %from, "a participant was aborted by hand while being precommitted");
                let reason = format!(
                    "termination protocol: participant {from} was aborted by hand (heuristic)"
                );
                self.abort_and_tell(txn, &reason);
            }
            Outcome::Aborted => {
                warn!(%txn, peer = %from, "a participant aborted while being precommitted");
                let reason = format!("termination protocol: participant {from} had aborted");
                self.abort_and_tell(txn, &reason);
            }
            Outcome::Unknown => {
                warn!(%txn, peer = %from, "a participant does not know the txn; treated as failed");
                unacked.remove(&from);
                if unacked.is_empty() {
                    self.commit_and_tell(txn);
                }
            }
        }
    }

    /// A 3PC txn's coordinator or peer went down.
    pub(super) fn termination_peer_down(&mut self, now: Millis, txn: TxnId, peer: NodeId) {
        let me = self.node_id;
        let Some(active) = self.active.get_mut(&txn) else {
            return;
        };
        let coordinator = active.coordinator;
        let recovered = active.recovered;
        match active.termination.as_mut() {
            None => {
                if peer == coordinator && !recovered {
                    info!(%txn, %peer, "coordinator down: starting the termination protocol");
                    self.start_round(now, txn);
                }
            }
            Some(termination) if !termination.leads(me) => {
                if termination.leader == Some(peer) {
                    info!(%txn, %peer, "termination leader down: electing again");
                    self.start_round(now, txn);
                }
            }
            Some(termination) => {
                if let Some(unacked) = termination.precommit_unacked.as_mut() {
                    if unacked.remove(&peer) && unacked.is_empty() {
                        self.commit_and_tell(txn);
                    }
                } else if termination.awaiting.remove(&peer) && termination.awaiting.is_empty() {
                    self.conclude_round(now, txn);
                }
            }
        }
    }

    /// A request from `peer` about `txn`: if it is this node's termination leader, it is
    /// alive and working, so the follower's round starts over.
    pub(super) fn heard_from_leader(&mut self, now: Millis, txn: TxnId, peer: NodeId) {
        let me = self.node_id;
        let Some(active) = self.active.get_mut(&txn) else {
            return;
        };
        let Some(termination) = &active.termination else {
            return;
        };
        if peer != me && termination.leader == Some(peer) && active.is_undecided() {
            let at = now.plus(termination.round_ms);
            set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
        }
    }
}
