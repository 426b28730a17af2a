//! 3PC, when participants contradict the logged precommit: a participant reports that
//! it aborted (its termination protocol decided) or has no record, so the precommit is
//! turned into an abort durably (`Record::AbortAdopted`), or, if someone committed too,
//! the split is reported as such.
//!
//! The logged precommit is the coordinator's decision, not yet the participants' truth:
//! their termination protocol may have aborted it (the partition limit, or a participant
//! bug), and then what the client hears and what is logged follow the participants.
//! - The client hears "committed" before every ack is in only once some participant
//!   confirmed that it committed and none refused (`Txn::commit_known`).
//! - Every YES voter refused the DoCommit (answered Aborted, or has no record): nothing
//!   was applied anywhere, so the abort is adopted (`Record::AbortAdopted`) and the client
//!   hears Aborted.
//! - Some committed, some aborted: atomicity is broken and nothing can repair it. Logged
//!   as ATOMICITY VIOLATED; the client hears Aborted with a reason naming who committed
//!   and who aborted (never plain "committed"); the decision row keeps 'commit' (the
//!   decision, applied where it committed) and is ended, so recovery cannot turn it into
//!   an abort later.
//!
//! An `Ack{Aborted}` to a PreCommit (or a `StateReply{Aborted}`) means a participant's
//! termination protocol aborted: either the coordinator was down (recovery), or the
//! documented partition limit. The coordinator then adopts the abort durably
//! (`Record::AbortAdopted`) as long as no DoCommit was sent and no participant said it
//! committed (then it is a split, as above).

use wire::{Decision, NodeId, Outcome, TxnId, TxnResult};

use super::Coordinator;
use super::io::{Millis, Output, Record};
use super::txn::{PartState, Pending, Phase, decide, participants_text};

impl Coordinator {
    /// A participant aborted before any DoCommit went out: the precommit becomes an
    /// abort, durably, before anyone is told. Unless another one said it committed: then
    /// commit is the only outcome left for the rest, and the split is reported at the end.
    pub(super) fn adopt_abort(&mut self, now: Millis, id: TxnId, from: NodeId, reason: String) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        let committed = txn.nodes_in(PartState::Acked);
        if let Some(part) = txn.part_mut(from) {
            part.state = PartState::Aborted;
        }
        if !committed.is_empty() {
            tracing::error!(txn_id = %id, peer = %from, committed = %participants_text(&committed), %reason, "ATOMICITY VIOLATED: a participant aborted a 3pc transaction another one committed; the rest are told to commit");
            self.send_commit(now, id);
            return;
        }
        if matches!(txn.phase, Phase::Resolving { .. }) {
            tracing::warn!(txn_id = %id, peer = %from, %reason, "recovered precommit: adopting the abort");
        } else {
            tracing::error!(txn_id = %id, peer = %from, %reason, "PRECOMMITTED 3PC TRANSACTION ABORTED BY A PARTICIPANT: adopting the abort");
        }
        self.log_adopted_abort(id, reason);
    }

    /// Hands out the `AbortAdopted` record; nobody hears of the abort before it is durable.
    pub(super) fn log_adopted_abort(&mut self, id: TxnId, reason: String) {
        let lsn = self.next_lsn();
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        txn.abort_reason = Some(reason.clone());
        txn.phase = Phase::LoggingAbort { lsn };
        self.arm(id, None);
        self.pending.insert(lsn, Pending::AbortAdopted(id));
        self.outputs.push_back(Output::Persist {
            lsn,
            record: Record::AbortAdopted { txn: id, reason },
        });
    }

    /// The adopted abort is durable (and the transaction ended): Decide{Abort} to the
    /// others, once (an abort is presumed for any later question), and the client.
    pub(super) fn on_abort_adopted_durable(&mut self, id: TxnId) {
        let Some(txn) = self.forget(id) else {
            return;
        };
        tracing::info!(txn_id = %id, protocol = txn.protocol.as_str(), reason = txn.abort_reason.as_deref().unwrap_or(""), "aborted (adopted from a participant)");
        for part in &txn.parts {
            let may_not_know = !matches!(
                part.state,
                PartState::ReadOnly | PartState::Aborted | PartState::Acked
            );
            if may_not_know && self.up.contains(&part.node) {
                self.outputs.push_back(Output::Send {
                    to: part.node,
                    msg: decide(id, Decision::Abort, txn.abort_reason.as_deref()),
                });
            }
        }
        // A commit reported while the abort was being logged: the client hears the split.
        let committed = txn.nodes_in(PartState::Acked);
        let reason = if committed.is_empty() {
            txn.abort_reason
        } else {
            Some(split_reason(&committed, &txn.nodes_in(PartState::Aborted)))
        };
        if let (Some(client), Some(reason)) = (txn.client, reason) {
            self.outputs.push_back(Output::ClientResult {
                client,
                txn: id,
                result: TxnResult::Aborted { reason },
            });
        }
    }

    /// `from` answered the DoCommit (or a StateQuery) with Aborted or Unknown: it will
    /// never commit. Judged once every ack is in (`end_refused_commit`).
    pub(super) fn commit_refused(&mut self, id: TxnId, from: NodeId, outcome: Outcome) {
        let Some(part) = self.txns.get_mut(&id).and_then(|txn| txn.part_mut(from)) else {
            return;
        };
        if part.state != PartState::AwaitingAck {
            return;
        }
        tracing::error!(txn_id = %id, peer = %from, ?outcome, "participant refused the DoCommit of a logged 3pc precommit (a termination protocol aborted it, or it lost its record)");
        part.state = PartState::Aborted;
        self.end_commit_if_acked(id);
    }

    /// Every ack is in and some participant refused the DoCommit. None committed: adopt
    /// the abort (durably, then the client hears). Some did: a split, reported as such.
    pub(super) fn end_refused_commit(&mut self, id: TxnId) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        let committed = txn.nodes_in(PartState::Acked);
        let aborted = txn.nodes_in(PartState::Aborted);
        if committed.is_empty() {
            let reason = format!(
                "no participant committed: {} refused the DoCommit, having aborted (a \
                 termination protocol overrode the logged precommit): the abort is adopted",
                participants_text(&aborted)
            );
            tracing::error!(txn_id = %id, %reason, "every participant refused the DoCommit: adopting the abort");
            self.log_adopted_abort(id, reason);
            return;
        }
        let reason = split_reason(&committed, &aborted);
        let client = txn.client.take();
        tracing::error!(txn_id = %id, %reason, client_waiting = client.is_some(), "3pc transaction ended split");
        self.forget(id);
        if let Some(client) = client {
            self.outputs.push_back(Output::ClientResult {
                client,
                txn: id,
                result: TxnResult::Aborted { reason },
            });
        }
        // The row keeps 'commit', the decision and what `committed` applied; ending it
        // keeps recovery from adopting an abort that would hide those commits.
        self.log_ended(id);
    }

    /// Logging an adopted abort, `from` says it committed: too late for the row, but
    /// the client will hear the split, and `from` is not told to abort.
    pub(super) fn committed_while_logging_abort(&mut self, id: TxnId, from: NodeId) {
        let Some(part) = self.txns.get_mut(&id).and_then(|txn| txn.part_mut(from)) else {
            return;
        };
        if matches!(
            part.state,
            PartState::ReadOnly | PartState::Aborted | PartState::Acked
        ) {
            return;
        }
        tracing::error!(txn_id = %id, peer = %from, "ATOMICITY VIOLATED: a participant committed a 3pc transaction whose abort (reported by another) is being logged");
        part.state = PartState::Acked;
    }
}

/// The client's reason when some participants committed and others aborted.
fn split_reason(committed: &[NodeId], aborted: &[NodeId]) -> String {
    format!(
        "ATOMICITY VIOLATED, the outcome is split: {} committed, {} aborted (a termination \
         protocol overrode the logged precommit)",
        participants_text(committed),
        participants_text(aborted)
    )
}
