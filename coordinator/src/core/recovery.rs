//! Restart: `Input::Recovered` brings back the log's commits without an end. 2PC re-sends
//! the commit; 3PC is a recovered site and asks the participants' states (`StateQuery`)
//! until it can adopt their outcome, deciding itself only when no termination round can.
//! `unfinished` is what the store recovers from a list of records.

use std::collections::BTreeMap;

use wire::{Decision, Protocol, ToParticipant, TxnId, TxnState};

use super::Coordinator;
use super::io::{Millis, Output, Record, RecoveredTxn};
use super::txn::{Part, PartState, Phase, Txn, decide};

/// What `Store::recover` returns for a log that holds `records` (in log order): every
/// `Decided{Commit}` with neither `Ended` nor `AbortAdopted` after it, by transaction id.
/// For the simulator, which keeps a node's durable records and restarts it from them.
pub fn unfinished(records: &[Record]) -> Vec<RecoveredTxn> {
    let mut open: BTreeMap<TxnId, RecoveredTxn> = BTreeMap::new();
    for record in records {
        match record {
            Record::Decided {
                txn,
                protocol,
                decision: Decision::Commit,
                participants,
            } => {
                open.insert(
                    *txn,
                    RecoveredTxn {
                        txn: *txn,
                        protocol: *protocol,
                        participants: participants.clone(),
                    },
                );
            }
            // The core logs only commits (presumed abort): an abort record opens nothing.
            Record::Decided {
                decision: Decision::Abort,
                ..
            } => {}
            Record::Ended { txn } | Record::AbortAdopted { txn, .. } => {
                open.remove(txn);
            }
            // For the operator only: recovery re-sends by the decision rows alone.
            Record::Hazard { .. } => {}
        }
    }
    open.into_values().collect()
}

impl Coordinator {
    pub(super) fn on_recovered(&mut self, now: Millis, recovered: Vec<RecoveredTxn>) {
        let resend_at = now.plus(self.config.decide_resend_ms);
        for RecoveredTxn {
            txn: id,
            protocol,
            participants,
        } in recovered
        {
            if self.txns.contains_key(&id) {
                continue;
            }
            // 2PC re-sends the logged commit; 3PC first asks whether the participants'
            // termination protocol aborted while the coordinator was down.
            let (state, phase, msg) = match protocol {
                Protocol::TwoPhase => (
                    PartState::AwaitingAck,
                    Phase::Committing {
                        client_due: None,
                        resend_at,
                    },
                    decide(id, Decision::Commit, None),
                ),
                Protocol::ThreePhase => (
                    PartState::AwaitingState,
                    Phase::Resolving { resend_at },
                    ToParticipant::StateQuery { txn: id },
                ),
            };
            let parts: Vec<Part> = participants
                .into_iter()
                .map(|node| Part {
                    node,
                    ops: Vec::new(),
                    state,
                    reads: Vec::new(),
                })
                .collect();
            for part in &parts {
                if self.up.contains(&part.node) {
                    self.outputs.push_back(Output::Send {
                        to: part.node,
                        msg: msg.clone(),
                    });
                }
            }
            self.txns.insert(
                id,
                Txn {
                    protocol,
                    timeout_ms: 0,
                    client: None,
                    parts,
                    phase,
                    wake_at: None,
                    abort_reason: None,
                    precommit_late: false,
                    released: true,
                },
            );
            self.arm(id, Some(resend_at));
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
    pub(super) fn finish_resolving(&mut self, now: Millis, id: TxnId) {
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

    /// Resolving, at the resend time: StateQuery again to every up participant that has
    /// not answered or whose answer may still change (`asks_state`).
    pub(super) fn on_resolving_due(&mut self, now: Millis, id: TxnId, mut resend_at: Millis) {
        let resend_ms = self.config.decide_resend_ms;
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
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
}

/// 3PC recovery: whether a participant in `state` is asked (again) for its state: until
/// it answered, and while its answer came from an operational participant, which may
/// still decide in a termination round.
pub(super) fn asks_state(state: PartState) -> bool {
    matches!(
        state,
        PartState::AwaitingState
            | PartState::Reported {
                recovered: false,
                ..
            }
    )
}

/// A 3PC recovery report of an undecided state (the only states kept as reports).
pub(super) fn is_undecided_report(state: PartState) -> bool {
    matches!(
        state,
        PartState::Reported {
            state: TxnState::Waiting | TxnState::PreCommitted,
            ..
        }
    )
}
