//! The 3PC termination protocol (Skeen) for one txn: run when the txn's `waiting` or
//! `precommitted` timeout fires or its coordinator goes down, and by a txn recovered in
//! doubt (which asks, and never decides from states).
//!
//! A member is *operational* if it has not restarted since it voted, *recovered* if it
//! has (and is still undecided). Only operational members carry the protocol: Skeen's
//! rules are sound because the states of the sites that never failed reflect every
//! decision taken so far (nobody commits before every operational site is precommitted,
//! nobody aborts while an operational site is precommitted). A recovered member's state
//! may predate a decision taken while it was down: `waiting` while a peer committed alone
//! and crashed, or `precommitted` while the operational sites aborted. So a recovered
//! member never leads, and its undecided state is no evidence; it learns the outcome.
//!
//! Each round, the live set is this node plus the txn's peers that are up (and not known
//! to be non-voters); its lowest *operational* id leads (a peer is taken as operational
//! until its `StateReply` says it is recovered). Everyone in the round asks every other
//! live member for its state (and the coordinator, if up, for the decision), and adopts
//! any decided outcome it hears. The leader decides on the states it got once every live
//! peer answered or went down: a peer the failure detector still sees up is waited for,
//! round after round, since taking a slow site for a failed one splits the outcome (the
//! simulator found it with a slow disk):
//!
//! - any `committed` -> commit; any `aborted` (a peer that never voted YES aborts when
//!   asked, so this includes it) -> abort;
//! - any operational `precommitted`, the leader's own state included -> PreCommit the
//!   `waiting` peers (recovered ones too), collect their Acks for one more round, then
//!   commit;
//! - otherwise (every operational member `waiting`) -> abort.
//!
//! The decision is made durable here, then sent as `Decide` to the live peers. A follower
//! that hears nothing from its leader for a round, sees it go down, or hears that it is
//! recovered (or not a voter), elects again. With no live peer at all an operational
//! member applies the card's rules (`waiting` -> abort, `precommitted` -> commit). A round
//! with no operational member decides nothing: the txn stays in doubt, visibly blocked,
//! asking the coordinator and its peers with backoff until one that knows answers (a
//! decided peer, the coordinator, or an operational peer that leads). After a total
//! failure that is the coordinator's recovery, or a peer that decided.

use std::collections::{BTreeMap, BTreeSet};

use tracing::{debug, info, warn};
use wire::{Decision, NodeId, Outcome, ToParticipant, TxnId, TxnState};

use super::{Millis, Participant, set_timer};

/// One txn's termination protocol state at this participant.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(super) struct Termination {
    /// Rounds started so far (for logs).
    pub(super) round: u32,
    /// The lowest live operational member; `None`: none is live, so nobody decides.
    pub(super) leader: Option<NodeId>,
    /// How long the current round (or PreCommit collection) lasts.
    pub(super) round_ms: u64,
    /// Leader: peers asked this round that have not answered.
    pub(super) awaiting: BTreeSet<NodeId>,
    /// Leader: the undecided states peers reported this round.
    pub(super) replies: BTreeMap<NodeId, TxnState>,
    /// Leader on the commit path: `waiting` peers sent PreCommit that have not acked.
    pub(super) precommit_unacked: Option<BTreeSet<NodeId>>,
    /// Peers that answered they are not voters of this txn (they voted read-only): never
    /// leaders, and their state does not count.
    pub(super) non_voters: BTreeSet<NodeId>,
    /// Peers that answered they restarted since their vote: never leaders, and their
    /// undecided state is no evidence. A restart is forever, so the set only grows.
    pub(super) recovered: BTreeSet<NodeId>,
}

impl Termination {
    /// Before its first election (`start_round` elects at once).
    fn new() -> Termination {
        Termination {
            round: 0,
            leader: None,
            round_ms: 0,
            awaiting: BTreeSet::new(),
            replies: BTreeMap::new(),
            precommit_unacked: None,
            non_voters: BTreeSet::new(),
            recovered: BTreeSet::new(),
        }
    }

    pub(super) fn leads(&self, me: NodeId) -> bool {
        self.leader == Some(me)
    }

    /// Whether `peer` may lead: not known to be recovered or a non-voter.
    fn may_lead(&self, peer: &NodeId) -> bool {
        !self.recovered.contains(peer) && !self.non_voters.contains(peer)
    }

    /// `me_recovered`: this node restarted since its vote.
    pub(super) fn check(&self, me: NodeId, me_recovered: bool, peers: &[NodeId]) {
        let is_peer = |node: &NodeId| peers.contains(node);
        match self.leader {
            Some(leader) if leader == me => {
                assert!(!me_recovered, "a recovered participant leads")
            }
            Some(leader) => {
                assert!(is_peer(&leader), "leader not a participant");
                assert!(
                    self.may_lead(&leader),
                    "leader {leader} known to be recovered or not a voter"
                );
            }
            None => assert!(me_recovered, "an operational participant elected nobody"),
        }
        assert!(self.awaiting.iter().all(is_peer));
        assert!(self.replies.keys().all(is_peer));
        assert!(self.non_voters.iter().all(is_peer));
        assert!(self.recovered.iter().all(is_peer));
        assert!(
            self.awaiting
                .iter()
                .all(|node| !self.replies.contains_key(node))
        );
        assert!(
            self.replies
                .values()
                .all(|state| matches!(state, TxnState::Waiting | TxnState::PreCommitted)),
            "decided or non-voter states are acted on, not collected"
        );
        if let Some(unacked) = &self.precommit_unacked {
            assert!(self.leads(me), "only the leader collects PreCommit acks");
            assert!(unacked.iter().all(is_peer));
        }
    }
}

/// What a leader decides from its own state and its peers' replies.
#[derive(Clone, PartialEq, Eq, Debug)]
enum Verdict {
    Commit,
    Abort {
        reason: String,
    },
    /// Commit once these `waiting` peers are precommitted.
    PreCommitFirst(BTreeSet<NodeId>),
}

/// Skeen's rules over the leader's own state and its peers' `replies`; the states of the
/// `recovered` peers are no evidence for commit (see the module docs), but their `waiting`
/// ones are precommitted on the way to a commit like any other.
fn decide(
    mine: TxnState,
    replies: &BTreeMap<NodeId, TxnState>,
    recovered: &BTreeSet<NodeId>,
) -> Verdict {
    if replies.values().any(|state| *state == TxnState::Committed) {
        return Verdict::Commit;
    }
    if let Some((peer, _)) = replies
        .iter()
        .find(|(_, state)| **state == TxnState::Aborted)
    {
        return Verdict::Abort {
            reason: format!("termination protocol: participant {peer} had aborted"),
        };
    }
    let precommitted = mine == TxnState::PreCommitted
        || replies
            .iter()
            .any(|(peer, state)| *state == TxnState::PreCommitted && !recovered.contains(peer));
    if !precommitted {
        return Verdict::Abort {
            reason: "termination protocol: every operational participant was waiting".to_string(),
        };
    }
    let waiting: BTreeSet<NodeId> = replies
        .iter()
        .filter(|(_, state)| **state == TxnState::Waiting)
        .map(|(peer, _)| *peer)
        .collect();
    if waiting.is_empty() {
        Verdict::Commit
    } else {
        Verdict::PreCommitFirst(waiting)
    }
}

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
                let at = now.plus_ms(termination.round_ms);
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
        let at = now.plus_ms(termination.round_ms);
        set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
        let coordinator = active.coordinator;
        self.query(coordinator, txn);
        for peer in live {
            self.send(peer, ToParticipant::StateQuery { txn });
        }
    }

    /// The leader's round is over (every live peer answered, or time is up): decide.
    fn conclude_round(&mut self, now: Millis, txn: TxnId) {
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
                let at = now.plus_ms(termination.round_ms);
                set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
                for peer in waiting {
                    self.send(peer, ToParticipant::PreCommit { txn });
                }
            }
        }
    }

    /// The txn's live voters, who are told the leader's decision.
    fn live_voters(&self, txn: TxnId) -> Vec<NodeId> {
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
    fn commit_and_tell(&mut self, txn: TxnId) {
        let recipients = self.live_voters(txn);
        info!(%txn, "termination protocol: commit");
        if let Some(lsn) = self.commit(txn, None) {
            self.hold_decision(lsn, txn, Decision::Commit, recipients);
        }
    }

    /// Aborts, then (once `Aborted` is durable) tells the live voters.
    fn abort_and_tell(&mut self, txn: TxnId, reason: &str) {
        let recipients = self.live_voters(txn);
        if let Some(lsn) = self.abort_active(txn, reason) {
            self.hold_decision(lsn, txn, Decision::Abort, recipients);
        }
    }

    fn hold_decision(&mut self, lsn: super::Lsn, txn: TxnId, decision: Decision, to: Vec<NodeId>) {
        let held = self.held.entry(lsn).or_default();
        held.extend(
            to.into_iter()
                .map(|peer| (peer, ToParticipant::Decide { txn, decision })),
        );
    }

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
            _ if active.protocol == wire::Protocol::TwoPhase => {
                active.undecided_peers.insert(from);
            }
            state => {
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
            Outcome::Committed => self.commit_and_tell(txn),
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
            let at = now.plus_ms(termination.round_ms);
            set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replies(states: &[(u32, TxnState)]) -> BTreeMap<NodeId, TxnState> {
        states
            .iter()
            .map(|(id, state)| (NodeId(*id), *state))
            .collect()
    }

    fn nodes(ids: &[u32]) -> BTreeSet<NodeId> {
        ids.iter().map(|id| NodeId(*id)).collect()
    }

    #[test]
    fn decide_follows_skeens_rules() {
        use TxnState::{Aborted, Committed, PreCommitted, Waiting};
        let none = BTreeSet::new();
        assert_eq!(
            decide(Waiting, &replies(&[(2, Committed), (3, Waiting)]), &none),
            Verdict::Commit
        );
        assert_eq!(
            decide(PreCommitted, &replies(&[(2, Aborted)]), &none),
            Verdict::Abort {
                reason: "termination protocol: participant 2 had aborted".to_string()
            }
        );
        assert_eq!(
            decide(
                Waiting,
                &replies(&[(2, Waiting), (3, PreCommitted), (4, Waiting)]),
                &none
            ),
            Verdict::PreCommitFirst(nodes(&[2, 4]))
        );
        assert_eq!(
            decide(PreCommitted, &replies(&[(2, PreCommitted)]), &none),
            Verdict::Commit
        );
        assert_eq!(decide(PreCommitted, &replies(&[]), &none), Verdict::Commit);
        assert_eq!(
            decide(Waiting, &replies(&[(2, Waiting)]), &none),
            Verdict::Abort {
                reason: "termination protocol: every operational participant was waiting"
                    .to_string()
            }
        );
    }

    #[test]
    fn decide_takes_no_evidence_from_recovered_peers_but_precommits_them() {
        use TxnState::{Aborted, Committed, PreCommitted, Waiting};
        let all_waiting = Verdict::Abort {
            reason: "termination protocol: every operational participant was waiting".to_string(),
        };
        // A recovered peer's `precommitted` may predate an abort taken while it was down.
        assert_eq!(
            decide(
                Waiting,
                &replies(&[(2, PreCommitted), (3, Waiting)]),
                &nodes(&[2])
            ),
            all_waiting
        );
        // An operational one's is evidence; the recovered waiting peer is precommitted too.
        assert_eq!(
            decide(
                Waiting,
                &replies(&[(2, Waiting), (3, PreCommitted)]),
                &nodes(&[2])
            ),
            Verdict::PreCommitFirst(nodes(&[2]))
        );
        assert_eq!(
            decide(PreCommitted, &replies(&[(2, Waiting)]), &nodes(&[2])),
            Verdict::PreCommitFirst(nodes(&[2]))
        );
        // Decided states are final whoever tells them.
        assert_eq!(
            decide(Waiting, &replies(&[(2, Committed)]), &nodes(&[2])),
            Verdict::Commit
        );
        assert_eq!(
            decide(PreCommitted, &replies(&[(2, Aborted)]), &nodes(&[2])),
            Verdict::Abort {
                reason: "termination protocol: participant 2 had aborted".to_string()
            }
        );
    }
}
