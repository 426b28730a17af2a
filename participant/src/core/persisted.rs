//! A record made durable: the replies that waited for it go out, the txn's next timer
//! starts, and a committed or finished txn is remembered within its bound.

use tracing::{error, info};
use wire::{FromParticipant, TxnId, TxnState};

use super::answer::{active_answer, done_answer};
use super::state::{Done, End, Waiter, set_timer};
use super::{Lsn, Millis, Output, Participant};

impl Participant {
    pub(super) fn on_persisted(&mut self, now: Millis, lsn: Lsn) {
        let Some((txn, brings)) = self.pending.remove(&lsn) else {
            error!(%lsn, "persisted an lsn that is not pending");
            return;
        };
        // The vote's, PreCommit's or commit's record moves an active txn on; an `Aborted` or
        // `ReadOnly` record (or one of a txn aborted meanwhile) finishes a done one.
        let advances = match brings {
            Some(
                state @ (TxnState::Prepared
                | TxnState::Waiting
                | TxnState::PreCommitted
                | TxnState::Committed),
            ) => self.active.contains_key(&txn).then_some(state),
            Some(TxnState::Aborted) | None => None,
        };
        match advances {
            Some(state) => self.advance(now, txn, state),
            None => {
                if let Some(done) = self.done.get_mut(&txn) {
                    if done.pending == Some(lsn) {
                        done.pending = None;
                        let waiters = std::mem::take(&mut done.waiters);
                        let answers: Vec<(Waiter, FromParticipant)> = waiters
                            .into_iter()
                            .map(|waiter| (waiter, done_answer(txn, done, waiter.wants)))
                            .collect();
                        for (waiter, msg) in answers {
                            self.reply(waiter.to, waiter.id, msg);
                        }
                        self.finish(txn);
                    }
                    // Otherwise the vote's (or PreCommit's) record of a txn aborted while it
                    // was being persisted: its `Aborted` record follows.
                } else if !self.resolved(txn, lsn) {
                    error!(%txn, %lsn, "persisted a record of a forgotten txn");
                }
            }
        }
        // A termination leader's decision goes out once its own record is durable.
        for (to, msg) in self.held.remove(&lsn).unwrap_or_default() {
            if self.peers_up.contains(&to) {
                self.outputs.push_back(Output::Send {
                    to,
                    msg: msg.into(),
                });
            }
        }
    }

    /// The txn's record moving it to `state` is durable: answer whoever waited for it, and
    /// start the timer of the new state.
    pub(super) fn advance(&mut self, now: Millis, txn: TxnId, state: TxnState) {
        let Some(active) = self.active.get_mut(&txn) else {
            return;
        };
        active.durable = Some(state);
        let mut waiting = Vec::new();
        let mut answers = Vec::new();
        for waiter in std::mem::take(&mut active.waiters) {
            match active_answer(txn, active, waiter.wants, state) {
                Some(msg) => answers.push((waiter, msg)),
                None => waiting.push(waiter),
            }
        }
        active.waiters = waiting;
        match state {
            TxnState::Prepared => {
                active.backoff_ms = self.config.decision_query_backoff_min_ms;
                let at = now.plus(active.backoff_ms);
                set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
            }
            TxnState::Waiting => {
                let at = now.plus(active.waiting_timeout_ms);
                set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
            }
            TxnState::PreCommitted => {
                // A termination round in progress keeps its own deadline.
                if active.target == TxnState::PreCommitted && active.termination.is_none() {
                    let at = now.plus(self.config.precommitted_timeout_ms);
                    set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
                }
            }
            TxnState::Committed | TxnState::Aborted => {}
        }
        for (waiter, msg) in answers {
            self.reply(waiter.to, waiter.id, msg);
        }
        if state == TxnState::Committed
            && let Some(active) = self.active.remove(&txn)
        {
            self.release_locks(txn, &active.entries);
            info!(%txn, "committed");
            self.done.insert(
                txn,
                Done {
                    protocol: active.protocol,
                    end: End::Committed,
                    reads: active.reads,
                    pending: None,
                    waiters: Vec::new(),
                },
            );
            self.finish(txn);
        }
    }

    /// `txn` is done and its record durable: remember it, forgetting the oldest beyond the
    /// bound (the store still answers for them).
    pub(super) fn finish(&mut self, txn: TxnId) {
        self.finished.push_back(txn);
        while self.finished.len() > self.config.finished_txns_max {
            if let Some(oldest) = self.finished.pop_front() {
                self.done.remove(&oldest);
            }
        }
    }
}
