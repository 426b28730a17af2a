//! Transactions below the retention horizon: the store may have pruned what this node
//! knew of them, so a request about one that neither memory nor the store knows gets an
//! answer that cannot contradict what happened (ARCHITECTURE.md, "Retention and
//! forgotten transactions").

use tracing::warn;
use wire::retention::Horizon;
use wire::{Decision, FromParticipant, RequestId, TxnId};

use super::answer::{ack_msg, decided_outcome};
use super::{Participant, ReplyTo, StoredTxn};

/// The requests a forgotten txn can get, with what the answer depends on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Asked {
    Prepare,
    PreCommit,
    Decide(Decision),
    StateQuery,
}

impl Participant {
    /// Raises the horizon (never lowers it). The shell calls this before it lets the
    /// store prune below `horizon`, so the core never takes "not stored" for "never
    /// seen" about a pruned txn.
    pub fn set_horizon(&mut self, horizon: Horizon) {
        self.horizon = self.horizon.max(horizon);
    }

    pub fn horizon(&self) -> Horizon {
        self.horizon
    }

    /// Answers a request about `txn` if it is forgotten (below the horizon, in neither
    /// memory nor the store); false if the request is for its handler.
    pub(super) fn answer_forgotten(
        &mut self,
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        stored: &Option<StoredTxn>,
        asked: Asked,
    ) -> bool {
        if stored.is_some() || self.knows(txn) || !self.horizon.forgets(txn) {
            return false;
        }
        warn!(%txn, peer = %from.peer, ?asked, "request about a txn below the retention horizon");
        let msg = match asked {
            // A vote, a PreCommit ack or a state would be a claim about what happened
            // here: YES for a txn this node aborted, or "aborted" (from "never voted") for
            // one it committed. A refusal claims nothing.
            Asked::Prepare | Asked::PreCommit | Asked::StateQuery => FromParticipant::Refused {
                reason: format!(
                    "txn {txn} is older than this participant's retention horizon: what \
                     happened to it here may have been pruned"
                ),
            },
            // Only decided txns are pruned, and a decider's decision is the one this node
            // reached (commit needs its YES, and once YES it follows the decision), so
            // acking the decision repeats what happened. It also lets a coordinator that
            // re-sends a logged commit after a long outage write its end record.
            Asked::Decide(decision) => ack_msg(txn, decided_outcome(decision)),
        };
        self.reply(from, id, msg);
        true
    }
}
