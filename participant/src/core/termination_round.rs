//! The termination protocol's rounds (see `termination.rs`): a 3PC txn's timer starts
//! or ends one, `start_round` elects a leader and asks the live members, and the leader
//! decides on what it heard and tells the live voters once its own record is durable.

use std::collections::BTreeSet;

use tracing::{debug, info};
use wire::{Decision, NodeId, ToParticipant, TxnId, TxnState};

use super::state::set_timer;
use super::termination::{Termination, Verdict, decide};
use super::{Lsn, Millis, Participant};

impl Participant {
    /// A 3PC txn's timer fired: its timeout starts the protocol; a round's end makes the
    /// leader decide and a follower elect again.
    pub(super) fn on_termination_timer(&mut self, now: Millis, txn: TxnId) {
        let me = self.node_id;
        let Some(active) = self.active.get(&txn) else {
            return;
        };
        match &active.termination {
            None => {
                let why = if active.recovered {
                    "recovered in doubt"
                } else if active.target == TxnState::Waiting {
                    "no PreCommit within the waiting timeout"
                } else {
                    "no DoCommit within the precommitted timeout"
                };
                info!(%txn, why, "starting the termination protocol");
                self.start_round(now, txn);
            }
            Some(termination) if termination.leads(me) => {
                // A peer that is still up has not failed, only not answered yet (a slow
                // disk holds its reply until its pending record is durable). Deciding
                // without it would take a live site for a failed one: the leader could
                // abort while that peer, precommitted, later commits alone. Only the
                // failure detector (PeerDown) takes a peer out of the round.
                // It is asked again: a reconnect may have lost the first request (every
                // message is idempotent, and its waiters are bounded).
                let precommitting = termination.precommit_unacked.is_some();
                let unanswered = termination
                    .precommit_unacked
                    .as_ref()
                    .unwrap_or(&termination.awaiting);
                let live: Vec<NodeId> = unanswered
                    .iter()
                    .copied()
                    .filter(|peer| self.peers_up.contains(peer))
                    .collect();
                if live.is_empty() {
                    self.conclude_round(now, txn);
                    return;
                }
                debug!(%txn, live = live.len(), "termination round: live peers have not answered yet; asking again");
                let at = now.plus(termination.round_ms);
                if let Some(active) = self.active.get_mut(&txn) {
                    set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
                }
                for peer in live {
                    let msg = if precommitting {
                        ToParticipant::PreCommit { txn }
                    } else {
                        ToParticipant::StateQuery { txn }
                    };
                    self.send(peer, msg);
                }
            }
            Some(termination) => {
                debug!(%txn, leader = ?termination.leader, "no word from a termination leader; electing again");
                self.start_round(now, txn);
            }
        }
    }

    /// Elects a leader among the live operational participants and asks every live one for
    /// its state (and the coordinator for the decision); operational and alone, applies the
    /// card's rules.
    pub(super) fn start_round(&mut self, now: Millis, txn: TxnId) {
        let me = self.node_id;
        let round_ms = self.config.termination_round_ms;
        let backoff_max_ms = self.config.decision_query_backoff_max_ms;
        let Some(active) = self.active.get_mut(&txn) else {
            return;
        };
        if !active.is_undecided() {
            return;
        }
        let termination = active.termination.get_or_insert_with(Termination::new);
        let live: BTreeSet<NodeId> = active
            .peers
            .iter()
            .copied()
            .filter(|peer| self.peers_up.contains(peer) && !termination.non_voters.contains(peer))
            .collect();
        if live.is_empty() && !active.recovered {
            if active.target == TxnState::PreCommitted {
                info!(%txn, "no live peer: precommitted -> commit (the card's rule)");
                self.commit(txn, None);
            } else {
                self.abort_active(
                    txn,
                    "termination protocol: no live peer while waiting (the card's rule)",
                );
            }
            return;
        }
        termination.round += 1;
        let me_candidate = (!active.recovered).then_some(me);
        termination.leader = live
            .iter()
            .copied()
            .filter(|peer| termination.may_lead(peer))
            .chain(me_candidate)
            .min();
        termination.awaiting = live.clone();
        termination.replies.clear();
        termination.precommit_unacked = None;
        termination.round_ms = if active.recovered {
            // Recovered: rounds back off, since nobody who knows may be there for long.
            let backoff_ms = active.backoff_ms;
            active.backoff_ms = backoff_ms.saturating_mul(2).min(backoff_max_ms);
            backoff_ms
        } else {
            round_ms
        };
        if termination.leader.is_none() {
            info!(%txn, round = termination.round, live = live.len(), "termination round: no operational participant is up; in doubt, asking");
        } else {
            info!(%txn, round = termination.round, leader = ?termination.leader, live = live.len(), "termination round");
        }
        let at = now.plus(termination.round_ms);
        set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
        let coordinator = active.coordinator;
        self.query(coordinator, txn);
        for peer in live {
            self.send(peer, ToParticipant::StateQuery { txn });
        }
    }

    /// The leader's round is over (every live peer answered, or time is up): decide.
    pub(super) fn conclude_round(&mut self, now: Millis, txn: TxnId) {
        let Some(active) = self.active.get_mut(&txn) else {
            return;
        };
        let Some(termination) = active.termination.as_mut() else {
            return;
        };
        if termination.precommit_unacked.is_some() {
            // The PreCommit round is over: a peer that did not ack is treated as failed.
            self.commit_and_tell(txn);
            return;
        }
        match decide(active.target, &termination.replies, &termination.recovered) {
            Verdict::Commit => self.commit_and_tell(txn),
            Verdict::Abort { reason } => self.abort_and_tell(txn, &reason),
            Verdict::PreCommitFirst(waiting) => {
                info!(%txn, waiting = waiting.len(), "termination protocol: precommitting the waiting participants before commit");
                termination.awaiting.clear();
                termination.precommit_unacked = Some(waiting.clone());
                let at = now.plus(termination.round_ms);
                set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
                for peer in waiting {
                    self.send(peer, ToParticipant::PreCommit { txn });
                }
            }
        }
    }

    /// The txn's live voters, who are told the leader's decision.
    pub(super) fn live_voters(&self, txn: TxnId) -> Vec<NodeId> {
        let Some(active) = self.active.get(&txn) else {
            return Vec::new();
        };
        active
            .peers
            .iter()
            .copied()
            .filter(|peer| {
                self.peers_up.contains(peer)
                    && !active
                        .termination
                        .as_ref()
                        .is_some_and(|t| t.non_voters.contains(peer))
            })
            .collect()
    }

    /// Commits, then (once `Committed` is durable) tells the live voters.
    pub(super) fn commit_and_tell(&mut self, txn: TxnId) {
        let recipients = self.live_voters(txn);
        info!(%txn, "termination protocol: commit");
        if let Some(lsn) = self.commit(txn, None) {
            self.hold_decision(lsn, txn, Decision::Commit, None, recipients);
        }
    }

    /// Aborts, then (once `Aborted` is durable) tells the live voters.
    pub(super) fn abort_and_tell(&mut self, txn: TxnId, reason: &str) {
        let recipients = self.live_voters(txn);
        if let Some(lsn) = self.abort_active(txn, reason) {
            self.hold_decision(lsn, txn, Decision::Abort, Some(reason), recipients);
        }
    }

    pub(super) fn hold_decision(
        &mut self,
        lsn: Lsn,
        txn: TxnId,
        decision: Decision,
        reason: Option<&str>,
        to: Vec<NodeId>,
    ) {
        let held = self.held.entry(lsn).or_default();
        held.extend(to.into_iter().map(|peer| {
            let reason = reason.map(str::to_string);
            (
                peer,
                ToParticipant::Decide {
                    txn,
                    decision,
                    reason,
                },
            )
        }));
    }
}
