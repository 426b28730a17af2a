//! Questions about a txn's outcome: a peer's (or a recovering coordinator's)
//! `StateQuery`, and this node's own asking while in doubt (`DecisionQuery` to the
//! coordinator, `StateQuery` to its peers) with the coordinator's answers.

use tracing::{debug, error, info, warn};
use wire::{
    Answer, FromParticipant, NodeId, Protocol, RequestId, ToCoordinator, ToParticipant, TxnId,
    TxnState,
};

use super::answer::{read_only_state, state_msg};
use super::state::{Done, End, Waiter, Wants, push_waiter, set_timer};
use super::{
    Millis, Participant, Record, ReplyTo, StoredState, StoredTxn, asked_before_voting_reason,
};

impl Participant {
    /// Tells a peer (or a recovering coordinator) the txn's durable state. A txn this node
    /// has not voted YES on is aborted first, durably, so it can never vote YES later.
    pub(super) fn on_state_query(
        &mut self,
        now: Millis,
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        stored: Option<StoredTxn>,
    ) {
        if let Some(active) = self.active.get_mut(&txn) {
            match active.durable {
                None => {
                    let reason = asked_before_voting_reason(from.peer);
                    self.abort_active(txn, &reason);
                    self.reply_aborted(txn, from, id, Wants::State);
                }
                Some(state) if state == active.target => {
                    let msg = state_msg(txn, state, active.recovered);
                    self.reply(from, id, msg);
                    self.heard_from_leader(now, txn, from.peer);
                }
                // A record is pending: tell the state it makes durable.
                Some(_) => {
                    push_waiter(
                        &mut active.waiters,
                        &mut self.outputs,
                        txn,
                        Waiter {
                            to: from,
                            id,
                            wants: Wants::State,
                        },
                    );
                    self.heard_from_leader(now, txn, from.peer);
                }
            }
            return;
        }
        if let Some(done) = self.done.get_mut(&txn) {
            match done.end {
                End::Committed => self.reply(from, id, state_msg(txn, TxnState::Committed, false)),
                End::Aborted { .. } => self.reply_aborted(txn, from, id, Wants::State),
                End::ReadOnly if done.pending.is_some() => {
                    push_waiter(
                        &mut done.waiters,
                        &mut self.outputs,
                        txn,
                        Waiter {
                            to: from,
                            id,
                            wants: Wants::State,
                        },
                    );
                }
                End::ReadOnly => self.reply(from, id, read_only_state(txn)),
            }
            return;
        }
        let state = match stored.map(|stored| stored.state) {
            Some(StoredState::Committed | StoredState::HeuristicCommit) => TxnState::Committed,
            Some(StoredState::Aborted | StoredState::HeuristicAbort) => TxnState::Aborted,
            Some(StoredState::ReadOnly) => return self.reply(from, id, read_only_state(txn)),
            Some(
                state @ (StoredState::Prepared | StoredState::Waiting | StoredState::PreCommitted),
            ) => {
                let msg = self.unexpected_stored(txn, state);
                return self.reply(from, id, msg);
            }
            None => {
                let reason = asked_before_voting_reason(from.peer);
                info!(%txn, peer = %from.peer, "asked about a txn never voted on: aborting it");
                let lsn = self.persist(Record::Aborted {
                    txn,
                    protocol: Protocol::ThreePhase,
                    coordinator: NodeId(0),
                    reason: reason.clone(),
                });
                self.done.insert(
                    txn,
                    Done {
                        protocol: Protocol::ThreePhase,
                        end: End::Aborted { reason },
                        reads: Vec::new(),
                        pending: Some(lsn),
                        waiters: vec![Waiter {
                            to: from,
                            id,
                            wants: Wants::State,
                        }],
                    },
                );
                return;
            }
        };
        self.reply(from, id, state_msg(txn, state, false));
    }

    /// Recovery hands the core every in-doubt txn, so the store cannot hold one the core
    /// does not know: a shell bug, not a peer's.
    pub(super) fn unexpected_stored(&self, txn: TxnId, state: StoredState) -> FromParticipant {
        error!(%txn, state = state.as_str(), "stored in doubt but unknown to the core");
        FromParticipant::Refused {
            reason: format!("txn {txn} is in an unexpected state; try again"),
        }
    }

    pub(super) fn on_answer(&mut self, from: NodeId, txn: TxnId, answer: Answer) {
        let coordinator = match self.active.get(&txn) {
            Some(active) if active.is_undecided() => active.coordinator,
            _ => {
                debug!(%txn, peer = %from, ?answer, "answer for a txn not in doubt ignored");
                return;
            }
        };
        if from != coordinator {
            warn!(%txn, peer = %from, %coordinator, "decision answer from a node that is not the coordinator ignored");
            return;
        }
        match answer {
            Answer::Commit => {
                self.commit(txn, None);
            }
            Answer::Abort => {
                self.abort_active(txn, "the coordinator answered abort");
            }
            Answer::Undecided => debug!(%txn, peer = %from, "coordinator undecided"),
        }
    }

    /// 2PC in doubt: ask again, backing off: the coordinator while it is up, else every
    /// live peer (see [`Participant::ask_peers`]).
    pub(super) fn ask_again(&mut self, now: Millis, txn: TxnId) {
        let Some(active) = self.active.get_mut(&txn) else {
            return;
        };
        active.backoff_ms = active
            .backoff_ms
            .saturating_mul(2)
            .min(self.config.decision_query_backoff_max_ms);
        let at = now.plus(active.backoff_ms);
        set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
        let coordinator = active.coordinator;
        self.query(coordinator, txn);
        self.ask_peers(txn, None);
    }

    /// 2PC in doubt: asks the txn's live peers (or just `only`) for their state, if the
    /// coordinator is down. A live coordinator decides (it has a vote timeout and presumes
    /// abort), so asking peers then gains nothing; and it would race the coordinator's own
    /// Prepares, which may still be queued for a peer: asked first, that peer aborts a txn
    /// the coordinator could have committed.
    pub(super) fn ask_peers(&mut self, txn: TxnId, only: Option<NodeId>) {
        let Some(active) = self.active.get(&txn) else {
            return;
        };
        if self.peers_up.contains(&active.coordinator) {
            return;
        }
        let peers: Vec<NodeId> = active
            .peers
            .iter()
            .copied()
            .filter(|peer| only.is_none_or(|only| only == *peer))
            .collect();
        for peer in peers {
            self.send(peer, ToParticipant::StateQuery { txn });
        }
    }

    pub(super) fn query(&mut self, coordinator: NodeId, txn: TxnId) {
        if self.peers_up.contains(&coordinator) {
            debug!(%txn, peer = %coordinator, "asking for the decision");
            self.send(coordinator, ToCoordinator::DecisionQuery { txn });
        }
    }
}
