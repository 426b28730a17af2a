//! The commit is durable: `Decide{Commit}` to every YES voter (3PC: DoCommit, after the
//! PreCommit round), the acks, the client's result, the lazy `Ended` record, re-sends, and
//! the answers to participants' `DecisionQuery`.

use wire::{
    Answer, Decision, FromCoordinator, NodeId, Outcome, Protocol, RequestId, ToCoordinator, TxnId,
    TxnResult,
};

use super::Coordinator;
use super::io::{Millis, Output, Record};
use super::txn::{PartState, Pending, Phase, decide, earliest};

impl Coordinator {
    /// The commit record (3PC: the precommit) is durable: 2PC sends the commit; 3PC sends
    /// PreCommit, unless the record became durable too late for one.
    pub(super) fn on_decided_durable(&mut self, now: Millis, id: TxnId) {
        let Some(txn) = self.txns.get(&id) else {
            return;
        };
        // A pending commit record belongs to a transaction logging it (`check_invariants`).
        let precommit_due = match txn.phase {
            Phase::Logging { precommit_due, .. } => precommit_due,
            Phase::Collecting { .. }
            | Phase::PreCommitting { .. }
            | Phase::Committing { .. }
            | Phase::Resolving { .. }
            | Phase::LoggingAbort { .. } => None,
        };
        match txn.protocol {
            Protocol::TwoPhase => self.send_commit(now, id),
            Protocol::ThreePhase => match precommit_due {
                Some(due) if now >= due => self.precommit_durable_too_late(id, due),
                _ => self.send_precommit(now, id),
            },
        }
    }

    /// The commit is durable (3PC: every PreCommit acked or given up on): Decide{Commit}
    /// to every YES voter that is up, the others get it when they come back.
    pub(super) fn send_commit(&mut self, now: Millis, id: TxnId) {
        let resend_ms = self.config.decide_resend_ms;
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        for part in &mut txn.parts {
            if matches!(
                part.state,
                PartState::Yes
                    | PartState::AwaitingPreAck
                    | PartState::PreAcked
                    | PartState::Silent
                    | PartState::AwaitingState
                    | PartState::Reported { .. }
            ) {
                part.state = PartState::AwaitingAck;
                if self.up.contains(&part.node) {
                    self.outputs.push_back(Output::Send {
                        to: part.node,
                        msg: decide(id, Decision::Commit, None),
                    });
                }
            }
        }
        // 2PC: the durable commit record is the commit point. Every YES voter holds its
        // locks until it applies the commit, so nobody can read around it, and the
        // coordinator re-sends the commit until each one acks: the client hears now,
        // not a phase later. (3PC: once a participant confirmed, `commit_known`.)
        if txn.protocol == Protocol::TwoPhase
            && let Some(client) = txn.client.take()
        {
            self.outputs.push_back(Output::ClientResult {
                client,
                txn: id,
                result: TxnResult::Committed { reads: txn.reads() },
            });
        }
        let client_due = txn.client.map(|_| now.plus(txn.timeout_ms));
        let resend_at = now.plus(resend_ms);
        txn.phase = Phase::Committing {
            client_due,
            resend_at,
        };
        self.arm(id, Some(earliest(client_due, resend_at)));
        // 3PC: every YES voter may already have answered (Committed to a PreCommit, or
        // Aborted): nothing left to send.
        self.end_commit_if_acked(id);
    }

    pub(super) fn on_ack(&mut self, now: Millis, from: NodeId, id: TxnId, outcome: Outcome) {
        // Acks for aborts and for forgotten transactions need nothing (presumed abort).
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        match txn.phase {
            Phase::Committing { .. } => {}
            Phase::PreCommitting { .. } => {
                self.on_precommit_ack(now, from, id, outcome);
                return;
            }
            Phase::LoggingAbort { .. } => {
                if matches!(outcome, Outcome::Committed | Outcome::HeuristicCommitted) {
                    self.committed_while_logging_abort(id, from);
                }
                return;
            }
            // No PreCommit or Decide{Commit} is out in these phases: the ack is stale.
            Phase::Collecting { .. } | Phase::Logging { .. } | Phase::Resolving { .. } => return,
        }
        let protocol = txn.protocol;
        let Some(part) = txn.part_mut(from) else {
            return;
        };
        if part.state != PartState::AwaitingAck {
            return;
        }
        match (outcome, protocol) {
            (Outcome::Committed, _) => part.state = PartState::Acked,
            // Resolved by hand before the commit arrived: it will not change its data
            // again, so it counts as acked (the commit can end), and a contradiction is a
            // hazard for the operator.
            (Outcome::HeuristicCommitted | Outcome::HeuristicAborted, _) => {
                part.state = PartState::Acked;
                self.on_heuristic(id, from, Decision::Commit, outcome);
            }
            // A late ack of the PreCommit, not of the DoCommit.
            (Outcome::PreCommitted, Protocol::ThreePhase) => return,
            // The participant lost or overrode a Yes vote: its bug, not ours to repair.
            // Counted as acked so the commit can end; the error makes it visible.
            (Outcome::Aborted | Outcome::PreCommitted | Outcome::Unknown, Protocol::TwoPhase) => {
                tracing::error!(peer = %from, txn_id = %id, ?outcome, "participant acked a commit with another outcome");
                part.state = PartState::Acked;
            }
            // A termination protocol aborted it: the client and the log must say so.
            (Outcome::Aborted | Outcome::Unknown, Protocol::ThreePhase) => {
                self.commit_refused(id, from, outcome);
                return;
            }
        }
        self.tell_committed_if_known(id);
        self.end_commit_if_acked(id);
    }

    /// Committing with no ack missing: the client hears "committed" and the end is
    /// logged. 3PC: if a participant refused the DoCommit, `end_refused_commit` instead.
    pub(super) fn end_commit_if_acked(&mut self, id: TxnId) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        if !matches!(txn.phase, Phase::Committing { .. })
            || txn.parts.iter().any(|p| p.state == PartState::AwaitingAck)
        {
            return;
        }
        if txn.parts.iter().any(|p| p.state == PartState::Aborted) {
            self.end_refused_commit(id);
            return;
        }
        let reads = txn.reads();
        let client = txn.client.take();
        self.forget(id);
        if let Some(client) = client {
            self.outputs.push_back(Output::ClientResult {
                client,
                txn: id,
                result: TxnResult::Committed { reads },
            });
        }
        self.log_ended(id);
    }

    /// Committing past the client's deadline (`client_due` gone, client still waiting):
    /// tells it "committed" as soon as that is known (`Txn::commit_known`).
    pub(super) fn tell_committed_if_known(&mut self, id: TxnId) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        let due_passed = matches!(
            txn.phase,
            Phase::Committing {
                client_due: None,
                ..
            }
        );
        if !due_passed || !txn.commit_known() {
            return;
        }
        if let Some(client) = txn.client.take() {
            self.outputs.push_back(Output::ClientResult {
                client,
                txn: id,
                result: TxnResult::Committed { reads: txn.reads() },
            });
        }
    }

    /// The transaction is over and forgotten: its `Ended` record.
    pub(super) fn log_ended(&mut self, id: TxnId) {
        // Lazy: nothing waits on the end record; losing it only means a re-sent Commit.
        let lsn = self.next_lsn();
        self.pending.insert(lsn, Pending::Ended(id));
        self.ended_pending += 1;
        self.outputs.push_back(Output::Persist {
            lsn,
            record: Record::Ended { txn: id },
        });
    }

    /// Committing, at the client's deadline or the resend time: the client may hear
    /// "committed" (once that is known), and Decide{Commit} goes again to every up
    /// participant that has not acked.
    pub(super) fn on_commit_acks_due(
        &mut self,
        now: Millis,
        id: TxnId,
        mut client_due: Option<Millis>,
        mut resend_at: Millis,
    ) {
        let resend_ms = self.config.decide_resend_ms;
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        if client_due.is_some_and(|due| due <= now) {
            // 2PC: the commit is durable and will reach every participant: the
            // client may rely on it even though some ack is still missing. 3PC:
            // only once a participant confirmed it (else it hears at that moment,
            // or the truth once every ack is in).
            client_due = None;
            if txn.commit_known()
                && let Some(client) = txn.client.take()
            {
                self.outputs.push_back(Output::ClientResult {
                    client,
                    txn: id,
                    result: TxnResult::Committed { reads: txn.reads() },
                });
            }
        }
        if resend_at <= now {
            for part in &txn.parts {
                if part.state == PartState::AwaitingAck && self.up.contains(&part.node) {
                    self.outputs.push_back(Output::Send {
                        to: part.node,
                        msg: decide(id, Decision::Commit, None),
                    });
                }
            }
            resend_at = now.plus(resend_ms);
        }
        txn.phase = Phase::Committing {
            client_due,
            resend_at,
        };
        self.arm(id, Some(earliest(client_due, resend_at)));
    }

    pub(super) fn on_request(&mut self, from: NodeId, id: RequestId, msg: ToCoordinator) {
        let reply = match msg {
            ToCoordinator::DecisionQuery { txn } => {
                // 3PC: Commit only once DoCommit is going out. Before that a precommit
                // may still turn into an adopted abort, so the answer is Undecided.
                let answer = match self.txns.get(&txn).map(|t| t.phase) {
                    None => Answer::Abort,
                    Some(Phase::Committing { .. }) => Answer::Commit,
                    Some(
                        Phase::Collecting { .. }
                        | Phase::Logging { .. }
                        | Phase::PreCommitting { .. }
                        | Phase::Resolving { .. }
                        | Phase::LoggingAbort { .. },
                    ) => Answer::Undecided,
                };
                FromCoordinator::DecisionAnswer { txn, answer }
            }
        };
        self.outputs.push_back(Output::Reply {
            to: from,
            id,
            msg: reply,
        });
    }
}
