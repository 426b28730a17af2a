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
//!
//! This file holds a txn's protocol state and Skeen's rules; `termination_round.rs` the
//! rounds (timers, elections, the leader's decision and how it is told);
//! `termination_replies.rs` what a round hears (states, Acks, peers going down, word
//! from the leader).

use std::collections::{BTreeMap, BTreeSet};

use wire::{NodeId, TxnState};

use super::violation::{InvariantViolation, ensure};

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
    pub(super) fn new() -> Termination {
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
    pub(super) fn may_lead(&self, peer: &NodeId) -> bool {
        !self.recovered.contains(peer) && !self.non_voters.contains(peer)
    }

    /// `me_recovered`: this node restarted since its vote.
    pub(super) fn check(
        &self,
        me: NodeId,
        me_recovered: bool,
        peers: &[NodeId],
    ) -> Result<(), InvariantViolation> {
        let is_peer = |node: &NodeId| peers.contains(node);
        match self.leader {
            Some(leader) if leader == me => {
                ensure!(!me_recovered, "a recovered participant leads")
            }
            Some(leader) => {
                ensure!(is_peer(&leader), "leader {leader} not a participant");
                ensure!(
                    self.may_lead(&leader),
                    "leader {leader} known to be recovered or not a voter"
                );
            }
            None => ensure!(me_recovered, "an operational participant elected nobody"),
        }
        ensure!(
            self.awaiting.iter().all(is_peer),
            "awaiting {:?}: not all peers",
            self.awaiting
        );
        ensure!(
            self.replies.keys().all(is_peer),
            "replies {:?}: not all from peers",
            self.replies
        );
        ensure!(
            self.non_voters.iter().all(is_peer),
            "non-voters {:?}: not all peers",
            self.non_voters
        );
        ensure!(
            self.recovered.iter().all(is_peer),
            "recovered {:?}: not all peers",
            self.recovered
        );
        ensure!(
            self.awaiting
                .iter()
                .all(|node| !self.replies.contains_key(node)),
            "a peer both awaited and answered"
        );
        ensure!(
            self.replies.values().all(|state| match state {
                TxnState::Waiting | TxnState::PreCommitted => true,
                TxnState::Prepared | TxnState::Committed | TxnState::Aborted => false,
            }),
            "decided or non-voter states are acted on, not collected: {:?}",
            self.replies
        );
        if let Some(unacked) = &self.precommit_unacked {
            ensure!(self.leads(me), "only the leader collects PreCommit acks");
            ensure!(
                unacked.iter().all(is_peer),
                "PreCommit unacked by {unacked:?}: not all peers"
            );
        }
        Ok(())
    }
}

/// What a leader decides from its own state and its peers' replies.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) enum Verdict {
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
pub(super) fn decide(
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
