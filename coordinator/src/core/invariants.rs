//! `Coordinator::check_invariants`: the safety rules every state must keep (the tests and
//! the simulator check them after every input), above all "nothing that reveals a commit
//! leaves the core before its record is durable".

use wire::{Protocol, TxnId};

use super::Coordinator;
use super::recovery::is_undecided_report;
use super::txn::{PartState, Pending, Phase};

/// A broken core invariant: a bug, reported with what was seen.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("coordinator invariant violated: {0}")]
pub struct InvariantViolation(pub String);

impl Coordinator {
    /// Checks the safety invariants; the tests and the simulator call it after every input.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let fail = |what: String| Err(InvariantViolation(what));
        for (&id, txn) in &self.txns {
            // The states each phase allows; `reports`: also undecided 3PC state reports.
            let (allowed, reports): (&[PartState], bool) = match txn.phase {
                Phase::Collecting { .. } => (
                    &[PartState::AwaitingVote, PartState::Yes, PartState::ReadOnly],
                    false,
                ),
                Phase::Logging { lsn, .. } => {
                    if self.pending.get(&lsn) != Some(&Pending::Decided(id)) {
                        return fail(format!("txn {id} logging but lsn {lsn:?} not pending"));
                    }
                    (&[PartState::Yes, PartState::ReadOnly], false)
                }
                Phase::PreCommitting { .. } => (
                    &[
                        PartState::ReadOnly,
                        PartState::AwaitingPreAck,
                        PartState::PreAcked,
                        PartState::Silent,
                        PartState::Acked,
                    ],
                    false,
                ),
                Phase::Committing { .. } => {
                    if !txn.parts.iter().any(|p| p.state == PartState::AwaitingAck) {
                        return fail(format!(
                            "txn {id} committing with every ack in: it should have ended: {:?}",
                            txn.parts
                        ));
                    }
                    (
                        &[
                            PartState::ReadOnly,
                            PartState::AwaitingAck,
                            PartState::Acked,
                            PartState::Aborted,
                        ],
                        false,
                    )
                }
                Phase::Resolving { .. } => (&[PartState::AwaitingState], true),
                Phase::LoggingAbort { lsn } => {
                    if self.pending.get(&lsn) != Some(&Pending::AbortAdopted(id)) {
                        return fail(format!(
                            "txn {id} logging an abort but lsn {lsn:?} not pending"
                        ));
                    }
                    if !txn.precommit_late
                        && !txn.parts.iter().any(|p| p.state == PartState::Aborted)
                    {
                        return fail(format!(
                            "txn {id} adopts an abort no participant reported: {:?}",
                            txn.parts
                        ));
                    }
                    if txn.abort_reason.is_none() {
                        return fail(format!("txn {id} adopts an abort without a reason"));
                    }
                    (
                        &[
                            PartState::Yes,
                            PartState::ReadOnly,
                            PartState::AwaitingPreAck,
                            PartState::PreAcked,
                            PartState::Silent,
                            PartState::AwaitingState,
                            PartState::Aborted,
                            PartState::Acked,
                        ],
                        true,
                    )
                }
            };
            let allows = |state: PartState| {
                allowed.contains(&state) || (reports && is_undecided_report(state))
            };
            if let Some(part) = txn.parts.iter().find(|p| !allows(p.state)) {
                return fail(format!(
                    "txn {id} in {:?} has participant {} in {:?} (a commit announced before \
                     durable, or a No voter committed?)",
                    txn.phase, part.node, part.state
                ));
            }
            let three_phase_only = matches!(
                txn.phase,
                Phase::PreCommitting { .. } | Phase::Resolving { .. } | Phase::LoggingAbort { .. }
            ) || txn.parts.iter().any(|p| p.state == PartState::Aborted);
            if three_phase_only && txn.protocol != Protocol::ThreePhase {
                return fail(format!(
                    "{} txn {id} in 3pc phase {:?}",
                    txn.protocol.as_str(),
                    txn.phase
                ));
            }
            if let Some(at) = txn.wake_at
                && !self.timers.contains(&(at, id))
            {
                return fail(format!("txn {id} wakes at {at:?} but has no timer"));
            }
        }
        for &(at, id) in &self.timers {
            if self.txns.get(&id).and_then(|txn| txn.wake_at) != Some(at) {
                return fail(format!("timer {at:?} for txn {id} not owned by it"));
            }
        }
        let ended = self
            .pending
            .values()
            .filter(|p| matches!(p, Pending::Ended(_)))
            .count();
        if ended != self.ended_pending {
            return fail(format!(
                "{ended} end records pending, counted {}",
                self.ended_pending
            ));
        }
        for (lsn, pending) in &self.pending {
            let phase = |id: &TxnId| self.txns.get(id).map(|txn| txn.phase);
            match pending {
                Pending::Decided(id) => {
                    let logging =
                        matches!(phase(id), Some(Phase::Logging { lsn: at, .. }) if at == *lsn);
                    if !logging {
                        return fail(format!(
                            "decided record {lsn:?} pending for txn {id} not logging"
                        ));
                    }
                }
                Pending::AbortAdopted(id) => {
                    if phase(id) != Some(Phase::LoggingAbort { lsn: *lsn }) {
                        return fail(format!(
                            "abort record {lsn:?} pending for txn {id} not logging it"
                        ));
                    }
                }
                // The transaction is forgotten by then; counted above.
                Pending::Ended(_) => {}
            }
        }
        Ok(())
    }
}
