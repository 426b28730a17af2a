//! The participant's 2PC state machine, sans-IO: votes, locks, in-doubt queries, outcomes.
//!
//! The core owns no data and does no IO. The shell feeds it one [`Input`] at a time (with
//! the committed values and stored state it needs, read from the store beforehand), then
//! drains [`Output`]s: records to make durable, replies, and requests to send. Every reply
//! that depends on a record (a YES vote on `Prepared`, a commit Ack on `Committed`) is
//! held until the shell reports that record durable with [`Input::Persisted`].
//!
//! Locking is per key and no-wait: a key held by another transaction makes the vote NO at
//! once, so there are no deadlocks and no unbounded waits. Locks are taken at the vote and
//! released when the outcome is applied (presumed abort: an abort needs no durable record
//! before the locks go, because a participant that loses it finds the transaction in doubt
//! on restart and the coordinator answers abort).

mod config;
mod eval;
mod record;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use tracing::{debug, error, info, warn};
use wire::{
    Answer, Decision, Msg, NodeId, Op, Outcome, Protocol, Read, RequestId, TxnId, Value, Vote,
};

pub use config::{Config, ConfigError, DECISION_QUERY_BACKOFF_LIMIT_MS, OPS_PER_TXN_LIMIT};
pub use record::{LogEntry, Lsn, OpKind, Record, StoredState, StoredTxn};

/// Requests for the same transaction waiting on one record (duplicates from retries);
/// past it the oldest waiter is dropped (its sender retries or has gone).
pub const WAITERS_PER_TXN_MAX: usize = 16;

/// A point in time in milliseconds, from whatever clock the shell uses.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Millis(pub u64);

impl Millis {
    pub fn plus_ms(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
}

/// Where a reply goes: the peer and the connection (channel epoch) the request came on,
/// since request ids are per connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ReplyTo {
    pub peer: NodeId,
    pub conn: u64,
}

#[derive(Debug)]
pub enum Input {
    /// A coordinator asks for a vote. `values` holds the committed value of every key the
    /// ops name (`None`: absent); `stored` is the store's record of `txn`, read when
    /// [`Participant::knows`] was false.
    Prepare {
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        protocol: Protocol,
        ops: Vec<Op>,
        values: BTreeMap<String, Option<Value>>,
        stored: Option<StoredTxn>,
    },
    /// A coordinator's decision. `stored` as for `Prepare`.
    Decide {
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        decision: Decision,
        stored: Option<StoredTxn>,
    },
    /// The answer to a `DecisionQuery` this core sent.
    DecisionAnswer {
        from: NodeId,
        txn: TxnId,
        answer: Answer,
    },
    /// The record with this lsn is durable (reported in lsn order).
    Persisted {
        lsn: Lsn,
    },
    PeerUp {
        peer: NodeId,
    },
    PeerDown {
        peer: NodeId,
    },
    /// At startup: every transaction the store holds in doubt, with its log entries.
    Recover {
        txns: Vec<StoredTxn>,
    },
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Output {
    /// Make `record` durable, then report `Persisted { lsn }`. Records must become durable
    /// in lsn order.
    Persist { lsn: Lsn, record: Record },
    /// Respond to request `id` on the connection `to`.
    Reply {
        to: ReplyTo,
        id: RequestId,
        msg: Msg,
    },
    /// Send `msg` as a new request to `to` (only emitted while `to` is up).
    Send { to: NodeId, msg: Msg },
}

/// A transaction voted YES with no outcome yet, as status reports show it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InDoubtTxn {
    pub txn: TxnId,
    pub coordinator: NodeId,
    pub age_ms: u64,
}

/// How many transactions the core holds in each state.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TxnCounts {
    /// Voted YES, `Prepared` not yet durable.
    pub preparing: usize,
    pub in_doubt: usize,
    /// `Committed` not yet durable.
    pub committing: usize,
    /// Remembered outcomes (older ones live only in the store).
    pub committed: usize,
    pub aborted: usize,
}

/// A transaction holding locks.
#[derive(Debug)]
struct Active {
    protocol: Protocol,
    coordinator: NodeId,
    /// One per op; their keys are the locks held.
    entries: Vec<LogEntry>,
    reads: Vec<Read>,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    /// `Prepared` is being persisted; the YES votes wait for it.
    Preparing {
        lsn: Lsn,
        voters: Vec<(ReplyTo, RequestId)>,
    },
    /// Voted YES: must not decide alone; asks the coordinator at `query_at`.
    InDoubt {
        since: Millis,
        query_at: Millis,
        /// The wait that ends at `query_at`; the next one is twice as long, up to the max.
        backoff_ms: u64,
    },
    /// `Committed` is being persisted; the Acks wait for it.
    Committing {
        lsn: Lsn,
        ackers: Vec<(ReplyTo, RequestId)>,
    },
}

/// A finished transaction, remembered to answer duplicates.
#[derive(Debug)]
struct Done {
    aborted: Option<String>,
    /// The reads of a committed transaction (a repeated Prepare repeats its vote).
    reads: Vec<Read>,
    /// The `Aborted` record not yet durable (a commit is only `Done` once durable).
    pending: Option<Lsn>,
}

#[derive(Debug)]
pub struct Participant {
    config: Config,
    active: BTreeMap<TxnId, Active>,
    done: BTreeMap<TxnId, Done>,
    /// `done` entries whose record is durable, oldest first: evicted past `finished_txns_max`.
    finished: VecDeque<TxnId>,
    locks: HashMap<String, TxnId>,
    /// One decision-query timer per in-doubt transaction.
    timers: BTreeSet<(Millis, TxnId)>,
    /// Records emitted and not yet reported durable.
    pending: BTreeMap<Lsn, TxnId>,
    next_lsn: Lsn,
    peers_up: BTreeSet<NodeId>,
    outputs: VecDeque<Output>,
}

impl Participant {
    pub fn new(config: Config) -> Result<Participant, ConfigError> {
        config.validate()?;
        Ok(Participant {
            config,
            active: BTreeMap::new(),
            done: BTreeMap::new(),
            finished: VecDeque::new(),
            locks: HashMap::new(),
            timers: BTreeSet::new(),
            pending: BTreeMap::new(),
            next_lsn: Lsn(1),
            peers_up: BTreeSet::new(),
            outputs: VecDeque::new(),
        })
    }

    pub fn handle(&mut self, now: Millis, input: Input) {
        match input {
            Input::Prepare {
                from,
                id,
                txn,
                protocol,
                ops,
                values,
                stored,
            } => {
                if !self.repeat_vote(from, id, txn, stored) {
                    self.vote(from, id, txn, protocol, &ops, &values);
                }
            }
            Input::Decide {
                from,
                id,
                txn,
                decision,
                stored,
            } => self.on_decide(from, id, txn, decision, stored),
            Input::DecisionAnswer { from, txn, answer } => self.on_answer(from, txn, answer),
            Input::Persisted { lsn } => self.on_persisted(now, lsn),
            Input::PeerUp { peer } => self.on_peer_up(now, peer),
            Input::PeerDown { peer } => {
                self.peers_up.remove(&peer);
            }
            Input::Recover { txns } => self.on_recover(now, txns),
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Participant::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Queries the coordinator about every in-doubt transaction whose time has come.
    pub fn handle_timeout(&mut self, now: Millis) {
        while let Some(&(at, txn)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(active) = self.active.get_mut(&txn) else {
                continue;
            };
            let Phase::InDoubt {
                query_at,
                backoff_ms,
                ..
            } = &mut active.phase
            else {
                continue;
            };
            *backoff_ms = backoff_ms
                .saturating_mul(2)
                .min(self.config.decision_query_backoff_max_ms);
            *query_at = now.plus_ms(*backoff_ms);
            self.timers.insert((*query_at, txn));
            let coordinator = active.coordinator;
            self.query(coordinator, txn);
        }
    }

    /// Whether the core remembers `txn`; if not, the shell passes the store's record.
    pub fn knows(&self, txn: TxnId) -> bool {
        self.active.contains_key(&txn) || self.done.contains_key(&txn)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn locks_held(&self) -> usize {
        self.locks.len()
    }

    pub fn counts(&self) -> TxnCounts {
        let mut counts = TxnCounts::default();
        for active in self.active.values() {
            match active.phase {
                Phase::Preparing { .. } => counts.preparing += 1,
                Phase::InDoubt { .. } => counts.in_doubt += 1,
                Phase::Committing { .. } => counts.committing += 1,
            }
        }
        for done in self.done.values() {
            match done.aborted {
                None => counts.committed += 1,
                Some(_) => counts.aborted += 1,
            }
        }
        counts
    }

    pub fn in_doubt(&self, now: Millis) -> Vec<InDoubtTxn> {
        self.active
            .iter()
            .filter_map(|(txn, active)| match active.phase {
                Phase::InDoubt { since, .. } => Some(InDoubtTxn {
                    txn: *txn,
                    coordinator: active.coordinator,
                    age_ms: now.0.saturating_sub(since.0),
                }),
                _ => None,
            })
            .collect()
    }

    pub fn peers_up(&self) -> Vec<NodeId> {
        self.peers_up.iter().copied().collect()
    }

    /// Answers a Prepare for a txn voted on before (in memory or in the store) with the
    /// same vote; false if the txn is new.
    fn repeat_vote(
        &mut self,
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        stored: Option<StoredTxn>,
    ) -> bool {
        if let Some(active) = self.active.get_mut(&txn) {
            match &mut active.phase {
                Phase::Preparing { voters, .. } => push_waiter(voters, txn, from, id),
                Phase::InDoubt { .. } | Phase::Committing { .. } => {
                    let reads = active.reads.clone();
                    self.reply(from, id, vote_msg(txn, Vote::Yes, reads));
                }
            }
            return true;
        }
        if let Some(done) = self.done.get(&txn) {
            let msg = match &done.aborted {
                None => vote_msg(txn, Vote::Yes, done.reads.clone()),
                Some(reason) => vote_msg(txn, no(reason), Vec::new()),
            };
            self.reply(from, id, msg);
            return true;
        }
        let Some(stored) = stored else {
            return false;
        };
        let msg = match stored.state {
            StoredState::Aborted | StoredState::HeuristicAbort => {
                let reason = stored.reason.as_deref().unwrap_or("aborted");
                vote_msg(txn, no(reason), Vec::new())
            }
            StoredState::Prepared
            | StoredState::Waiting
            | StoredState::PreCommitted
            | StoredState::Committed
            | StoredState::HeuristicCommit => vote_msg(txn, Vote::Yes, reads_of(&stored.entries)),
        };
        self.reply(from, id, msg);
        true
    }

    /// Votes on a new txn: NO (recorded, sent at once), ReadOnly (nothing kept), or YES
    /// (locks taken, `Prepared` persisted, the vote held until it is durable).
    fn vote(
        &mut self,
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        protocol: Protocol,
        ops: &[Op],
        values: &BTreeMap<String, Option<Value>>,
    ) {
        let coordinator = from.peer;
        match self.check_prepare(ops, values) {
            Err(reason) => {
                info!(%txn, peer = %coordinator, %reason, "voting no");
                let lsn = self.persist(Record::Aborted {
                    txn,
                    protocol,
                    coordinator,
                    reason: reason.clone(),
                });
                self.done.insert(
                    txn,
                    Done {
                        aborted: Some(reason.clone()),
                        reads: Vec::new(),
                        pending: Some(lsn),
                    },
                );
                self.reply(from, id, vote_msg(txn, Vote::No { reason }, Vec::new()));
            }
            Ok(evaluated) if evaluated.is_read_only() => {
                debug!(%txn, peer = %coordinator, "voting read-only");
                self.reply(from, id, vote_msg(txn, Vote::ReadOnly, evaluated.reads));
            }
            Ok(evaluated) => {
                debug!(%txn, peer = %coordinator, "prepared; vote waits for the record");
                for entry in &evaluated.entries {
                    self.locks.insert(entry.key.clone(), txn);
                }
                let lsn = self.persist(Record::Prepared {
                    txn,
                    protocol,
                    coordinator,
                    entries: evaluated.entries.clone(),
                });
                self.active.insert(
                    txn,
                    Active {
                        protocol,
                        coordinator,
                        entries: evaluated.entries,
                        reads: evaluated.reads,
                        phase: Phase::Preparing {
                            lsn,
                            voters: vec![(from, id)],
                        },
                    },
                );
            }
        }
    }

    /// The limits, the lock table, then the operations themselves: the reason for NO, or
    /// what a YES (or ReadOnly) vote would log.
    fn check_prepare(
        &self,
        ops: &[Op],
        values: &BTreeMap<String, Option<Value>>,
    ) -> Result<eval::Evaluated, String> {
        let config = &self.config;
        if ops.len() > config.ops_per_txn_max {
            return Err(format!(
                "txn has {} ops for this participant; the limit is {}",
                ops.len(),
                config.ops_per_txn_max
            ));
        }
        for op in ops {
            let key = op.key();
            if key.is_empty() {
                return Err("empty key".to_string());
            }
            if key.len() > config.key_bytes_max {
                return Err(format!(
                    "key of {} bytes exceeds the limit of {} bytes",
                    key.len(),
                    config.key_bytes_max
                ));
            }
            if let Op::Put {
                value: Value::Text(text),
                ..
            } = op
                && text.len() > config.value_bytes_max
            {
                return Err(format!(
                    "value of {} bytes for key {key:?} exceeds the limit of {} bytes",
                    text.len(),
                    config.value_bytes_max
                ));
            }
        }
        if self.active.len() >= config.active_txns_max {
            return Err(format!(
                "participant overloaded: {} active txns (limit {})",
                self.active.len(),
                config.active_txns_max
            ));
        }
        for op in ops {
            if let Some(holder) = self.locks.get(op.key()) {
                return Err(format!(
                    "lock conflict on key {:?} held by txn {holder}",
                    op.key()
                ));
            }
        }
        eval::evaluate(ops, values)
    }

    fn on_decide(
        &mut self,
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        decision: Decision,
        stored: Option<StoredTxn>,
    ) {
        if let Some(active) = self.active.get_mut(&txn) {
            match (&mut active.phase, decision) {
                (Phase::Preparing { .. }, Decision::Abort) => {
                    self.abort_active(txn, "aborted by the coordinator before the vote");
                    self.reply(from, id, ack_msg(txn, Outcome::Aborted));
                }
                (Phase::Preparing { .. }, Decision::Commit) => {
                    error!(%txn, peer = %from.peer, "commit before this participant voted");
                    let reason = format!("commit for txn {txn} before this participant voted");
                    self.reply(from, id, Msg::Error { reason });
                }
                (Phase::InDoubt { .. }, Decision::Commit) => self.commit(txn, Some((from, id))),
                (Phase::InDoubt { .. }, Decision::Abort) => {
                    self.abort_active(txn, "aborted by the coordinator");
                    self.reply(from, id, ack_msg(txn, Outcome::Aborted));
                }
                (Phase::Committing { ackers, .. }, decision) => {
                    if decision == Decision::Abort {
                        error!(%txn, peer = %from.peer, "abort for a txn already committing");
                    }
                    push_waiter(ackers, txn, from, id);
                }
            }
            return;
        }
        let outcome = if let Some(done) = self.done.get(&txn) {
            match done.aborted {
                None => Outcome::Committed,
                Some(_) => Outcome::Aborted,
            }
        } else {
            match stored.map(|stored| stored.state) {
                None => Outcome::Unknown,
                Some(StoredState::Committed | StoredState::HeuristicCommit) => Outcome::Committed,
                Some(StoredState::Aborted | StoredState::HeuristicAbort) => Outcome::Aborted,
                Some(state) => {
                    // Recovery hands the core every in-doubt txn, so the store cannot hold
                    // one the core does not know: a shell bug, not a peer's.
                    error!(%txn, state = state.as_str(), "stored in doubt but unknown to the core");
                    let reason = format!("txn {txn} is in an unexpected state; try again");
                    self.reply(from, id, Msg::Error { reason });
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
            (_, outcome) => outcome,
        };
        self.reply(from, id, ack_msg(txn, outcome));
    }

    fn on_answer(&mut self, from: NodeId, txn: TxnId, answer: Answer) {
        let coordinator = match self.active.get(&txn) {
            Some(Active {
                coordinator,
                phase: Phase::InDoubt { .. },
                ..
            }) => *coordinator,
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
            Answer::Commit => self.commit(txn, None),
            Answer::Abort => self.abort_active(txn, "the coordinator answered abort"),
            Answer::Undecided => debug!(%txn, peer = %from, "coordinator undecided"),
        }
    }

    fn on_persisted(&mut self, now: Millis, lsn: Lsn) {
        let Some(txn) = self.pending.remove(&lsn) else {
            error!(%lsn, "persisted an lsn that is not pending");
            return;
        };
        if let Some(active) = self.active.get_mut(&txn) {
            match &mut active.phase {
                Phase::Preparing {
                    lsn: prepared,
                    voters,
                } if *prepared == lsn => {
                    let voters = std::mem::take(voters);
                    let backoff_ms = self.config.decision_query_backoff_min_ms;
                    let query_at = now.plus_ms(backoff_ms);
                    active.phase = Phase::InDoubt {
                        since: now,
                        query_at,
                        backoff_ms,
                    };
                    let reads = active.reads.clone();
                    self.timers.insert((query_at, txn));
                    for (to, id) in voters {
                        self.reply(to, id, vote_msg(txn, Vote::Yes, reads.clone()));
                    }
                }
                Phase::Committing { lsn: committed, .. } if *committed == lsn => {
                    let Some(active) = self.active.remove(&txn) else {
                        return;
                    };
                    self.release_locks(txn, &active.entries);
                    if let Phase::Committing { ackers, .. } = active.phase {
                        for (to, id) in ackers {
                            self.reply(to, id, ack_msg(txn, Outcome::Committed));
                        }
                    }
                    info!(%txn, "committed");
                    self.done.insert(
                        txn,
                        Done {
                            aborted: None,
                            reads: active.reads,
                            pending: None,
                        },
                    );
                    self.finish(txn);
                }
                _ => error!(%txn, %lsn, "persisted lsn does not match the txn's phase"),
            }
        } else if let Some(done) = self.done.get_mut(&txn) {
            if done.pending == Some(lsn) {
                done.pending = None;
                self.finish(txn);
            }
            // Otherwise the `Prepared` record of a txn aborted while it was being persisted:
            // its `Aborted` record follows.
        } else {
            error!(%txn, %lsn, "persisted a record of a forgotten txn");
        }
    }

    fn on_peer_up(&mut self, now: Millis, peer: NodeId) {
        self.peers_up.insert(peer);
        // The old channel may have dropped our queries: ask about everything at once.
        let min_ms = self.config.decision_query_backoff_min_ms;
        let mut asked = Vec::new();
        for (txn, active) in &mut self.active {
            if active.coordinator != peer {
                continue;
            }
            if let Phase::InDoubt {
                query_at,
                backoff_ms,
                ..
            } = &mut active.phase
            {
                self.timers.remove(&(*query_at, *txn));
                *query_at = now.plus_ms(min_ms);
                *backoff_ms = min_ms;
                self.timers.insert((*query_at, *txn));
                asked.push(*txn);
            }
        }
        for txn in asked {
            self.query(peer, txn);
        }
    }

    fn on_recover(&mut self, now: Millis, txns: Vec<StoredTxn>) {
        let backoff_ms = self.config.decision_query_backoff_min_ms;
        for stored in txns {
            let txn = stored.txn;
            if !stored.state.is_in_doubt() || self.knows(txn) {
                warn!(%txn, state = stored.state.as_str(), "recovery skipped a txn that is not in doubt or already known");
                continue;
            }
            for entry in &stored.entries {
                let holder = self.locks.entry(entry.key.clone()).or_insert(txn);
                if *holder != txn {
                    // Durability is prefix-closed, so two in-doubt holders of one key mean
                    // the store was edited by hand. Keep both in doubt; the first keeps it.
                    error!(%txn, key = %entry.key, holder = %holder, "recovered txns share a key");
                }
            }
            let query_at = now.plus_ms(backoff_ms);
            self.timers.insert((query_at, txn));
            info!(%txn, peer = %stored.coordinator, "recovered in doubt");
            self.active.insert(
                txn,
                Active {
                    protocol: stored.protocol,
                    coordinator: stored.coordinator,
                    reads: reads_of(&stored.entries),
                    entries: stored.entries,
                    phase: Phase::InDoubt {
                        since: now,
                        query_at,
                        backoff_ms,
                    },
                },
            );
        }
    }

    /// Persists `Committed` for an in-doubt txn; the locks and Acks wait for it.
    fn commit(&mut self, txn: TxnId, acker: Option<(ReplyTo, RequestId)>) {
        let lsn = self.persist(Record::Committed { txn });
        let Some(active) = self.active.get_mut(&txn) else {
            return;
        };
        if let Phase::InDoubt { query_at, .. } = active.phase {
            self.timers.remove(&(query_at, txn));
        }
        active.phase = Phase::Committing {
            lsn,
            ackers: acker.into_iter().collect(),
        };
    }

    /// Aborts a txn that is preparing or in doubt: NO to its waiting voters, locks released
    /// now, `Aborted` persisted (presumed abort: nothing waits for it).
    fn abort_active(&mut self, txn: TxnId, reason: &str) {
        let Some(active) = self.active.remove(&txn) else {
            return;
        };
        info!(%txn, %reason, "aborted");
        self.release_locks(txn, &active.entries);
        let lsn = self.persist(Record::Aborted {
            txn,
            protocol: active.protocol,
            coordinator: active.coordinator,
            reason: reason.to_string(),
        });
        match active.phase {
            Phase::Preparing { voters, .. } => {
                for (to, id) in voters {
                    self.reply(to, id, vote_msg(txn, no(reason), Vec::new()));
                }
            }
            Phase::InDoubt { query_at, .. } => {
                self.timers.remove(&(query_at, txn));
            }
            Phase::Committing { .. } => {
                error!(%txn, "abort of a committing txn");
            }
        }
        self.done.insert(
            txn,
            Done {
                aborted: Some(reason.to_string()),
                reads: Vec::new(),
                pending: Some(lsn),
            },
        );
    }

    fn release_locks(&mut self, txn: TxnId, entries: &[LogEntry]) {
        for entry in entries {
            if self.locks.get(&entry.key) == Some(&txn) {
                self.locks.remove(&entry.key);
            }
        }
    }

    /// `txn` is done and its record durable: remember it, forgetting the oldest beyond the
    /// bound (the store still answers for them).
    fn finish(&mut self, txn: TxnId) {
        self.finished.push_back(txn);
        while self.finished.len() > self.config.finished_txns_max {
            if let Some(oldest) = self.finished.pop_front() {
                self.done.remove(&oldest);
            }
        }
    }

    fn query(&mut self, coordinator: NodeId, txn: TxnId) {
        if self.peers_up.contains(&coordinator) {
            debug!(%txn, peer = %coordinator, "asking for the decision");
            self.outputs.push_back(Output::Send {
                to: coordinator,
                msg: Msg::DecisionQuery { txn },
            });
        }
    }

    fn persist(&mut self, record: Record) -> Lsn {
        let lsn = self.next_lsn;
        self.next_lsn = Lsn(lsn.0 + 1);
        self.pending.insert(lsn, record.txn());
        self.outputs.push_back(Output::Persist { lsn, record });
        lsn
    }

    fn reply(&mut self, to: ReplyTo, id: RequestId, msg: Msg) {
        self.outputs.push_back(Output::Reply { to, id, msg });
    }

    /// Panics if the core's state is inconsistent. Tests and the simulator call it after
    /// every input.
    pub fn check_invariants(&self) {
        for (key, holder) in &self.locks {
            let active = self
                .active
                .get(holder)
                .unwrap_or_else(|| panic!("lock on {key:?} held by inactive txn {holder}"));
            assert!(
                active.entries.iter().any(|entry| &entry.key == key),
                "txn {holder} holds a lock on {key:?} it does not touch"
            );
        }
        let mut timers = BTreeSet::new();
        for (txn, active) in &self.active {
            assert!(
                !self.done.contains_key(txn),
                "txn {txn} both active and done"
            );
            for entry in &active.entries {
                assert!(
                    self.locks.contains_key(&entry.key),
                    "active txn {txn} left {:?} unlocked",
                    entry.key
                );
            }
            match &active.phase {
                Phase::Preparing { lsn, voters } => {
                    assert_eq!(
                        self.pending.get(lsn),
                        Some(txn),
                        "prepared record not pending"
                    );
                    assert!(voters.len() <= WAITERS_PER_TXN_MAX);
                }
                Phase::Committing { lsn, ackers } => {
                    assert_eq!(
                        self.pending.get(lsn),
                        Some(txn),
                        "committed record not pending"
                    );
                    assert!(ackers.len() <= WAITERS_PER_TXN_MAX);
                }
                Phase::InDoubt {
                    query_at,
                    backoff_ms,
                    ..
                } => {
                    timers.insert((*query_at, *txn));
                    assert!(*backoff_ms <= self.config.decision_query_backoff_max_ms);
                }
            }
        }
        assert_eq!(timers, self.timers, "timers differ from the in-doubt txns");
        for (lsn, txn) in &self.pending {
            assert!(*lsn < self.next_lsn, "lsn {lsn} pending but never issued");
            assert!(self.knows(*txn), "pending record of forgotten txn {txn}");
        }
        let mut durable = 0;
        for (txn, done) in &self.done {
            match done.pending {
                Some(lsn) => {
                    assert_eq!(
                        self.pending.get(&lsn),
                        Some(txn),
                        "aborted record not pending"
                    );
                    assert!(
                        done.aborted.is_some(),
                        "committed before its record was durable"
                    );
                }
                None => durable += 1,
            }
        }
        assert_eq!(durable, self.finished.len(), "finished list out of step");
        assert!(self.finished.len() <= self.config.finished_txns_max);
    }
}

fn push_waiter(waiters: &mut Vec<(ReplyTo, RequestId)>, txn: TxnId, to: ReplyTo, id: RequestId) {
    if waiters.len() >= WAITERS_PER_TXN_MAX {
        let (dropped, _) = waiters.remove(0);
        warn!(%txn, peer = %dropped.peer, "too many duplicate requests waiting; dropped the oldest");
    }
    waiters.push((to, id));
}

fn reads_of(entries: &[LogEntry]) -> Vec<Read> {
    entries
        .iter()
        .filter(|entry| entry.op == OpKind::Get)
        .map(|entry| Read {
            key: entry.key.clone(),
            value: entry.redo.clone(),
        })
        .collect()
}

fn no(reason: &str) -> Vote {
    Vote::No {
        reason: reason.to_string(),
    }
}

fn vote_msg(txn: TxnId, vote: Vote, reads: Vec<Read>) -> Msg {
    Msg::Vote { txn, vote, reads }
}

fn ack_msg(txn: TxnId, outcome: Outcome) -> Msg {
    Msg::Ack { txn, outcome }
}
