//! The 3PC transitions of the coordinator core: the precommit guard, PreCommit and its
//! acks, adopting an abort a participant reports, and recovery of a logged precommit.
//!
//! Timeline of one transaction (times from the CanCommit, `T` = the spec's `timeout_ms`,
//! which the participants use as their waiting timeout, `M` = `precommit_margin_ms`):
//!
//! ```text
//! 0        CanCommit (Prepare, protocol 3pc) to every participant
//! < T - M  all YES: Persist Decided{Commit} (the precommit); else abort, unlogged
//! durable  PreCommit to every YES voter (never abort on our own from here on)
//! acks     all PreCommit acks, or precommit_ack_timeout_ms: DoCommit (Decide{Commit})
//! acks     every DoCommit ack: Ended, client Committed
//! ```
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
//! A YES voter's waiting timeout starts when it votes, which is after the CanCommit was
//! sent, so it cannot fire before `T`. Votes complete before `T - M` leave the margin
//! for the precommit log write and the PreCommit's trip: under the bounded delays 3PC
//! assumes, no participant times out into the termination protocol while waiting.
//!
//! An `Ack{Aborted}` to a PreCommit (or a `StateReply{Aborted}`) means a participant's
//! termination protocol aborted: either the coordinator was down (recovery), or the
//! documented partition limit. The coordinator then adopts the abort durably
//! (`Record::AbortAdopted`) as long as no DoCommit was sent and no participant said it
//! committed (then it is a split, as above).

use super::*;

impl Coordinator {
    /// The last moment a commit may still be decided for a CanCommit sent at `sent`.
    pub(super) fn precommit_deadline(&self, sent: Millis, timeout_ms: u64) -> Millis {
        Millis(
            sent.plus(timeout_ms)
                .0
                .saturating_sub(self.config.precommit_margin_ms),
        )
    }

    /// 3PC needs a timeout that leaves a vote window of at least `timeout_ms_min` once
    /// the precommit margin is taken off.
    pub(super) fn validate_three_phase(&self, spec: &TxnSpec) -> Result<(), String> {
        match spec.protocol {
            Protocol::TwoPhase => Ok(()),
            Protocol::ThreePhase => {
                let margin = self.config.precommit_margin_ms;
                let window_min = self.config.limits.timeout_ms_min;
                let min = window_min.saturating_add(margin);
                if spec.timeout_ms < min {
                    return Err(format!(
                        "3pc timeout {} ms is below {min} ms: votes are due {margin} ms (the \
                         precommit margin) before the participants' waiting timeout, which \
                         must leave at least {window_min} ms to vote",
                        spec.timeout_ms
                    ));
                }
                Ok(())
            }
        }
    }

    /// All voted YES at `now`: `Some(reason)` if that is too late for a PreCommit.
    pub(super) fn too_late_to_precommit(
        &self,
        now: Millis,
        votes_due: Millis,
        timeout_ms: u64,
    ) -> Option<String> {
        (now >= votes_due).then(|| {
            format!(
                "all voted yes too late to precommit safely: a participant's waiting timeout \
                 ({timeout_ms} ms after CanCommit) may have fired (votes are due {} ms before it)",
                self.config.precommit_margin_ms
            )
        })
    }

    /// The precommit is durable: PreCommit to every YES voter that is up; one that is
    /// down is treated as failed (it gets PreCommit if it returns while we wait, and
    /// DoCommit in any case).
    pub(super) fn send_precommit(&mut self, now: Millis, id: TxnId) {
        let acks_due = now.plus(self.config.precommit_ack_timeout_ms);
        let resend_at = now.plus(self.config.decide_resend_ms);
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        for part in &mut txn.parts {
            if part.state != PartState::Yes {
                continue;
            }
            if self.up.contains(&part.node) {
                part.state = PartState::AwaitingPreAck;
                self.outputs.push_back(Output::Send {
                    to: part.node,
                    msg: ToParticipant::PreCommit { txn: id },
                });
            } else {
                tracing::warn!(txn_id = %id, peer = %part.node, "participant down at precommit: treated as failed");
                part.state = PartState::Silent;
            }
        }
        txn.phase = Phase::PreCommitting {
            acks_due: Some(acks_due),
            resend_at,
        };
        self.arm(id, Some(acks_due.min(resend_at)));
        self.commit_if_precommitted(now, id);
    }

    pub(super) fn on_precommit_ack(
        &mut self,
        now: Millis,
        from: NodeId,
        id: TxnId,
        outcome: Outcome,
    ) {
        let Some(part) = self.txns.get_mut(&id).and_then(|txn| txn.part_mut(from)) else {
            return;
        };
        if !matches!(
            part.state,
            PartState::AwaitingPreAck | PartState::PreAcked | PartState::Silent
        ) {
            return;
        }
        match outcome {
            Outcome::PreCommitted => {
                part.state = PartState::PreAcked;
                self.commit_if_precommitted(now, id);
            }
            // A termination leader got there first: applied there, no DoCommit needed.
            Outcome::Committed => {
                part.state = PartState::Acked;
                self.commit_if_precommitted(now, id);
            }
            Outcome::Aborted => self.adopt_abort(
                now,
                id,
                from,
                format!(
                    "participant {from} had already aborted (its termination protocol decided \
                     while cut off from the coordinator: the partition limit of 3pc)"
                ),
            ),
            // It voted YES, so it must know the transaction: it lost its log. Aborting
            // is the only outcome it can still apply.
            Outcome::Unknown => self.adopt_abort(
                now,
                id,
                from,
                format!("participant {from} has no record of the transaction it voted yes on"),
            ),
        }
    }

    pub(super) fn on_state_reply(
        &mut self,
        now: Millis,
        from: NodeId,
        id: TxnId,
        state: TxnState,
        recovered: bool,
    ) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        if txn.protocol != Protocol::ThreePhase {
            tracing::warn!(peer = %from, txn_id = %id, ?state, "state reply for a 2pc transaction, ignored");
            return;
        }
        let phase = txn.phase;
        let Some(part) = txn.part_mut(from) else {
            tracing::warn!(peer = %from, txn_id = %id, "state reply from a non-participant, ignored");
            return;
        };
        match (phase, state) {
            (Phase::Resolving { .. }, _)
                if matches!(
                    part.state,
                    PartState::AwaitingState | PartState::Reported { .. }
                ) =>
            {
                match state {
                    TxnState::Aborted => self.adopt_abort(
                        now,
                        id,
                        from,
                        format!(
                            "participant {from} aborted while the coordinator was down (its \
                             termination protocol decided)"
                        ),
                    ),
                    // Someone committed: no one can have aborted, commit is final.
                    TxnState::Committed => self.send_commit(now, id),
                    TxnState::Waiting | TxnState::PreCommitted | TxnState::Prepared => {
                        let state = if state == TxnState::Prepared {
                            tracing::error!(peer = %from, txn_id = %id, "participant reports a 2pc state for a 3pc transaction; taken as waiting");
                            TxnState::Waiting
                        } else {
                            state
                        };
                        part.state = PartState::Reported { state, recovered };
                        self.finish_resolving(now, id);
                    }
                }
            }
            (Phase::PreCommitting { .. }, TxnState::Aborted)
                if matches!(
                    part.state,
                    PartState::AwaitingPreAck | PartState::PreAcked | PartState::Silent
                ) =>
            {
                self.on_precommit_ack(now, from, id, Outcome::Aborted);
            }
            // Its answer to the DoCommit will say the same: states only move forward.
            (Phase::Committing { .. }, TxnState::Aborted)
                if part.state == PartState::AwaitingAck =>
            {
                self.commit_refused(id, from, Outcome::Aborted);
            }
            (Phase::LoggingAbort { .. }, TxnState::Committed) => {
                self.committed_while_logging_abort(id, from);
            }
            _ => {}
        }
    }

    /// Recovery: the coordinator is a recovered site, and the participants' termination
    /// protocol may be running (or have decided) without it. It decides only when no
    /// termination can decide any more: every participant answered an undecided state
    /// *and* had restarted since its vote (a recovered participant never leads, never
    /// decides alone and only adopts a decision it hears). A participant that decided
    /// made that durable before telling anyone, so it answers its decision, never an
    /// undecided state; so with every participant recovered and undecided, nobody has
    /// decided and nobody but the coordinator can: it commits (the logged precommit).
    /// While some participant is operational, the coordinator waits for the outcome that
    /// its termination round reaches, asking again (`asks_state`).
    fn finish_resolving(&mut self, now: Millis, id: TxnId) {
        let Some(txn) = self.txns.get(&id) else {
            return;
        };
        let all_recovered = txn.parts.iter().all(|p| {
            matches!(
                p.state,
                PartState::Reported {
                    recovered: true,
                    ..
                }
            )
        });
        if all_recovered {
            tracing::info!(txn_id = %id, "recovered precommit: every participant restarted since its vote and none decided; the coordinator commits");
            self.send_commit(now, id);
        }
    }

    /// The precommit became durable at or after the PreCommit deadline: a participant's
    /// waiting timeout may have fired and its termination protocol aborted. No PreCommit
    /// went out, so nobody can be precommitted: the abort is adopted durably (the
    /// decision row becomes 'abort'), then the voters and the client hear it.
    pub(super) fn precommit_durable_too_late(&mut self, id: TxnId, due: Millis) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        txn.precommit_late = true;
        let reason = format!(
            "the precommit record became durable after the PreCommit deadline ({} ms after \
             CanCommit, {} ms before the participants' waiting timeout): a participant may \
             have timed out, so no PreCommit was sent",
            txn.timeout_ms
                .saturating_sub(self.config.precommit_margin_ms),
            self.config.precommit_margin_ms
        );
        tracing::warn!(txn_id = %id, due_ms = due.0, %reason, "adopting abort");
        self.log_adopted_abort(id, reason);
    }

    /// PreCommitting with no ack missing (acked, or given up on): DoCommit.
    fn commit_if_precommitted(&mut self, now: Millis, id: TxnId) {
        let ready = self.txns.get(&id).is_some_and(|txn| {
            matches!(txn.phase, Phase::PreCommitting { .. })
                && !txn
                    .parts
                    .iter()
                    .any(|p| p.state == PartState::AwaitingPreAck)
        });
        if ready {
            self.send_commit(now, id);
        }
    }

    /// `peer` went down while its PreCommit ack was awaited: treated as failed.
    pub(super) fn precommit_failed(&mut self, now: Millis, id: TxnId, peer: NodeId) {
        let Some(part) = self.txns.get_mut(&id).and_then(|txn| txn.part_mut(peer)) else {
            return;
        };
        if part.state == PartState::AwaitingPreAck {
            tracing::warn!(txn_id = %id, %peer, "participant down before acking PreCommit: treated as failed");
            part.state = PartState::Silent;
            self.commit_if_precommitted(now, id);
        }
    }

    pub(super) fn on_three_phase_due(&mut self, now: Millis, id: TxnId) {
        let resend_ms = self.config.decide_resend_ms;
        let ack_timeout_ms = self.config.precommit_ack_timeout_ms;
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        match txn.phase {
            Phase::PreCommitting {
                acks_due,
                mut resend_at,
            } => {
                if acks_due.is_some_and(|due| due <= now) {
                    let mut silent = Vec::new();
                    for part in &mut txn.parts {
                        if part.state == PartState::AwaitingPreAck {
                            part.state = PartState::Silent;
                            silent.push(part.node);
                        }
                    }
                    tracing::warn!(txn_id = %id, silent = %participants_text(&silent), "no PreCommit ack within {ack_timeout_ms} ms: treated as failed, DoCommit goes out");
                    self.send_commit(now, id);
                    return;
                }
                if resend_at <= now {
                    for part in &txn.parts {
                        if matches!(part.state, PartState::AwaitingPreAck | PartState::Silent)
                            && self.up.contains(&part.node)
                        {
                            self.outputs.push_back(Output::Send {
                                to: part.node,
                                msg: ToParticipant::PreCommit { txn: id },
                            });
                        }
                    }
                    resend_at = now.plus(resend_ms);
                }
                txn.phase = Phase::PreCommitting {
                    acks_due,
                    resend_at,
                };
                self.arm(id, Some(earliest(acks_due, resend_at)));
            }
            Phase::Resolving { mut resend_at } => {
                if resend_at <= now {
                    for part in &txn.parts {
                        if asks_state(part.state) && self.up.contains(&part.node) {
                            self.outputs.push_back(Output::Send {
                                to: part.node,
                                msg: ToParticipant::StateQuery { txn: id },
                            });
                        }
                    }
                    resend_at = now.plus(resend_ms);
                }
                txn.phase = Phase::Resolving { resend_at };
                self.arm(id, Some(resend_at));
            }
            _ => {}
        }
    }

    /// A participant aborted before any DoCommit went out: the precommit becomes an
    /// abort, durably, before anyone is told. Unless another one said it committed: then
    /// commit is the only outcome left for the rest, and the split is reported at the end.
    fn adopt_abort(&mut self, now: Millis, id: TxnId, from: NodeId, reason: String) {
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
    fn log_adopted_abort(&mut self, id: TxnId, reason: String) {
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
        for part in &txn.parts {
            let may_not_know = !matches!(
                part.state,
                PartState::ReadOnly | PartState::Aborted | PartState::Acked
            );
            if may_not_know && self.up.contains(&part.node) {
                self.outputs.push_back(Output::Send {
                    to: part.node,
                    msg: decide(id, Decision::Abort),
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
