//! The participant's state machine for 2PC and 3PC, sans-IO: votes, locks, PreCommit,
//! in-doubt queries, the 3PC termination protocol, outcomes.
//!
//! The core owns no data and does no IO. The shell feeds it one [`Input`] at a time (with
//! the committed values and stored state it needs, read from the store beforehand), then
//! drains [`Output`]s: records to make durable, replies, and requests to send. Every reply
//! that depends on a record (a YES vote on `Prepared`, an Ack on `PreCommitted` or
//! `Committed`, a state told to a peer) is held until the shell reports that record durable
//! with [`Input::Persisted`]; so is every decision a termination leader sends.
//!
//! Locking is per key and no-wait: a key held by another transaction makes the vote NO at
//! once, so there are no deadlocks and no unbounded waits. Locks are taken at the vote and
//! released when the outcome is applied; once a commit is decided its locks stop blocking
//! (a later txn reads the value the commit leaves, `locks.rs`). Under 2PC an abort needs
//! no durable record before the locks go and the Ack is sent (presumed abort: a
//! participant that loses it finds the txn in doubt on restart and the coordinator answers
//! abort); under 3PC, where the participants decide among themselves, every Ack and state
//! waits for its record.
//!
//! A txn's durable state only moves forward: `prepared` (2PC) or `waiting` (3PC), then
//! `precommitted` (3PC), then `committed`; or `aborted` from any of them. Once voted YES a
//! participant never decides alone, except by the 3PC card's rules when its own waiting or
//! precommitted timeout (or the coordinator's failure) finds no live peer: `waiting` ->
//! abort, `precommitted` -> commit. "No live peer" must mean "every peer crashed", so a
//! 3PC YES is only given while every peer is up on the mesh. A txn recovered after a
//! restart never applies them, never leads the termination protocol and is no evidence in
//! it: it asks the coordinator and its peers until one that knows answers
//! (`termination.rs`).
//!
//! A 2PC txn in doubt asks the coordinator; while the coordinator is down it asks its
//! peers instead (`StateQuery`): a peer that committed or aborted (or never voted YES, and
//! so aborts when asked) resolves it; otherwise it stays blocked, and says so.
//!
//! Isolation is serializable by global two-phase locking: a txn's locks at every
//! participant are held from its vote until every participant has voted (the lock point),
//! writers' until the outcome. A ReadOnly voter of a txn with other participants therefore
//! keeps its shared locks (a "read hold") until the coordinator's `Release` (sent once
//! every vote is in, or at the abort), a `Decide`, or, if neither comes, the txn's
//! `timeout_ms` after the vote: the coordinator gives up collecting votes by then, so no
//! vote can arrive after the hold ends. The hold's keys are in its `ReadOnly` record, so a
//! restart takes it again until its deadline (`release.rs` says why that is enough). A txn
//! on this participant alone holds nothing: its vote is its whole lock interval.
//!
//! A ReadOnly vote on a txn with other participants is made durable first (a
//! `read_only_vote` row): a peer asking about a txn this node does not know is told
//! "aborted" (and the txn is aborted here, so a later Prepare votes NO), which would be a
//! lie about a txn this node voted ReadOnly on and then forgot in a crash.
//!
//! Code map: `io.rs` holds what goes in and out ([`Input`], [`Output`]); `state.rs` the
//! per-txn state; one file per handler family: `vote.rs` (Prepare), `decide.rs`
//! (PreCommit, Decide, commit and abort), `persisted.rs` (records made durable),
//! `query.rs` (state queries and in-doubt asking), `liveness.rs` (PeerUp/PeerDown),
//! `release.rs` (read holds and locks), `recovery.rs`, `resolve.rs` (an operator's
//! heuristic decision on a running node), the termination protocol in
//! `termination*.rs`; `answer.rs` builds the replies, `status.rs` the counts and reports,
//! `invariants.rs` checks the whole state.

mod answer;
mod config;
mod decide;
mod eval;
mod forgotten;
pub mod inbound;
mod invariants;
mod io;
mod liveness;
mod locks;
mod persisted;
mod query;
mod record;
mod recovery;
mod release;
mod resolve;
mod state;
mod status;
mod termination;
mod termination_replies;
mod termination_round;
#[cfg(test)]
mod tests;
mod violation;
mod vote;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tracing::{debug, error};
use wire::retention::Horizon;
use wire::{FromParticipant, NodeId, Protocol, Request, RequestId, ToParticipant, TxnId, TxnState};

use forgotten::Asked;

pub use config::{
    Config, ConfigError, DECISION_QUERY_BACKOFF_LIMIT_MS, OPS_PER_TXN_LIMIT,
    TIMEOUT_HEARTBEATS_MIN, TIMEOUT_LIMIT_MS,
};
pub use io::{
    Input, Millis, Output, PARTICIPANTS_PER_TXN_MAX, ReplyTo, SUPERSEDED_REASON,
    WAITERS_PER_TXN_MAX, asked_before_voting_reason,
};
use locks::LockTable;
pub use record::{LogEntry, Lsn, OpKind, Record, StoredReadHold, StoredState, StoredTxn};
use resolve::Resolving;
pub use resolve::{RESOLVE_WAITERS_MAX, RESOLVING_MAX, heuristic_reason};
use state::{Active, Done, ReadHold, voted_state};
pub use status::{InDoubtTxn, TxnCounts};
pub use violation::InvariantViolation;
use vote::PrepareRequest;

/// The participant state machine. `Clone`, `Eq` and `Hash` (every map ordered) let the
/// model checker copy a state and recognise one it has seen.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Participant {
    node_id: NodeId,
    config: Config,
    active: BTreeMap<TxnId, Active>,
    done: BTreeMap<TxnId, Done>,
    /// `done` entries whose record is durable, oldest first: evicted past `finished_txns_max`.
    finished: VecDeque<TxnId>,
    /// Key -> shared (readers) or exclusive (the writer); see `locks.rs`.
    locks: LockTable,
    /// One timer per undecided txn (`Active::timer_at`).
    timers: BTreeSet<(Millis, TxnId)>,
    /// Read holds, counted with `active` against `active_txns_max`.
    read_holds: BTreeMap<TxnId, ReadHold>,
    /// One entry per read hold: `(until, txn)`.
    hold_timers: BTreeSet<(Millis, TxnId)>,
    /// Until then no key is taken exclusively: set at recovery when more read holds were
    /// still running than `active_txns_max` lets it track one by one (`release.rs`).
    writes_fenced_until: Option<Millis>,
    /// Records emitted and not yet reported durable, with the state each moves its txn to
    /// (`None`: a ReadOnly record).
    pending: BTreeMap<Lsn, (TxnId, Option<TxnState>)>,
    /// Requests to peers that wait for a record: a termination leader's decision goes out
    /// only once its own record of it is durable.
    held: BTreeMap<Lsn, Vec<(NodeId, ToParticipant)>>,
    next_lsn: Lsn,
    peers_up: BTreeSet<NodeId>,
    outputs: VecDeque<Output>,
    /// Txns below it may be pruned from the store (`forgotten.rs`).
    horizon: Horizon,
    /// The largest txn id the store held at `Recover` (`None` inside: none); `None`
    /// before `Recover`, when any txn may be stored.
    stored_max_at_start: Option<Option<TxnId>>,
    /// The largest txn id of a record this core handed out to be persisted.
    persisted_max: Option<TxnId>,
    /// Txns decided by hand whose `Heuristic` record is not yet durable (`resolve.rs`),
    /// at most `RESOLVING_MAX`.
    resolving: BTreeMap<TxnId, Resolving>,
}

impl Participant {
    /// A participant with node id `node_id` (it leads the termination protocol when it
    /// has the lowest live id among a txn's participants).
    pub fn new(node_id: NodeId, config: Config) -> Result<Participant, ConfigError> {
        config.validate()?;
        Ok(Participant {
            node_id,
            config,
            active: BTreeMap::new(),
            done: BTreeMap::new(),
            finished: VecDeque::new(),
            locks: LockTable::default(),
            timers: BTreeSet::new(),
            read_holds: BTreeMap::new(),
            hold_timers: BTreeSet::new(),
            writes_fenced_until: None,
            pending: BTreeMap::new(),
            held: BTreeMap::new(),
            next_lsn: Lsn(1),
            peers_up: BTreeSet::new(),
            outputs: VecDeque::new(),
            horizon: Horizon::NONE,
            stored_max_at_start: None,
            persisted_max: None,
            resolving: BTreeMap::new(),
        })
    }

    pub fn handle(&mut self, now: Millis, input: Input) {
        if self.refuse_while_resolving(&input) {
            return;
        }
        match input {
            Input::Prepare {
                from,
                id,
                txn,
                protocol,
                ops,
                timeout_ms,
                participants,
                values,
                stored,
            } => {
                if self.answer_forgotten(from, id, txn, &stored, Asked::Prepare) {
                    return;
                }
                if !self.repeat_vote(from, id, txn, &ops, &values, stored) {
                    let request = PrepareRequest {
                        from,
                        id,
                        txn,
                        protocol,
                        ops: &ops,
                        timeout_ms,
                        participants: &participants,
                        values: &values,
                    };
                    self.vote(now, request);
                }
            }
            Input::PreCommit {
                from,
                id,
                txn,
                stored,
            } => {
                if !self.answer_forgotten(from, id, txn, &stored, Asked::PreCommit) {
                    self.on_precommit(now, from, id, txn, stored);
                }
            }
            Input::Decide {
                from,
                id,
                txn,
                decision,
                reason,
                stored,
            } => {
                if !self.answer_forgotten(from, id, txn, &stored, Asked::Decide(decision)) {
                    self.on_decide(from, id, txn, decision, reason.as_deref(), stored);
                }
            }
            Input::Release { from, id, txn } => {
                self.release_hold(txn);
                self.reply(from, id, FromParticipant::Released { txn });
            }
            Input::StateQuery {
                from,
                id,
                txn,
                stored,
            } => {
                if !self.answer_forgotten(from, id, txn, &stored, Asked::StateQuery) {
                    self.on_state_query(now, from, id, txn, stored);
                }
            }
            Input::Resolve {
                from,
                id,
                txn,
                decision,
                note,
                stored,
            } => self.on_resolve(from, id, txn, decision, &note, stored),
            Input::DecisionAnswer { from, txn, answer } => self.on_answer(from, txn, answer),
            Input::StateReply {
                from,
                txn,
                state,
                recovered,
            } => self.on_state_reply(now, from, txn, state, recovered),
            Input::Ack { from, txn, outcome } => self.on_ack(from, txn, outcome),
            Input::Persisted { lsn } => self.on_persisted(now, lsn),
            Input::PeerUp { peer } => self.on_peer_up(now, peer),
            Input::PeerDown { peer } => self.on_peer_down(now, peer),
            Input::Recover {
                txns,
                holds,
                wall_ms,
                stored_max,
            } => {
                self.stored_max_at_start = Some(stored_max);
                self.on_recover(now, txns);
                self.recover_holds(now, holds, wall_ms);
            }
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Participant::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let txn_at = self.timers.first().map(|(at, _)| *at);
        let hold_at = self.hold_timers.first().map(|(at, _)| *at);
        match (txn_at, hold_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs every timer whose time has come: 2PC in-doubt txns ask the coordinator and
    /// their peers again; 3PC txns start or advance the termination protocol.
    pub fn handle_timeout(&mut self, now: Millis) {
        while let Some(&(at, txn)) = self.hold_timers.first() {
            if at > now {
                break;
            }
            debug!(%txn, "read hold timed out: released");
            self.release_hold(txn);
        }
        while let Some(&(at, txn)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(active) = self.active.get_mut(&txn) else {
                continue;
            };
            active.timer_at = None;
            match active.protocol {
                Protocol::TwoPhase => self.ask_again(now, txn),
                Protocol::ThreePhase => self.on_termination_timer(now, txn),
            }
        }
    }

    /// Whether the core remembers `txn`; if not, the shell passes the store's record.
    pub fn knows(&self, txn: TxnId) -> bool {
        self.active.contains_key(&txn)
            || self.done.contains_key(&txn)
            || self.resolving.contains_key(&txn)
    }

    /// Whether the store may hold `txn` though memory does not: every txn in the store
    /// was there at `Recover` or was persisted by this core since, so an unknown id above
    /// both maxima (a new transaction, as time-ordered ids mostly are) needs no read.
    pub fn may_be_stored(&self, txn: TxnId) -> bool {
        if self.knows(txn) {
            return false;
        }
        match self.stored_max_at_start {
            None => true,
            Some(at_start) => Some(txn) <= at_start.max(self.persisted_max),
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether `lsn` is a termination leader's decision, whose peers are told once it is
    /// durable (for the shell's crash point there).
    pub fn holds_decision(&self, lsn: Lsn) -> bool {
        self.held.contains_key(&lsn)
    }

    /// Whether only an ack waits on `record` (queued at `lsn`): a 2PC txn's `Committed`,
    /// whose client heard at the coordinator's durable decision and whose locks no longer
    /// block. The writer may hold such a record back briefly so that it shares a sync
    /// with the next one a vote waits on. A 3PC commit is not: its client waits for it.
    pub fn may_linger(&self, lsn: Lsn, record: &Record) -> bool {
        let Record::Committed { txn } = record else {
            return false;
        };
        !self.holds_decision(lsn)
            && self
                .active
                .get(txn)
                .is_some_and(|active| active.protocol == Protocol::TwoPhase)
    }

    /// The value `key` will have once the commits in flight here are durable: the last
    /// committing writer of it and its redo image (`None`: no committing txn writes it).
    pub fn committing_value(&self, key: &str) -> Option<(TxnId, Option<wire::Value>)> {
        self.locks.committing(key).iter().rev().find_map(|txn| {
            let active = self.active.get(txn)?;
            let entry = active
                .entries
                .iter()
                .rev()
                .find(|entry| entry.key == key && entry.op.writes())?;
            Some((*txn, entry.redo.clone()))
        })
    }

    pub fn locks_held(&self) -> usize {
        self.locks.len()
    }

    /// ReadOnly votes still holding their shared locks.
    pub fn read_holds(&self) -> usize {
        self.read_holds.len()
    }

    pub fn peers_up(&self) -> Vec<NodeId> {
        self.peers_up.iter().copied().collect()
    }

    /// The txn's participants other than this one, sorted and without duplicates.
    fn peers_of(&self, participants: &[NodeId]) -> Vec<NodeId> {
        let peers: BTreeSet<NodeId> = participants
            .iter()
            .copied()
            .filter(|node| *node != self.node_id)
            .collect();
        peers.into_iter().collect()
    }

    /// Sends `msg` to `to` if it is up (a request to a down peer would only be dropped).
    fn send(&mut self, to: NodeId, msg: impl Into<Request>) {
        let msg = msg.into();
        if self.peers_up.contains(&to) {
            self.outputs.push_back(Output::Send { to, msg });
        }
    }

    fn persist(&mut self, record: Record) -> Lsn {
        let lsn = self.next_lsn;
        self.next_lsn = Lsn(lsn.0 + 1);
        let brings = match &record {
            Record::Prepared { protocol, .. } => Some(voted_state(*protocol)),
            Record::PreCommitted { .. } => Some(TxnState::PreCommitted),
            Record::Committed { .. } => Some(TxnState::Committed),
            Record::Aborted { .. } => Some(TxnState::Aborted),
            Record::ReadOnly { .. } => None,
            Record::Heuristic { decision, .. } => Some(match decision {
                wire::Decision::Commit => TxnState::Committed,
                wire::Decision::Abort => TxnState::Aborted,
            }),
        };
        self.pending.insert(lsn, (record.txn(), brings));
        self.persisted_max = self.persisted_max.max(Some(record.txn()));
        self.outputs.push_back(Output::Persist { lsn, record });
        lsn
    }

    fn reply(&mut self, to: ReplyTo, id: RequestId, msg: FromParticipant) {
        self.outputs.push_back(Output::Reply { to, id, msg });
    }

    /// A request reached a state its handler's callers rule out (a bug here): it is still
    /// answered, since an unanswered request pins one of its sender's in-flight slots.
    fn reply_internal_error(&mut self, txn: TxnId, to: ReplyTo, id: RequestId, problem: &str) {
        error!(%txn, peer = %to.peer, problem, "request in an unexpected state; answered with an error");
        let reason = format!("internal error: txn {txn} {problem}");
        self.reply(to, id, FromParticipant::Refused { reason });
    }
}
