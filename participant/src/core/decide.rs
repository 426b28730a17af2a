//! PreCommit and Decide from the coordinator or a termination leader, and the two ways
//! an active txn ends: `commit` (the record first, then locks and Acks) and
//! `abort_active` (locks released at once, the `Aborted` record persisted).

use tracing::{error, info, warn};
use wire::{Decision, FromParticipant, Outcome, Protocol, RequestId, TxnId, TxnState};

use super::answer::{ack_msg, decided_outcome, done_answer, holds_abort};
use super::state::{Active, Done, End, Waiter, Wants, push_waiter, set_timer};
use super::{Lsn, Millis, Participant, Record, ReplyTo, StoredState, StoredTxn};

impl Participant {
    pub(super) fn on_precommit(
        &mut self,
        now: Millis,
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        stored: Option<StoredTxn>,
    ) {
        if let Some(active) = self.active.get_mut(&txn) {
            if active.protocol == Protocol::TwoPhase {
                error!(%txn, peer = %from.peer, "PreCommit for a 2PC txn");
                let reason = format!("PreCommit for txn {txn}, which runs 2PC");
                self.reply(from, id, FromParticipant::Refused { reason });
                return;
            }
            if active.durable.is_none() {
                error!(%txn, peer = %from.peer, "PreCommit before this participant voted");
                let reason = format!("PreCommit for txn {txn} before this participant voted");
                self.reply(from, id, FromParticipant::Refused { reason });
                return;
            }
            if active.target == TxnState::Waiting {
                active.target = TxnState::PreCommitted;
                push_waiter(
                    &mut active.waiters,
                    &mut self.outputs,
                    txn,
                    Waiter {
                        to: from,
                        id,
                        wants: Wants::PreCommitAck,
                    },
                );
                self.persist(Record::PreCommitted { txn });
            } else {
                // Already moving to `precommitted` or `committed` (never back): acked now if
                // `precommitted` is durable, else once the pending record is.
                self.answer_or_hold(txn, from, id, Wants::PreCommitAck);
            }
            self.heard_from_leader(now, txn, from.peer);
            return;
        }
        if let Some(done) = self.done.get(&txn) {
            match done.end {
                End::Committed => self.reply(from, id, ack_msg(txn, Outcome::Committed)),
                End::Aborted { .. } => {
                    error!(%txn, peer = %from.peer, "PreCommit for a txn this participant aborted; answering aborted");
                    self.reply_aborted(txn, from, id, Wants::PreCommitAck);
                }
                End::ReadOnly => {
                    error!(%txn, peer = %from.peer, "PreCommit for a txn this participant voted read-only on");
                    let reason = format!("PreCommit for txn {txn}, voted read-only here");
                    self.reply(from, id, FromParticipant::Refused { reason });
                }
            }
            return;
        }
        let msg = match stored.map(|stored| stored.state) {
            None => {
                error!(%txn, peer = %from.peer, "PreCommit for a txn this participant never voted on");
                ack_msg(txn, Outcome::Unknown)
            }
            Some(StoredState::Committed) => ack_msg(txn, Outcome::Committed),
            Some(StoredState::HeuristicCommit) => ack_msg(txn, Outcome::HeuristicCommitted),
            Some(StoredState::Aborted) => {
                error!(%txn, peer = %from.peer, "PreCommit for a txn this participant aborted; answering aborted");
                ack_msg(txn, Outcome::Aborted)
            }
            Some(StoredState::HeuristicAbort) => {
                error!(%txn, peer = %from.peer, "PreCommit for a txn an operator aborted here by hand");
                ack_msg(txn, Outcome::HeuristicAborted)
            }
            Some(
                state @ (StoredState::Prepared
                | StoredState::Waiting
                | StoredState::PreCommitted
                | StoredState::ReadOnly),
            ) => self.unexpected_stored(txn, state),
        };
        self.reply(from, id, msg);
    }

    pub(super) fn on_decide(
        &mut self,
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        decision: Decision,
        told: Option<&str>,
        stored: Option<StoredTxn>,
    ) {
        // A decision means every vote is in (or the txn is over): a read hold may go.
        self.release_hold(txn);
        if let Some(active) = self.active.get_mut(&txn) {
            let by_coordinator = from.peer == active.coordinator;
            match (active.durable, active.target, decision) {
                (None, _, Decision::Abort) => {
                    let by = if by_coordinator {
                        "aborted by the coordinator before the vote".to_string()
                    } else {
                        format!("aborted by participant {} before the vote", from.peer)
                    };
                    let reason = with_told(by, told);
                    self.abort_active(txn, &reason);
                    self.reply_aborted(txn, from, id, Wants::DecideAck);
                }
                (None, _, Decision::Commit) => {
                    error!(%txn, peer = %from.peer, "commit before this participant voted");
                    let reason = format!("commit for txn {txn} before this participant voted");
                    self.reply(from, id, FromParticipant::Refused { reason });
                }
                (Some(_), TxnState::Committed, decision) => {
                    if decision == Decision::Abort {
                        error!(%txn, peer = %from.peer, "abort for a txn already committing");
                    }
                    self.answer_or_hold(txn, from, id, Wants::DecideAck);
                }
                (Some(_), _, Decision::Commit) => {
                    self.commit(txn, Some((from, id)));
                }
                (Some(_), target, Decision::Abort) => {
                    if target == TxnState::PreCommitted {
                        warn!(%txn, peer = %from.peer, "abort of a precommitted txn (the termination protocol aborted it)");
                    }
                    let by = if by_coordinator {
                        "aborted by the coordinator".to_string()
                    } else {
                        format!(
                            "aborted by participant {} (termination protocol)",
                            from.peer
                        )
                    };
                    let reason = with_told(by, told);
                    self.abort_active(txn, &reason);
                    self.reply_aborted(txn, from, id, Wants::DecideAck);
                }
            }
            return;
        }
        let outcome = if let Some(done) = self.done.get(&txn) {
            match done.end {
                End::Committed => Outcome::Committed,
                End::Aborted { .. } => {
                    if decision == Decision::Commit {
                        error!(%txn, peer = %from.peer, "commit for a txn this participant aborted");
                    }
                    self.reply_aborted(txn, from, id, Wants::DecideAck);
                    return;
                }
                // Not a party to the outcome: whatever was decided is fine here.
                End::ReadOnly => decided_outcome(decision),
            }
        } else {
            match stored.map(|stored| stored.state) {
                None => Outcome::Unknown,
                Some(StoredState::Committed) => Outcome::Committed,
                Some(StoredState::Aborted) => Outcome::Aborted,
                // Resolved by hand: the sender learns it, and a coordinator whose decision
                // it contradicts records a heuristic hazard.
                Some(StoredState::HeuristicCommit) => Outcome::HeuristicCommitted,
                Some(StoredState::HeuristicAbort) => Outcome::HeuristicAborted,
                Some(StoredState::ReadOnly) => decided_outcome(decision),
                Some(
                    state @ (StoredState::Prepared
                    | StoredState::Waiting
                    | StoredState::PreCommitted),
                ) => {
                    let msg = self.unexpected_stored(txn, state);
                    self.reply(from, id, msg);
                    return;
                }
            }
        };
        let outcome = match (decision, outcome) {
            // Presumed abort: no record of a txn is as good as aborted.
            (Decision::Abort, Outcome::Unknown) => Outcome::Aborted,
            (Decision::Commit, Outcome::Unknown) => {
                error!(%txn, peer = %from.peer, "commit for a txn this participant never prepared");
                Outcome::Unknown
            }
            (Decision::Commit, Outcome::Aborted) | (Decision::Abort, Outcome::Committed) => {
                error!(%txn, peer = %from.peer, ?decision, ?outcome, "decision contradicts the outcome");
                outcome
            }
            (Decision::Commit, Outcome::HeuristicAborted)
            | (Decision::Abort, Outcome::HeuristicCommitted) => {
                error!(%txn, peer = %from.peer, ?decision, ?outcome, "HEURISTIC HAZARD: the decision contradicts the outcome an operator forced here");
                outcome
            }
            (Decision::Commit, Outcome::Committed | Outcome::HeuristicCommitted)
            | (Decision::Abort, Outcome::Aborted | Outcome::HeuristicAborted)
            | (_, Outcome::PreCommitted) => outcome,
        };
        self.reply(from, id, ack_msg(txn, outcome));
    }

    /// Persists `Committed` for an undecided txn; the locks and Acks wait for it.
    pub(super) fn commit(
        &mut self,
        txn: TxnId,
        acker: Option<(ReplyTo, RequestId)>,
    ) -> Option<Lsn> {
        let undecided = self.active.get(&txn).map(Active::is_undecided);
        if undecided != Some(true) {
            error!(%txn, "commit of a txn that is not in doubt");
            if let Some((to, id)) = acker {
                self.reply_internal_error(txn, to, id, "is not in doubt");
            }
            return None;
        }
        let active = self.active.get_mut(&txn)?;
        active.target = TxnState::Committed;
        // Decided: its locks stop blocking the txns after it (`locks.rs`).
        let keys = active.entries.iter().map(|entry| entry.key.clone());
        self.locks.commit(txn, keys);
        active.termination = None;
        set_timer(&mut self.timers, txn, &mut active.timer_at, None);
        if let Some((to, id)) = acker {
            push_waiter(
                &mut active.waiters,
                &mut self.outputs,
                txn,
                Waiter {
                    to,
                    id,
                    wants: Wants::DecideAck,
                },
            );
        }
        Some(self.persist(Record::Committed { txn }))
    }

    /// Aborts a txn that is preparing or in doubt: locks released now, `Aborted` persisted.
    /// Under 2PC its waiting voters and Acks are answered at once (presumed abort); under
    /// 3PC, and every state reply, once `Aborted` is durable.
    pub(super) fn abort_active(&mut self, txn: TxnId, reason: &str) -> Option<Lsn> {
        if self.active.get(&txn)?.target == TxnState::Committed {
            error!(%txn, %reason, "abort of a committing txn refused");
            return None;
        }
        let mut active = self.active.remove(&txn)?;
        info!(%txn, %reason, "aborted");
        self.release_locks(txn, &active.entries);
        set_timer(&mut self.timers, txn, &mut active.timer_at, None);
        let lsn = self.persist(Record::Aborted {
            txn,
            protocol: active.protocol,
            coordinator: active.coordinator,
            reason: reason.to_string(),
        });
        let end = End::Aborted {
            reason: reason.to_string(),
        };
        let mut done = Done {
            protocol: active.protocol,
            end,
            reads: Vec::new(),
            pending: Some(lsn),
            waiters: Vec::new(),
        };
        for waiter in active.waiters {
            if holds_abort(active.protocol, waiter.wants) {
                done.waiters.push(waiter);
            } else {
                let msg = done_answer(txn, &done, waiter.wants);
                self.reply(waiter.to, waiter.id, msg);
            }
        }
        self.done.insert(txn, done);
        Some(lsn)
    }
}

/// The abort's reason: who aborted it, and why as they said (e.g. "aborted by the
/// coordinator: participant 2 voted no: ...").
fn with_told(by: String, told: Option<&str>) -> String {
    match told {
        Some(told) if !told.is_empty() => format!("{by}: {told}"),
        _ => by,
    }
}
