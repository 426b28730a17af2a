//! Collecting votes: Yes, ReadOnly and No votes, the vote timeout, the commit record
//! handed out once all voted Yes (3PC: the precommit), and the unlogged abort (presumed
//! abort) with the `Release` of read-only voters at the lock point.

use wire::{Decision, NodeId, Protocol, Read, ToParticipant, TxnId, TxnResult, Vote};

use super::Coordinator;
use super::io::{Millis, Output, Record};
use super::txn::{PartState, Pending, Phase, Txn, decide, participants_text};

impl Coordinator {
    pub(super) fn on_vote(
        &mut self,
        now: Millis,
        from: NodeId,
        id: TxnId,
        vote: Vote,
        reads: Vec<Read>,
    ) {
        // A vote for a forgotten transaction is late (it was aborted: the participant got
        // or will get Decide{Abort}, or learns Abort by query) or a duplicate: ignore it.
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        let Phase::Collecting { votes_due } = txn.phase else {
            return;
        };
        let Some(part) = txn.part_mut(from) else {
            tracing::warn!(peer = %from, txn_id = %id, "vote from a non-participant, ignored");
            return;
        };
        if part.state != PartState::AwaitingVote {
            return;
        }
        match vote {
            Vote::Yes => {
                part.state = PartState::Yes;
                part.reads = reads;
            }
            Vote::ReadOnly => {
                part.state = PartState::ReadOnly;
                part.reads = reads;
            }
            Vote::No { reason } => {
                part.state = PartState::No;
                self.abort(id, format!("participant {from} voted no: {reason}"));
                return;
            }
        }
        if txn.parts.iter().any(|p| p.state == PartState::AwaitingVote) {
            return;
        }
        // The lock point: every participant holds its locks now, so the read-only voters
        // may drop theirs (the writers keep theirs until the outcome).
        self.release_read_only(id);
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        if txn.parts.iter().all(|p| p.state == PartState::ReadOnly) {
            // Nothing to apply anywhere: committed without a log record.
            let result = TxnResult::Committed { reads: txn.reads() };
            let client = txn.client.take();
            self.forget(id);
            if let Some(client) = client {
                self.outputs.push_back(Output::ClientResult {
                    client,
                    txn: id,
                    result,
                });
            }
            return;
        }
        let (protocol, timeout_ms) = (txn.protocol, txn.timeout_ms);
        let precommit_due = match protocol {
            Protocol::TwoPhase => None,
            Protocol::ThreePhase => {
                if let Some(reason) = self.too_late_to_precommit(now, votes_due, timeout_ms) {
                    self.abort(id, reason);
                    return;
                }
                Some(votes_due)
            }
        };
        self.log_commit(id, precommit_due);
    }

    /// All voted Yes/ReadOnly (and, for 3PC, in time): hands out the commit record.
    pub(super) fn log_commit(&mut self, id: TxnId, precommit_due: Option<Millis>) {
        let lsn = self.next_lsn();
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        for part in &mut txn.parts {
            part.ops = Vec::new();
        }
        let participants: Vec<NodeId> = txn
            .parts
            .iter()
            .filter(|p| p.state == PartState::Yes)
            .map(|p| p.node)
            .collect();
        let protocol = txn.protocol;
        txn.phase = Phase::Logging { lsn, precommit_due };
        // No deadline while logging: the store answers or the node dies (a failed write is fatal).
        self.arm(id, None);
        self.pending.insert(lsn, Pending::Decided(id));
        self.outputs.push_back(Output::Persist {
            lsn,
            record: Record::Decided {
                txn: id,
                protocol,
                decision: Decision::Commit,
                participants,
            },
        });
    }

    /// The vote deadline (2PC: the spec's timeout; 3PC: the PreCommit deadline): the
    /// votes still missing abort the transaction.
    pub(super) fn on_votes_due(&mut self, now: Millis, id: TxnId, votes_due: Millis) {
        if votes_due > now {
            self.arm(id, Some(votes_due));
            return;
        }
        let Some(txn) = self.txns.get(&id) else {
            return;
        };
        let missing: Vec<NodeId> = txn
            .parts
            .iter()
            .filter(|p| p.state == PartState::AwaitingVote)
            .map(|p| p.node)
            .collect();
        self.abort(
            id,
            format!(
                "timeout waiting for votes from {}",
                participants_text(&missing)
            ),
        );
    }

    /// Aborts a collecting transaction (presumed abort, nothing logged): Decide{Abort}
    /// to every up participant that may have prepared, the reason to the client, and the
    /// transaction is forgotten. Never called once a commit record was handed out.
    pub(super) fn abort(&mut self, id: TxnId, reason: String) {
        if let Some(txn) = self.txns.get(&id)
            && !matches!(txn.phase, Phase::Collecting { .. })
        {
            tracing::error!(txn_id = %id, phase = ?txn.phase, %reason, "bug: abort requested after the commit record; ignored");
            return;
        }
        let Some(txn) = self.forget(id) else {
            return;
        };
        tracing::info!(txn_id = %id, protocol = txn.protocol.as_str(), %reason, "aborted");
        for part in &txn.parts {
            let may_have_prepared = matches!(part.state, PartState::AwaitingVote | PartState::Yes);
            if may_have_prepared && self.up.contains(&part.node) {
                self.outputs.push_back(Output::Send {
                    to: part.node,
                    msg: decide(id, Decision::Abort, Some(&reason)),
                });
            }
        }
        // A read-only voter of an aborted txn holds its shared locks for nothing.
        if !txn.released {
            self.send_release(id, &txn);
        }
        if let Some(client) = txn.client {
            self.outputs.push_back(Output::ClientResult {
                client,
                txn: id,
                result: TxnResult::Aborted { reason },
            });
        }
    }

    /// Every vote is in: `Release` to each ReadOnly voter (see `send_release`). Once per txn.
    pub(super) fn release_read_only(&mut self, id: TxnId) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        if txn.released {
            return;
        }
        txn.released = true;
        let voters = read_only_voters(txn);
        self.release(id, voters);
    }

    pub(super) fn send_release(&mut self, id: TxnId, txn: &Txn) {
        self.release(id, read_only_voters(txn));
    }

    /// `Release` to each of `voters` that is up, each remembered until its `Released`: one
    /// that is down, or whose connection resets before it reads the `Release`, gets it
    /// again on `PeerUp` (`releases.rs`; past that table's bound, at its own timeout).
    fn release(&mut self, id: TxnId, voters: Vec<NodeId>) {
        for node in voters {
            self.releases.remember(node, id);
            if self.up.contains(&node) {
                self.outputs.push_back(Output::Send {
                    to: node,
                    msg: ToParticipant::Release { txn: id },
                });
            }
        }
    }
}

/// The ReadOnly voters of `txn`. A txn on one participant has none to release (its
/// participant keeps no locks after a ReadOnly vote).
fn read_only_voters(txn: &Txn) -> Vec<NodeId> {
    if txn.parts.len() < 2 {
        return Vec::new();
    }
    txn.parts
        .iter()
        .filter(|part| part.state == PartState::ReadOnly)
        .map(|part| part.node)
        .collect()
}
