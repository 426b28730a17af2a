//! An operator's heuristic decision on a txn in doubt at this running participant
//! (`participant resolve --addr`): the same `Record::Heuristic` the offline
//! `participant resolve --db` writes, durable before anyone hears of it.
//!
//! The txn leaves `active` at once (no timer, no termination round, no query acts on it
//! again) but keeps its locks until the record is durable: a heuristic commit's redo
//! images are applied in that same SQLite transaction, and no other txn may read or write
//! its keys before. Until then every request about it is refused (a refusal claims
//! nothing; its sender asks again). Once durable, the locks go, the operator hears
//! `Resolved`, and the core forgets the txn: every later request is answered from the
//! stored `heuristic_*` state, exactly as after an offline resolve and a restart (the
//! coordinator's Decide gets an Ack with the heuristic outcome; it records a hazard if
//! that contradicts its decision).

use tracing::{error, info, warn};
use wire::{ClientResponse, Decision, FromParticipant, NodeId, RequestId, TxnId, TxnState};

use super::state::{End, set_timer};
use super::{Input, LogEntry, Lsn, Output, Participant, Record, ReplyTo, StoredState, StoredTxn};

/// Resolves being made durable at once; past it a resolve is refused (retry): an operator
/// resolves one txn at a time, so this only bounds a script gone wrong.
pub const RESOLVING_MAX: usize = 64;

/// Operators waiting on one resolve's record (repeats of the same command).
pub const RESOLVE_WAITERS_MAX: usize = 8;

/// What a txn decided by hand keeps until its `Heuristic` record is durable.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(super) struct Resolving {
    pub(super) lsn: Lsn,
    pub(super) decision: Decision,
    pub(super) coordinator: NodeId,
    /// Its log entries: their keys are the locks still held.
    pub(super) entries: Vec<LogEntry>,
    /// The operators' requests, answered once the record is durable.
    pub(super) waiters: Vec<(ReplyTo, RequestId)>,
}

/// The reason a heuristic decision records (the offline and the live resolve alike).
pub fn heuristic_reason(decision: Decision, note: &str) -> String {
    let word = heuristic_word(decision);
    match note.trim() {
        "" => format!("heuristic {word} by hand (participant resolve)"),
        note => format!("heuristic {word} by hand (participant resolve): {note}"),
    }
}

fn heuristic_word(decision: Decision) -> &'static str {
    match decision {
        Decision::Commit => "commit",
        Decision::Abort => "abort",
    }
}

fn heuristic_state(decision: Decision) -> StoredState {
    match decision {
        Decision::Commit => StoredState::HeuristicCommit,
        Decision::Abort => StoredState::HeuristicAbort,
    }
}

impl Participant {
    pub(super) fn on_resolve(
        &mut self,
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        decision: Decision,
        note: &str,
        stored: Option<StoredTxn>,
    ) {
        let state = heuristic_state(decision).as_str();
        if let Some(resolving) = self.resolving.get_mut(&txn) {
            if resolving.decision != decision {
                let first = heuristic_state(resolving.decision).as_str();
                return self.refuse_resolve(
                    from,
                    id,
                    txn,
                    format!(
                        "is being resolved by hand as {first}: the opposite decision is refused"
                    ),
                );
            }
            if resolving.waiters.len() >= RESOLVE_WAITERS_MAX {
                return self.refuse_resolve(
                    from,
                    id,
                    txn,
                    "has too many resolves waiting; try again".to_string(),
                );
            }
            resolving.waiters.push((from, id));
            return;
        }
        if let Some(active) = self.active.get(&txn) {
            let pending = self.pending.values().any(|(pending, _)| *pending == txn);
            let problem = match (active.durable, active.target) {
                (None, _) => Some("has not voted yet: not in doubt (its coordinator decides)"),
                (Some(_), TxnState::Committed) => {
                    Some("is committing (its decision arrived): not in doubt")
                }
                (Some(durable), target) if durable != target || pending => {
                    Some("has a record being written; try again in a moment")
                }
                (Some(_), _) if self.resolving.len() >= RESOLVING_MAX => {
                    Some("cannot be resolved now: too many resolves in flight; try again")
                }
                (Some(_), _) => None,
            };
            if let Some(problem) = problem {
                return self.refuse_resolve(from, id, txn, problem.to_string());
            }
            let Some(mut active) = self.active.remove(&txn) else {
                return;
            };
            set_timer(&mut self.timers, txn, &mut active.timer_at, None);
            // Nothing is pending, so nobody waits for a record; answered in case.
            for waiter in active.waiters {
                self.outputs.push_back(Output::Reply {
                    to: waiter.to,
                    id: waiter.id,
                    msg: FromParticipant::Refused {
                        reason: format!("txn {txn} was resolved by hand meanwhile; ask again"),
                    },
                });
            }
            warn!(%txn, decision = state, operator = %from.peer, "HEURISTIC decision by hand; its locks go once it is durable");
            let reason = heuristic_reason(decision, note);
            let lsn = self.persist(Record::Heuristic {
                txn,
                decision,
                reason,
            });
            let resolving = Resolving {
                lsn,
                decision,
                coordinator: active.coordinator,
                entries: active.entries,
                waiters: vec![(from, id)],
            };
            self.resolving.insert(txn, resolving);
            return;
        }
        if let Some(done) = self.done.get(&txn) {
            let problem = match done.end {
                End::Committed => "is committed: not in doubt",
                End::Aborted { .. } => "is aborted: not in doubt",
                End::ReadOnly => {
                    "was voted read-only here: not in doubt (a read-only vote is no party to the outcome)"
                }
            };
            return self.refuse_resolve(from, id, txn, problem.to_string());
        }
        let Some(stored) = stored else {
            return self.refuse_resolve(
                from,
                id,
                txn,
                "is unknown here (never voted on, or decided and pruned): nothing to resolve"
                    .to_string(),
            );
        };
        match stored.state {
            // Resolved before (live, or offline before a restart): the same answer again.
            done if done == heuristic_state(decision) => {
                let msg = ClientResponse::Resolved {
                    txn,
                    decision,
                    coordinator: stored.coordinator,
                };
                self.outputs
                    .push_back(Output::ClientReply { to: from, id, msg });
            }
            done @ (StoredState::HeuristicCommit | StoredState::HeuristicAbort) => {
                let problem = format!(
                    "was resolved by hand as {}: the opposite decision is refused",
                    done.as_str()
                );
                self.refuse_resolve(from, id, txn, problem);
            }
            done @ (StoredState::Committed | StoredState::Aborted | StoredState::ReadOnly) => {
                let problem = format!("is {}: not in doubt", done.as_str());
                self.refuse_resolve(from, id, txn, problem);
            }
            unexpected @ (StoredState::Prepared
            | StoredState::Waiting
            | StoredState::PreCommitted) => {
                error!(%txn, state = unexpected.as_str(), "stored in doubt but unknown to the core");
                let problem = "is in an unexpected state; try again".to_string();
                self.refuse_resolve(from, id, txn, problem);
            }
        }
    }

    fn refuse_resolve(&mut self, to: ReplyTo, id: RequestId, txn: TxnId, problem: String) {
        let reason = format!("txn {txn} {problem}");
        info!(%txn, operator = %to.peer, %reason, "resolve refused");
        let msg = ClientResponse::Refused { reason };
        self.outputs.push_back(Output::ClientReply { to, id, msg });
    }

    /// The `Heuristic` record at `lsn` of `txn` is durable: locks released, the operators
    /// answered, the txn forgotten (the store answers for it from now on). False if `txn`
    /// is not being resolved at `lsn`.
    pub(super) fn resolved(&mut self, txn: TxnId, lsn: Lsn) -> bool {
        if self.resolving.get(&txn).map(|resolving| resolving.lsn) != Some(lsn) {
            return false;
        }
        let Some(resolving) = self.resolving.remove(&txn) else {
            return false;
        };
        self.release_locks(txn, &resolving.entries);
        info!(%txn, decision = heuristic_state(resolving.decision).as_str(), "resolved by hand; locks released");
        for (to, id) in resolving.waiters {
            let msg = ClientResponse::Resolved {
                txn,
                decision: resolving.decision,
                coordinator: resolving.coordinator,
            };
            self.outputs.push_back(Output::ClientReply { to, id, msg });
        }
        true
    }

    /// A request about a txn whose heuristic record is not yet durable is refused (what
    /// it would be told is not durable yet); true if `input` was such a request. Answers
    /// to this node's own queries about it are dropped by their handlers (it is not
    /// active any more).
    pub(super) fn refuse_while_resolving(&mut self, input: &Input) -> bool {
        let (from, id, txn) = match input {
            Input::Prepare { from, id, txn, .. }
            | Input::PreCommit { from, id, txn, .. }
            | Input::Decide { from, id, txn, .. }
            | Input::StateQuery { from, id, txn, .. } => (*from, *id, *txn),
            Input::Release { .. }
            | Input::Resolve { .. }
            | Input::DecisionAnswer { .. }
            | Input::StateReply { .. }
            | Input::Ack { .. }
            | Input::Persisted { .. }
            | Input::PeerUp { .. }
            | Input::PeerDown { .. }
            | Input::Recover { .. } => return false,
        };
        if !self.resolving.contains_key(&txn) {
            return false;
        }
        let reason = format!("txn {txn} is being resolved by hand here; ask again");
        self.reply(from, id, FromParticipant::Refused { reason });
        true
    }
}
