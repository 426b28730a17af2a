//! The 3PC transitions of the coordinator core: the precommit guard, PreCommit and its
//! acks (and their timeout), and the state replies. When participants contradict the
//! logged precommit, `abort_adopted.rs` takes over; a restarted coordinator's logged
//! precommits are resolved in `recovery.rs`.
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
//! A YES voter's waiting timeout starts when it votes, which is after the CanCommit was
//! sent, so it cannot fire before `T`. Votes complete before `T - M` leave the margin
//! for the precommit log write and the PreCommit's trip: under the bounded delays 3PC
//! assumes, no participant times out into the termination protocol while waiting.

use wire::{NodeId, Outcome, Protocol, ToParticipant, TxnId, TxnSpec, TxnState};

use super::Coordinator;
use super::io::{Millis, Output};
use super::txn::{PartState, Phase, earliest, participants_text};

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
            // A termination leader got there first (or an operator committed it there by
            // hand): applied there, no DoCommit needed.
            Outcome::Committed | Outcome::HeuristicCommitted => {
                part.state = PartState::Acked;
                self.commit_if_precommitted(now, id);
            }
            // Aborted there by hand before any DoCommit: abort is still the outcome every
            // participant can reach.
            Outcome::HeuristicAborted => self.adopt_abort(
                now,
                id,
                from,
                format!("participant {from} was aborted by hand (heuristic) while in doubt"),
            ),
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
        match txn.protocol {
            Protocol::TwoPhase => {
                tracing::warn!(peer = %from, txn_id = %id, ?state, "state reply for a 2pc transaction, ignored");
                return;
            }
            Protocol::ThreePhase => {}
        }
        let phase = txn.phase;
        let Some(part) = txn.part_mut(from) else {
            tracing::warn!(peer = %from, txn_id = %id, "state reply from a non-participant, ignored");
            return;
        };
        match phase {
            Phase::Resolving { .. } => {
                if !matches!(
                    part.state,
                    PartState::AwaitingState | PartState::Reported { .. }
                ) {
                    return;
                }
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
            Phase::PreCommitting { .. } => match state {
                TxnState::Aborted => {
                    if matches!(
                        part.state,
                        PartState::AwaitingPreAck | PartState::PreAcked | PartState::Silent
                    ) {
                        self.on_precommit_ack(now, from, id, Outcome::Aborted);
                    }
                }
                // Only an abort changes anything before DoCommit: the PreCommit's ack
                // reports the rest.
                TxnState::Prepared
                | TxnState::Waiting
                | TxnState::PreCommitted
                | TxnState::Committed => {}
            },
            Phase::Committing { .. } => match state {
                // Its answer to the DoCommit will say the same: states only move forward.
                TxnState::Aborted => {
                    if part.state == PartState::AwaitingAck {
                        self.commit_refused(id, from, Outcome::Aborted);
                    }
                }
                // The DoCommit's ack reports the rest.
                TxnState::Prepared
                | TxnState::Waiting
                | TxnState::PreCommitted
                | TxnState::Committed => {}
            },
            Phase::LoggingAbort { .. } => match state {
                TxnState::Committed => self.committed_while_logging_abort(id, from),
                // The abort is already being logged: only a commit changes what the client
                // hears.
                TxnState::Prepared
                | TxnState::Waiting
                | TxnState::PreCommitted
                | TxnState::Aborted => {}
            },
            // No StateQuery goes out before a logged precommit: a reply now is stale.
            Phase::Collecting { .. } | Phase::Logging { .. } => {}
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
    pub(super) fn commit_if_precommitted(&mut self, now: Millis, id: TxnId) {
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

    /// PreCommitting, at the ack deadline or the resend time: at the deadline every
    /// silent participant is treated as failed and DoCommit goes out; before it, PreCommit
    /// goes again to every up participant that has not acked.
    pub(super) fn on_precommit_acks_due(
        &mut self,
        now: Millis,
        id: TxnId,
        acks_due: Option<Millis>,
        mut resend_at: Millis,
    ) {
        let resend_ms = self.config.decide_resend_ms;
        let ack_timeout_ms = self.config.precommit_ack_timeout_ms;
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
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
}
