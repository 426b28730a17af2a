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
//! released when the outcome is applied. Under 2PC an abort needs no durable record before
//! the locks go and the Ack is sent (presumed abort: a participant that loses it finds the
//! txn in doubt on restart and the coordinator answers abort); under 3PC, where the
//! participants decide among themselves, every Ack and state waits for its record.
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
//! keeps its shared locks (in memory only: a "read hold") until the coordinator's
//! `Release` (sent once every vote is in, or at the abort), a `Decide`, or, if neither
//! comes, the txn's `timeout_ms` after the vote: the coordinator gives up collecting votes
//! by then, so no vote can arrive after the hold ends. A txn on this participant alone
//! holds nothing: its vote is its whole lock interval.
//!
//! A ReadOnly vote on a txn with other participants is made durable first (a
//! `read_only_vote` row): a peer asking about a txn this node does not know is told
//! "aborted" (and the txn is aborted here, so a later Prepare votes NO), which would be a
//! lie about a txn this node voted ReadOnly on and then forgot in a crash.

mod config;
mod eval;
pub mod inbound;
mod locks;
mod record;
mod termination;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tracing::{debug, error, info, warn};
use wire::{
    Answer, Decision, FromParticipant, NodeId, Op, Outcome, Protocol, Read, Request, RequestId,
    ToCoordinator, ToParticipant, TxnId, TxnState, Value, Vote,
};

pub use config::{
    Config, ConfigError, DECISION_QUERY_BACKOFF_LIMIT_MS, OPS_PER_TXN_LIMIT,
    TIMEOUT_HEARTBEATS_MIN, TIMEOUT_LIMIT_MS,
};
use locks::{LockTable, Mode};
pub use record::{LogEntry, Lsn, OpKind, Record, StoredState, StoredTxn};
use termination::Termination;

/// Requests for the same transaction waiting on one record (duplicates from retries);
/// past it the oldest waiter is answered with [`SUPERSEDED_REASON`] (its sender retries
/// or has gone). It is answered rather than forgotten because every request holds one of
/// its sender's in-flight slots until a response frees it.
pub const WAITERS_PER_TXN_MAX: usize = 16;
/// The `Refused` reason a waiter pushed out by [`WAITERS_PER_TXN_MAX`] hears.
pub const SUPERSEDED_REASON: &str = "superseded by a newer duplicate of this request";
/// Participants one txn may name; a Prepare naming more gets NO.
pub const PARTICIPANTS_PER_TXN_MAX: usize = 1024;

/// The reason recorded for a txn aborted because a peer asked about it before this
/// participant voted YES on it.
pub fn asked_before_voting_reason(peer: NodeId) -> String {
    format!("aborted before voting: asked by peer {peer}")
}

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

#[derive(Clone, Debug)]
pub enum Input {
    /// A coordinator asks for a vote (3PC: CanCommit). `values` holds the committed value
    /// of every key the ops name (`None`: absent); `stored` is the store's record of `txn`,
    /// read when [`Participant::knows`] was false. `timeout_ms` is the 3PC `waiting`
    /// timeout the coordinator assumes; `participants` every participant of the txn.
    Prepare {
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        protocol: Protocol,
        ops: Vec<Op>,
        timeout_ms: u64,
        participants: Vec<NodeId>,
        values: BTreeMap<String, Option<Value>>,
        stored: Option<StoredTxn>,
    },
    /// 3PC: the coordinator (or a termination leader) moves the txn to `precommitted`.
    /// `stored` as for `Prepare`.
    PreCommit {
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        stored: Option<StoredTxn>,
    },
    /// A decision from the coordinator (or a termination leader). `stored` as for `Prepare`.
    Decide {
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        decision: Decision,
        stored: Option<StoredTxn>,
    },
    /// The coordinator has every vote of `txn` (or aborted it): a read hold may go.
    Release {
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
    },
    /// A peer (or a recovering coordinator) asks for this participant's state of `txn`.
    /// `stored` as for `Prepare`.
    StateQuery {
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        stored: Option<StoredTxn>,
    },
    /// The answer to a `DecisionQuery` this core sent.
    DecisionAnswer {
        from: NodeId,
        txn: TxnId,
        answer: Answer,
    },
    /// The answer to a `StateQuery` this core sent. `recovered`: the peer restarted since
    /// it voted and is still undecided (3PC: it never leads, and its undecided state is no
    /// evidence for the termination protocol).
    StateReply {
        from: NodeId,
        txn: TxnId,
        state: TxnState,
        recovered: bool,
    },
    /// The answer to a `PreCommit` or `Decide` this core sent as a termination leader.
    Ack {
        from: NodeId,
        txn: TxnId,
        outcome: Outcome,
    },
    /// The record with this lsn is durable (reported in lsn order).
    Persisted { lsn: Lsn },
    /// A coordinator or a peer participant connected.
    PeerUp { peer: NodeId },
    /// A coordinator or a peer participant is down (closed, or silent too long).
    PeerDown { peer: NodeId },
    /// At startup: every transaction the store holds in doubt, with its log entries.
    Recover { txns: Vec<StoredTxn> },
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Output {
    /// Make `record` durable, then report `Persisted { lsn }`. Records must become durable
    /// in lsn order.
    Persist { lsn: Lsn, record: Record },
    /// Respond to request `id` on the connection `to`.
    Reply {
        to: ReplyTo,
        id: RequestId,
        msg: FromParticipant,
    },
    /// Send `msg` as a new request to `to` (only emitted while `to` is up).
    Send { to: NodeId, msg: Request },
}

/// A transaction voted YES with no outcome yet, as status reports show it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct InDoubtTxn {
    pub txn: TxnId,
    pub coordinator: NodeId,
    pub age_ms: u64,
    pub protocol: Protocol,
    /// `Prepared` (2PC), `Waiting` or `PreCommitted` (3PC): the state it is moving to.
    pub state: TxnState,
    /// The txn's other participants.
    pub peers: Vec<NodeId>,
    /// Found in doubt at startup (3PC: never decides alone).
    pub recovered: bool,
    /// 3PC: the current termination leader, while the termination protocol runs (`None`
    /// as well while no operational participant is up to lead it).
    pub leader: Option<NodeId>,
    /// Nobody reachable can resolve it now: 2PC with the coordinator down and every peer
    /// down or in doubt too; 3PC recovered with the coordinator down and every peer down
    /// or recovered too.
    pub blocked: bool,
}

/// How many transactions the core holds in each state.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TxnCounts {
    /// Voted YES, the vote's record not yet durable.
    pub preparing: usize,
    /// Voted YES, no outcome yet (`prepared + waiting + precommitted`).
    pub in_doubt: usize,
    /// `Committed` not yet durable.
    pub committing: usize,
    /// Remembered outcomes (older ones live only in the store).
    pub committed: usize,
    pub aborted: usize,
    /// The in-doubt txns by state.
    pub prepared: usize,
    pub waiting: usize,
    pub precommitted: usize,
    /// In-doubt 3PC txns running the termination protocol.
    pub terminating: usize,
    /// In-doubt txns nobody reachable can resolve (see [`InDoubtTxn::blocked`]).
    pub blocked: usize,
    /// Remembered ReadOnly votes on txns with other participants.
    pub read_only: usize,
}

/// What a request held on a record wants to hear once the record is durable.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Wants {
    Vote,
    /// `Ack` to a PreCommit: once `precommitted` (or beyond) is durable.
    PreCommitAck,
    /// `Ack` to a Decide: once the outcome is durable.
    DecideAck,
    /// `StateReply`: the state once the next record is durable.
    State,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Waiter {
    to: ReplyTo,
    id: RequestId,
    wants: Wants,
}

/// A transaction holding locks: voting, in doubt, or committing.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Active {
    protocol: Protocol,
    coordinator: NodeId,
    /// The txn's other participants, sorted.
    peers: Vec<NodeId>,
    /// One per op; their keys are the locks held.
    entries: Vec<LogEntry>,
    reads: Vec<Read>,
    /// When the Prepare (or recovery) made it active: the age in status reports.
    since: Millis,
    /// 3PC: how long it waits in `waiting` for a PreCommit.
    waiting_timeout_ms: u64,
    /// Found in doubt at startup: asks, never applies the alone rules.
    recovered: bool,
    /// The state its durable records have reached (`None`: the vote's record is not yet).
    durable: Option<TxnState>,
    /// The state its records move it to: equal to `durable` when none is pending.
    /// `Prepared` or `Committed` under 2PC; `Waiting`, `PreCommitted` or `Committed`
    /// under 3PC.
    target: TxnState,
    /// Requests answered once the next record is durable.
    waiters: Vec<Waiter>,
    /// Set while voted and undecided: the next query (2PC, recovered), or the 3PC timeout
    /// or termination round deadline.
    timer_at: Option<Millis>,
    /// The wait that ends at the next query; the next one is twice as long, up to the max.
    backoff_ms: u64,
    /// 3PC: the termination protocol, once started.
    termination: Option<Termination>,
    /// 2PC: peers that answered they do not know the outcome either.
    undecided_peers: BTreeSet<NodeId>,
}

impl Active {
    /// Voted YES (durably), no outcome yet.
    fn is_undecided(&self) -> bool {
        self.durable.is_some() && self.target != TxnState::Committed
    }
}

/// A ReadOnly vote on a txn with other participants, holding shared locks on the keys it
/// read until every vote is in (see the module docs).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct ReadHold {
    keys: Vec<String>,
    /// When it releases by itself: the vote plus the txn's `timeout_ms`.
    until: Millis,
}

/// How a finished transaction ended.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum End {
    Committed,
    Aborted {
        reason: String,
    },
    /// Voted ReadOnly on a txn with other participants (it does not know the outcome).
    ReadOnly,
}

/// A finished transaction, remembered to answer duplicates.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Done {
    protocol: Protocol,
    end: End,
    /// The reads of a committed or read-only transaction (a repeated Prepare repeats its
    /// vote).
    reads: Vec<Read>,
    /// The `Aborted` or `ReadOnly` record not yet durable (a commit is only `Done` once
    /// durable).
    pending: Option<Lsn>,
    /// Requests answered once `pending` is durable.
    waiters: Vec<Waiter>,
}

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
    /// Records emitted and not yet reported durable, with the state each moves its txn to
    /// (`None`: a ReadOnly record).
    pending: BTreeMap<Lsn, (TxnId, Option<TxnState>)>,
    /// Requests to peers that wait for a record: a termination leader's decision goes out
    /// only once its own record of it is durable.
    held: BTreeMap<Lsn, Vec<(NodeId, ToParticipant)>>,
    next_lsn: Lsn,
    peers_up: BTreeSet<NodeId>,
    outputs: VecDeque<Output>,
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
            pending: BTreeMap::new(),
            held: BTreeMap::new(),
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
                timeout_ms,
                participants,
                values,
                stored,
            } => {
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
            } => self.on_precommit(now, from, id, txn, stored),
            Input::Decide {
                from,
                id,
                txn,
                decision,
                stored,
            } => self.on_decide(from, id, txn, decision, stored),
            Input::Release { from, id, txn } => {
                self.release_hold(txn);
                self.reply(from, id, FromParticipant::Released { txn });
            }
            Input::StateQuery {
                from,
                id,
                txn,
                stored,
            } => self.on_state_query(now, from, id, txn, stored),
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
            Input::Recover { txns } => self.on_recover(now, txns),
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
        self.active.contains_key(&txn) || self.done.contains_key(&txn)
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn locks_held(&self) -> usize {
        self.locks.len()
    }

    /// ReadOnly votes still holding their shared locks.
    pub fn read_holds(&self) -> usize {
        self.read_holds.len()
    }

    pub fn counts(&self) -> TxnCounts {
        let mut counts = TxnCounts::default();
        for active in self.active.values() {
            if active.durable.is_none() {
                counts.preparing += 1;
                continue;
            }
            if active.target == TxnState::Committed {
                counts.committing += 1;
                continue;
            }
            counts.in_doubt += 1;
            match active.target {
                TxnState::Prepared => counts.prepared += 1,
                TxnState::Waiting => counts.waiting += 1,
                _ => counts.precommitted += 1,
            }
            if active.termination.is_some() {
                counts.terminating += 1;
            }
            if self.is_blocked(active) {
                counts.blocked += 1;
            }
        }
        for done in self.done.values() {
            match done.end {
                End::Committed => counts.committed += 1,
                End::Aborted { .. } => counts.aborted += 1,
                End::ReadOnly => counts.read_only += 1,
            }
        }
        counts
    }

    pub fn in_doubt(&self, now: Millis) -> Vec<InDoubtTxn> {
        self.active
            .iter()
            .filter(|(_, active)| active.is_undecided())
            .map(|(txn, active)| InDoubtTxn {
                txn: *txn,
                coordinator: active.coordinator,
                age_ms: now.0.saturating_sub(active.since.0),
                protocol: active.protocol,
                state: active.target,
                peers: active.peers.clone(),
                recovered: active.recovered,
                leader: active.termination.as_ref().and_then(|t| t.leader),
                blocked: self.is_blocked(active),
            })
            .collect()
    }

    pub fn peers_up(&self) -> Vec<NodeId> {
        self.peers_up.iter().copied().collect()
    }

    fn is_blocked(&self, active: &Active) -> bool {
        if self.peers_up.contains(&active.coordinator) {
            return false;
        }
        match active.protocol {
            Protocol::TwoPhase => active
                .peers
                .iter()
                .all(|peer| !self.peers_up.contains(peer) || active.undecided_peers.contains(peer)),
            Protocol::ThreePhase => {
                active.recovered
                    && !active.peers.iter().any(|peer| {
                        self.peers_up.contains(peer)
                            && !active.termination.as_ref().is_some_and(|t| {
                                t.recovered.contains(peer) || t.non_voters.contains(peer)
                            })
                    })
            }
        }
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

    /// Answers a Prepare for a txn voted on before (in memory or in the store) with the
    /// same vote; false if the txn is new.
    fn repeat_vote(
        &mut self,
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        ops: &[Op],
        values: &BTreeMap<String, Option<Value>>,
        stored: Option<StoredTxn>,
    ) -> bool {
        if self.active.contains_key(&txn) {
            self.answer_or_hold(txn, from, id, Wants::Vote);
            return true;
        }
        if let Some(done) = self.done.get_mut(&txn) {
            let msg = match &done.end {
                End::Committed => vote_msg(txn, Vote::Yes, done.reads.clone()),
                End::Aborted { reason } => vote_msg(txn, no(reason), Vec::new()),
                End::ReadOnly if done.pending.is_some() => {
                    push_waiter(
                        &mut done.waiters,
                        &mut self.outputs,
                        txn,
                        Waiter {
                            to: from,
                            id,
                            wants: Wants::Vote,
                        },
                    );
                    return true;
                }
                End::ReadOnly => vote_msg(txn, Vote::ReadOnly, done.reads.clone()),
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
            // The reads are not logged for a ReadOnly vote: read them again (no locks are
            // involved; the coordinator keeps the first vote it got).
            StoredState::ReadOnly => {
                let reads = eval::evaluate(ops, values)
                    .map(|evaluated| evaluated.reads)
                    .unwrap_or_default();
                vote_msg(txn, Vote::ReadOnly, reads)
            }
        };
        self.reply(from, id, msg);
        true
    }

    /// Votes on a new txn: NO (recorded, sent at once), ReadOnly (sent at once when the txn
    /// has no other participant, else once its record is durable), or YES (locks taken,
    /// `Prepared` persisted, the vote held until it is durable).
    fn vote(&mut self, now: Millis, request: PrepareRequest<'_>) {
        let peers = self.peers_of(request.participants);
        let checked = self.check_prepare(&request, &peers);
        let PrepareRequest {
            from,
            id,
            txn,
            protocol,
            timeout_ms,
            participants,
            ..
        } = request;
        let coordinator = from.peer;
        if !participants.is_empty() && !participants.contains(&self.node_id) {
            warn!(%txn, peer = %coordinator, ?participants, "the Prepare's participants do not name this participant");
        }
        match checked {
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
                        protocol,
                        end: End::Aborted {
                            reason: reason.clone(),
                        },
                        reads: Vec::new(),
                        pending: Some(lsn),
                        waiters: Vec::new(),
                    },
                );
                self.reply(from, id, vote_msg(txn, Vote::No { reason }, Vec::new()));
            }
            Ok(evaluated) if evaluated.is_read_only() && peers.is_empty() => {
                debug!(%txn, peer = %coordinator, "voting read-only");
                self.reply(from, id, vote_msg(txn, Vote::ReadOnly, evaluated.reads));
            }
            Ok(evaluated) if evaluated.is_read_only() => {
                debug!(%txn, peer = %coordinator, "read-only; vote waits for its record, locks held until every vote is in");
                let keys: BTreeSet<String> = evaluated
                    .entries
                    .iter()
                    .map(|entry| entry.key.clone())
                    .collect();
                for key in &keys {
                    self.locks.acquire(txn, key, Mode::Shared);
                }
                let until = now.plus_ms(timeout_ms);
                self.hold_timers.insert((until, txn));
                self.read_holds.insert(
                    txn,
                    ReadHold {
                        keys: keys.into_iter().collect(),
                        until,
                    },
                );
                let lsn = self.persist(Record::ReadOnly {
                    txn,
                    protocol,
                    coordinator,
                });
                self.done.insert(
                    txn,
                    Done {
                        protocol,
                        end: End::ReadOnly,
                        reads: evaluated.reads,
                        pending: Some(lsn),
                        waiters: vec![Waiter {
                            to: from,
                            id,
                            wants: Wants::Vote,
                        }],
                    },
                );
            }
            Ok(evaluated) => {
                debug!(%txn, peer = %coordinator, "voting yes; the vote waits for its record");
                for (key, mode) in locks::modes_of_entries(&evaluated.entries) {
                    self.locks.acquire(txn, &key, mode);
                }
                let waiting_timeout_ms = self.config.waiting_timeout_ms(timeout_ms);
                let lsn = self.persist(Record::Prepared {
                    txn,
                    protocol,
                    coordinator,
                    entries: evaluated.entries.clone(),
                    participants: participants.to_vec(),
                });
                debug!(%txn, %lsn, "vote record pending");
                self.active.insert(
                    txn,
                    Active {
                        protocol,
                        coordinator,
                        peers,
                        entries: evaluated.entries,
                        reads: evaluated.reads,
                        since: now,
                        waiting_timeout_ms,
                        recovered: false,
                        durable: None,
                        target: voted_state(protocol),
                        waiters: vec![Waiter {
                            to: from,
                            id,
                            wants: Wants::Vote,
                        }],
                        timer_at: None,
                        backoff_ms: self.config.decision_query_backoff_min_ms,
                        termination: None,
                        undecided_peers: BTreeSet::new(),
                    },
                );
            }
        }
    }

    /// The limits, the lock table, the operations themselves, then (3PC) the mesh: the
    /// reason for NO, or what a YES (or ReadOnly) vote would log.
    fn check_prepare(
        &self,
        request: &PrepareRequest<'_>,
        peers: &[NodeId],
    ) -> Result<eval::Evaluated, String> {
        let &PrepareRequest {
            txn,
            protocol,
            ops,
            timeout_ms,
            participants,
            values,
            ..
        } = request;
        let config = &self.config;
        if participants.len() > PARTICIPANTS_PER_TXN_MAX {
            return Err(format!(
                "txn names {} participants; the limit is {PARTICIPANTS_PER_TXN_MAX}",
                participants.len()
            ));
        }
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
        // Read holds count too: they keep locks, and so bound the lock table with `active`.
        let holding = self.active.len() + self.read_holds.len();
        if holding >= config.active_txns_max {
            return Err(format!(
                "participant overloaded: {holding} active txns (limit {})",
                config.active_txns_max
            ));
        }
        for (key, mode) in locks::modes_of_ops(ops) {
            if let Some(holder) = self.locks.conflict(txn, &key, mode) {
                return Err(format!("lock conflict on key {key:?} held by txn {holder}"));
            }
        }
        let evaluated = eval::evaluate(ops, values)?;
        // The coordinator sends PreCommit only while a voter's waiting timeout cannot
        // have fired, assuming that timeout is the one it asked for. A shorter one (our
        // maximum clamps it) could fire first: this node would abort alone while the
        // coordinator precommits the others. A longer wait is safe.
        if protocol == Protocol::ThreePhase
            && !evaluated.is_read_only()
            && config.waiting_timeout_ms(timeout_ms) < timeout_ms
        {
            return Err(format!(
                "the coordinator asks for a 3pc waiting timeout of {timeout_ms} ms, above this \
                 participant's maximum of {} ms (--waiting-timeout-max-ms): it would give up \
                 before the coordinator's PreCommit deadline",
                config.waiting_timeout_max_ms
            ));
        }
        // A 3PC YES commits this participant to the termination protocol, whose failure
        // detector is the mesh: a peer not up is taken as failed, and with none up the
        // card's alone rules decide. Right after a restart (ours or the peer's) a live peer
        // can be not up yet; a YES then could decide alone against it. With every peer up
        // at the vote, under crash-only faults a channel only goes down when its peer
        // crashes, so "not up" means "failed" for the rest of the txn. NO is always safe.
        if protocol == Protocol::ThreePhase
            && !evaluated.is_read_only()
            && let Some(peer) = peers.iter().find(|peer| !self.peers_up.contains(peer))
        {
            return Err(format!(
                "3pc needs the participant mesh: peer {peer} is not connected, so the \
                 termination protocol could not reach it"
            ));
        }
        Ok(evaluated)
    }

    fn on_precommit(
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
            Some(StoredState::Committed | StoredState::HeuristicCommit) => {
                ack_msg(txn, Outcome::Committed)
            }
            Some(StoredState::Aborted | StoredState::HeuristicAbort) => {
                error!(%txn, peer = %from.peer, "PreCommit for a txn this participant aborted; answering aborted");
                ack_msg(txn, Outcome::Aborted)
            }
            Some(state) => self.unexpected_stored(txn, state),
        };
        self.reply(from, id, msg);
    }

    fn on_decide(
        &mut self,
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        decision: Decision,
        stored: Option<StoredTxn>,
    ) {
        // A decision means every vote is in (or the txn is over): a read hold may go.
        self.release_hold(txn);
        if let Some(active) = self.active.get_mut(&txn) {
            let by_coordinator = from.peer == active.coordinator;
            match (active.durable, active.target, decision) {
                (None, _, Decision::Abort) => {
                    let reason = if by_coordinator {
                        "aborted by the coordinator before the vote".to_string()
                    } else {
                        format!("aborted by participant {} before the vote", from.peer)
                    };
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
                    let reason = if by_coordinator {
                        "aborted by the coordinator".to_string()
                    } else {
                        format!(
                            "aborted by participant {} (termination protocol)",
                            from.peer
                        )
                    };
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
                Some(StoredState::Committed | StoredState::HeuristicCommit) => Outcome::Committed,
                Some(StoredState::Aborted | StoredState::HeuristicAbort) => Outcome::Aborted,
                Some(StoredState::ReadOnly) => decided_outcome(decision),
                Some(state) => {
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
            (_, outcome) => outcome,
        };
        self.reply(from, id, ack_msg(txn, outcome));
    }

    /// Tells a peer (or a recovering coordinator) the txn's durable state. A txn this node
    /// has not voted YES on is aborted first, durably, so it can never vote YES later.
    fn on_state_query(
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
            Some(state) => {
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
    fn unexpected_stored(&self, txn: TxnId, state: StoredState) -> FromParticipant {
        error!(%txn, state = state.as_str(), "stored in doubt but unknown to the core");
        FromParticipant::Refused {
            reason: format!("txn {txn} is in an unexpected state; try again"),
        }
    }

    fn on_answer(&mut self, from: NodeId, txn: TxnId, answer: Answer) {
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

    fn on_persisted(&mut self, now: Millis, lsn: Lsn) {
        let Some((txn, brings)) = self.pending.remove(&lsn) else {
            error!(%lsn, "persisted an lsn that is not pending");
            return;
        };
        match (self.active.contains_key(&txn), brings) {
            (true, Some(state)) if state != TxnState::Aborted => self.advance(now, txn, state),
            _ => {
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
                } else {
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
    fn advance(&mut self, now: Millis, txn: TxnId, state: TxnState) {
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
                let at = now.plus_ms(active.backoff_ms);
                set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
            }
            TxnState::Waiting => {
                let at = now.plus_ms(active.waiting_timeout_ms);
                set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
            }
            TxnState::PreCommitted => {
                // A termination round in progress keeps its own deadline.
                if active.target == TxnState::PreCommitted && active.termination.is_none() {
                    let at = now.plus_ms(self.config.precommitted_timeout_ms);
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

    fn on_peer_up(&mut self, now: Millis, peer: NodeId) {
        self.peers_up.insert(peer);
        // The old channel may have dropped our queries: ask about everything at once.
        let min_ms = self.config.decision_query_backoff_min_ms;
        let concerned: Vec<TxnId> = self
            .active
            .iter()
            .filter(|(_, active)| {
                active.is_undecided()
                    && (active.protocol == Protocol::TwoPhase || active.recovered)
                    && (active.coordinator == peer || active.peers.contains(&peer))
            })
            .map(|(txn, _)| *txn)
            .collect();
        for txn in concerned {
            let Some(active) = self.active.get_mut(&txn) else {
                continue;
            };
            active.backoff_ms = min_ms;
            match active.protocol {
                Protocol::TwoPhase => {
                    let at = now.plus_ms(min_ms);
                    set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
                    if active.coordinator == peer {
                        self.send(peer, ToCoordinator::DecisionQuery { txn });
                    } else {
                        self.ask_peers(txn, Some(peer));
                    }
                }
                // A recovered 3PC txn starts a round with whoever is up now.
                Protocol::ThreePhase => self.start_round(now, txn),
            }
        }
    }

    fn on_peer_down(&mut self, now: Millis, peer: NodeId) {
        self.peers_up.remove(&peer);
        let concerned: Vec<TxnId> = self
            .active
            .iter()
            .filter(|(_, active)| {
                active.is_undecided()
                    && (active.coordinator == peer || active.peers.contains(&peer))
            })
            .map(|(txn, _)| *txn)
            .collect();
        let min_ms = self.config.decision_query_backoff_min_ms;
        for txn in concerned {
            let Some(active) = self.active.get_mut(&txn) else {
                continue;
            };
            match active.protocol {
                // 2PC: the coordinator gone, its in-doubt txns ask their peers at once.
                Protocol::TwoPhase if active.coordinator == peer => {
                    active.backoff_ms = min_ms;
                    let at = now.plus_ms(min_ms);
                    set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
                    self.ask_peers(txn, None);
                }
                Protocol::TwoPhase => {}
                Protocol::ThreePhase => self.termination_peer_down(now, txn, peer),
            }
        }
    }

    fn on_recover(&mut self, now: Millis, txns: Vec<StoredTxn>) {
        let backoff_ms = self.config.decision_query_backoff_min_ms;
        for stored in txns {
            let txn = stored.txn;
            let state = match (stored.protocol, stored.state) {
                (Protocol::TwoPhase, StoredState::Prepared) => TxnState::Prepared,
                (Protocol::ThreePhase, StoredState::Waiting) => TxnState::Waiting,
                (Protocol::ThreePhase, StoredState::PreCommitted) => TxnState::PreCommitted,
                (protocol, state) => {
                    if state.is_in_doubt() {
                        error!(%txn, protocol = protocol.as_str(), state = state.as_str(), "recovered a state its protocol does not have; left alone");
                    } else {
                        warn!(%txn, state = state.as_str(), "recovery skipped a txn that is not in doubt");
                    }
                    continue;
                }
            };
            if self.knows(txn) {
                warn!(%txn, "recovery skipped a txn already known");
                continue;
            }
            for (key, mode) in locks::modes_of_entries(&stored.entries) {
                if let Some(holder) = self.locks.acquire(txn, &key, mode) {
                    // Durability is prefix-closed, so two in-doubt txns conflicting on one
                    // key mean the store was edited by hand. Keep both in doubt; the first
                    // keeps the key.
                    error!(%txn, %key, %holder, "recovered txns conflict on a key");
                }
            }
            let timer_at = now.plus_ms(backoff_ms);
            self.timers.insert((timer_at, txn));
            info!(%txn, peer = %stored.coordinator, state = stored.state.as_str(), "recovered in doubt");
            let peers = self.peers_of(&stored.participants);
            self.active.insert(
                txn,
                Active {
                    protocol: stored.protocol,
                    coordinator: stored.coordinator,
                    peers,
                    reads: reads_of(&stored.entries),
                    entries: stored.entries,
                    since: now,
                    waiting_timeout_ms: self.config.waiting_timeout_min_ms,
                    recovered: true,
                    durable: Some(state),
                    target: state,
                    waiters: Vec::new(),
                    timer_at: Some(timer_at),
                    backoff_ms,
                    termination: None,
                    undecided_peers: BTreeSet::new(),
                },
            );
        }
    }

    /// 2PC in doubt: ask again, backing off: the coordinator while it is up, else every
    /// live peer (see [`Participant::ask_peers`]).
    fn ask_again(&mut self, now: Millis, txn: TxnId) {
        let Some(active) = self.active.get_mut(&txn) else {
            return;
        };
        active.backoff_ms = active
            .backoff_ms
            .saturating_mul(2)
            .min(self.config.decision_query_backoff_max_ms);
        let at = now.plus_ms(active.backoff_ms);
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
    fn ask_peers(&mut self, txn: TxnId, only: Option<NodeId>) {
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

    /// Persists `Committed` for an undecided txn; the locks and Acks wait for it.
    fn commit(&mut self, txn: TxnId, acker: Option<(ReplyTo, RequestId)>) -> Option<Lsn> {
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
    fn abort_active(&mut self, txn: TxnId, reason: &str) -> Option<Lsn> {
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

    /// Answers a request (a vote or an Ack) about an active txn from its durable state if
    /// that answers it, else holds it until the pending record is durable, when
    /// [`Participant::advance`] answers it. One rule, the one `check_invariants` holds
    /// waiters to: no request waits for a record once what is durable already answers it.
    fn answer_or_hold(&mut self, txn: TxnId, to: ReplyTo, id: RequestId, wants: Wants) {
        let Some(active) = self.active.get_mut(&txn) else {
            return self.reply_internal_error(txn, to, id, "is not active");
        };
        let answer = active
            .durable
            .and_then(|durable| active_answer(txn, active, wants, durable));
        match answer {
            Some(msg) => self.reply(to, id, msg),
            None => push_waiter(
                &mut active.waiters,
                &mut self.outputs,
                txn,
                Waiter { to, id, wants },
            ),
        }
    }

    /// Answers a request about an aborted txn: at once, or once `Aborted` is durable (see
    /// [`holds_abort`]).
    fn reply_aborted(&mut self, txn: TxnId, to: ReplyTo, id: RequestId, wants: Wants) {
        let Some(done) = self.done.get_mut(&txn) else {
            return self.reply_internal_error(txn, to, id, "is not finished");
        };
        if done.pending.is_some() && holds_abort(done.protocol, wants) {
            push_waiter(
                &mut done.waiters,
                &mut self.outputs,
                txn,
                Waiter { to, id, wants },
            );
        } else {
            let msg = done_answer(txn, done, wants);
            self.reply(to, id, msg);
        }
    }

    fn release_locks(&mut self, txn: TxnId, entries: &[LogEntry]) {
        for entry in entries {
            self.locks.release(txn, &entry.key);
        }
    }

    /// Drops the read hold of `txn`, if any (a duplicate or unknown release does nothing).
    fn release_hold(&mut self, txn: TxnId) {
        if let Some(hold) = self.read_holds.remove(&txn) {
            self.hold_timers.remove(&(hold.until, txn));
            for key in &hold.keys {
                self.locks.release(txn, key);
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
            self.send(coordinator, ToCoordinator::DecisionQuery { txn });
        }
    }

    /// Sends `msg` to `to` if it is up (a request to a down peer would only be dropped).
    fn send(&mut self, to: NodeId, msg: impl Into<Request>) {
        if self.peers_up.contains(&to) {
            self.outputs.push_back(Output::Send {
                to,
                msg: msg.into(),
            });
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
        };
        self.pending.insert(lsn, (record.txn(), brings));
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

    /// Panics if the core's state is inconsistent. Tests and the simulator call it after
    /// every input.
    pub fn check_invariants(&self) {
        self.check_locks();
        let mut timers = BTreeSet::new();
        for (txn, active) in &self.active {
            assert!(
                !self.done.contains_key(txn),
                "txn {txn} both active and done"
            );
            self.check_active(*txn, active);
            if let Some(at) = active.timer_at {
                timers.insert((at, *txn));
            }
        }
        assert_eq!(timers, self.timers, "timers differ from the txns' timers");
        for (lsn, (txn, _)) in &self.pending {
            assert!(*lsn < self.next_lsn, "lsn {lsn} pending but never issued");
            assert!(self.knows(*txn), "pending record of forgotten txn {txn}");
        }
        for (lsn, sends) in &self.held {
            assert!(
                self.pending.contains_key(lsn),
                "sends held on lsn {lsn}, which is not pending"
            );
            assert!(sends.len() <= PARTICIPANTS_PER_TXN_MAX);
        }
        let mut durable = 0;
        for (txn, done) in &self.done {
            assert!(done.waiters.len() <= WAITERS_PER_TXN_MAX);
            match done.pending {
                Some(lsn) => {
                    assert_eq!(
                        self.pending.get(&lsn).map(|(txn, _)| txn),
                        Some(txn),
                        "done record not pending"
                    );
                    assert!(
                        done.end != End::Committed,
                        "committed before its record was durable"
                    );
                }
                None => {
                    assert!(done.waiters.is_empty(), "waiters on a durable outcome");
                    durable += 1;
                }
            }
        }
        assert_eq!(durable, self.finished.len(), "finished list out of step");
        assert!(self.finished.len() <= self.config.finished_txns_max);
    }

    /// The lock table holds exactly what the lock holders need: each active txn holds every
    /// key it touches, exclusively iff it writes it; each read hold its keys, shared; and
    /// nothing else holds a lock.
    fn check_locks(&self) {
        let mut expected: BTreeMap<String, (BTreeSet<TxnId>, Option<TxnId>)> = BTreeMap::new();
        for (txn, active) in &self.active {
            for (key, mode) in locks::modes_of_entries(&active.entries) {
                let slot = expected.entry(key).or_default();
                match mode {
                    Mode::Shared => {
                        slot.0.insert(*txn);
                    }
                    Mode::Exclusive => slot.1 = Some(*txn),
                }
            }
        }
        for (txn, hold) in &self.read_holds {
            assert!(
                !self.active.contains_key(txn),
                "txn {txn} both active and read-holding"
            );
            for key in &hold.keys {
                expected.entry(key.clone()).or_default().0.insert(*txn);
            }
        }
        let hold_timers: BTreeSet<(Millis, TxnId)> = self
            .read_holds
            .iter()
            .map(|(txn, hold)| (hold.until, *txn))
            .collect();
        assert_eq!(
            hold_timers, self.hold_timers,
            "hold timers differ from the holds"
        );
        assert!(
            self.active.len() + self.read_holds.len() <= self.config.active_txns_max,
            "more lock holders than active_txns_max"
        );
        let mut seen = 0;
        for (key, lock) in self.locks.iter() {
            let (readers, writer) = expected
                .get(key)
                .unwrap_or_else(|| panic!("lock on {key:?} held by no txn that touches it"));
            match lock {
                locks::Lock::Exclusive(holder) => {
                    assert!(
                        readers.is_empty(),
                        "{key:?}: readers {readers:?} beside writer {holder}"
                    );
                    assert_eq!(writer, &Some(*holder), "{key:?}: exclusive holder");
                }
                locks::Lock::Shared(holders) => {
                    assert!(!holders.is_empty(), "{key:?}: empty shared lock kept");
                    assert_eq!(writer, &None, "{key:?}: writer holds no exclusive lock");
                    assert_eq!(holders, readers, "{key:?}: shared holders");
                }
            }
            seen += 1;
        }
        assert_eq!(seen, expected.len(), "some touched key is not locked");
        assert!(
            self.locks.len()
                <= self
                    .config
                    .active_txns_max
                    .saturating_mul(self.config.ops_per_txn_max),
            "lock table beyond its bound"
        );
    }

    fn check_active(&self, txn: TxnId, active: &Active) {
        let allowed: &[TxnState] = match active.protocol {
            Protocol::TwoPhase => &[TxnState::Prepared, TxnState::Committed],
            Protocol::ThreePhase => &[
                TxnState::Waiting,
                TxnState::PreCommitted,
                TxnState::Committed,
            ],
        };
        assert!(
            allowed.contains(&active.target),
            "txn {txn}: target {:?} not a {} state",
            active.target,
            active.protocol.as_str()
        );
        if let Some(durable) = active.durable {
            assert!(allowed.contains(&durable), "txn {txn}: durable {durable:?}");
            assert!(
                rank(durable) <= rank(active.target),
                "txn {txn}: durable {durable:?} beyond target {:?}",
                active.target
            );
        } else {
            assert_eq!(
                active.target,
                voted_state(active.protocol),
                "txn {txn} moved on before its vote was durable"
            );
        }
        if active.durable != Some(active.target) {
            assert!(
                self.pending.values().any(|(pending, _)| *pending == txn),
                "txn {txn} moving to {:?} with no record pending",
                active.target
            );
        }
        assert_eq!(
            active.timer_at.is_some(),
            active.is_undecided(),
            "txn {txn}: a timer iff voted and undecided"
        );
        assert!(active.termination.is_none() || active.is_undecided());
        assert!(
            active.termination.is_none() || active.protocol == Protocol::ThreePhase,
            "txn {txn}: termination protocol under 2PC"
        );
        if let Some(termination) = &active.termination {
            termination.check(self.node_id, active.recovered, &active.peers);
        }
        assert!(active.waiters.len() <= WAITERS_PER_TXN_MAX);
        for waiter in &active.waiters {
            if let Some(durable) = active.durable {
                assert!(
                    waiter.wants == Wants::State
                        || active_answer(txn, active, waiter.wants, durable).is_none(),
                    "txn {txn}: waiter {waiter:?} could have been answered"
                );
            }
        }
        assert!(active.backoff_ms <= self.config.decision_query_backoff_max_ms);
        assert!(!active.peers.contains(&self.node_id));
        assert!(
            active
                .undecided_peers
                .iter()
                .all(|p| active.peers.contains(p))
        );
    }
}

/// The fields of a Prepare, passed to [`Participant::vote`].
struct PrepareRequest<'a> {
    from: ReplyTo,
    id: RequestId,
    txn: TxnId,
    protocol: Protocol,
    ops: &'a [Op],
    timeout_ms: u64,
    participants: &'a [NodeId],
    values: &'a BTreeMap<String, Option<Value>>,
}

/// The state a YES vote records.
fn voted_state(protocol: Protocol) -> TxnState {
    match protocol {
        Protocol::TwoPhase => TxnState::Prepared,
        Protocol::ThreePhase => TxnState::Waiting,
    }
}

/// States in the order they move forward (`Aborted` is never an active txn's state).
fn rank(state: TxnState) -> u8 {
    match state {
        TxnState::Prepared | TxnState::Waiting => 1,
        TxnState::PreCommitted => 2,
        TxnState::Committed => 3,
        TxnState::Aborted => 4,
    }
}

/// Whether a reply saying "aborted" waits for the `Aborted` record. A state told to a peer
/// always does (the peer may decide on it); under 2PC votes and Acks do not (presumed
/// abort: a lost `Aborted` leaves the txn in doubt, and the coordinator answers abort).
fn holds_abort(protocol: Protocol, wants: Wants) -> bool {
    protocol == Protocol::ThreePhase || wants == Wants::State
}

/// What an active txn's waiter hears once `state` is durable (`None`: it waits on).
fn active_answer(
    txn: TxnId,
    active: &Active,
    wants: Wants,
    state: TxnState,
) -> Option<FromParticipant> {
    match (wants, state) {
        (Wants::Vote, _) => Some(vote_msg(txn, Vote::Yes, active.reads.clone())),
        (Wants::PreCommitAck, TxnState::PreCommitted | TxnState::Committed) => {
            Some(ack_msg(txn, outcome_of(state)))
        }
        (Wants::DecideAck, TxnState::Committed) => Some(ack_msg(txn, Outcome::Committed)),
        (Wants::State, state) => Some(state_msg(txn, state, active.recovered)),
        _ => None,
    }
}

/// What a finished txn's waiter hears.
fn done_answer(txn: TxnId, done: &Done, wants: Wants) -> FromParticipant {
    match (&done.end, wants) {
        (End::Aborted { reason }, Wants::Vote) => vote_msg(txn, no(reason), Vec::new()),
        (End::Aborted { .. }, Wants::PreCommitAck | Wants::DecideAck) => {
            ack_msg(txn, Outcome::Aborted)
        }
        (End::Aborted { .. }, Wants::State) => state_msg(txn, TxnState::Aborted, false),
        (End::Committed, Wants::Vote) => vote_msg(txn, Vote::Yes, done.reads.clone()),
        (End::Committed, Wants::PreCommitAck | Wants::DecideAck) => {
            ack_msg(txn, Outcome::Committed)
        }
        (End::Committed, Wants::State) => state_msg(txn, TxnState::Committed, false),
        (End::ReadOnly, Wants::Vote) => vote_msg(txn, Vote::ReadOnly, done.reads.clone()),
        (End::ReadOnly, Wants::State) => read_only_state(txn),
        (End::ReadOnly, Wants::PreCommitAck | Wants::DecideAck) => FromParticipant::Refused {
            reason: format!("txn {txn} was voted read-only here"),
        },
    }
}

/// A read-only voter does not know the outcome: it answers like a 2PC participant in doubt
/// (`Prepared`), which resolves nothing and which a termination leader leaves out.
fn read_only_state(txn: TxnId) -> FromParticipant {
    state_msg(txn, TxnState::Prepared, false)
}

/// A `StateReply`: `recovered` only while the txn is undecided after a restart (a decided
/// state is final whoever tells it).
fn state_msg(txn: TxnId, state: TxnState, recovered: bool) -> FromParticipant {
    let decided = matches!(state, TxnState::Committed | TxnState::Aborted);
    FromParticipant::StateReply {
        txn,
        state,
        recovered: recovered && !decided,
    }
}

fn outcome_of(state: TxnState) -> Outcome {
    match state {
        TxnState::Committed => Outcome::Committed,
        TxnState::Aborted => Outcome::Aborted,
        TxnState::PreCommitted => Outcome::PreCommitted,
        TxnState::Prepared | TxnState::Waiting => Outcome::Unknown,
    }
}

fn decided_outcome(decision: Decision) -> Outcome {
    match decision {
        Decision::Commit => Outcome::Committed,
        Decision::Abort => Outcome::Aborted,
    }
}

/// Moves a txn's timer (`slot`) to `at` in the timer table.
fn set_timer(
    timers: &mut BTreeSet<(Millis, TxnId)>,
    txn: TxnId,
    slot: &mut Option<Millis>,
    at: Option<Millis>,
) {
    if let Some(old) = slot.take() {
        timers.remove(&(old, txn));
    }
    if let Some(at) = at {
        timers.insert((at, txn));
        *slot = Some(at);
    }
}

/// Holds a request until its txn's next record is durable. Past `WAITERS_PER_TXN_MAX` the
/// oldest waiter is answered with an error now (into `outputs`), so its sender's slot frees.
fn push_waiter(
    waiters: &mut Vec<Waiter>,
    outputs: &mut VecDeque<Output>,
    txn: TxnId,
    waiter: Waiter,
) {
    if waiters.len() >= WAITERS_PER_TXN_MAX {
        let oldest = waiters.remove(0);
        warn!(%txn, peer = %oldest.to.peer, "too many duplicate requests waiting; the oldest is answered as superseded");
        outputs.push_back(Output::Reply {
            to: oldest.to,
            id: oldest.id,
            msg: FromParticipant::Refused {
                reason: SUPERSEDED_REASON.to_string(),
            },
        });
    }
    waiters.push(waiter);
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

fn vote_msg(txn: TxnId, vote: Vote, reads: Vec<Read>) -> FromParticipant {
    FromParticipant::Vote { txn, vote, reads }
}

fn ack_msg(txn: TxnId, outcome: Outcome) -> FromParticipant {
    FromParticipant::Ack { txn, outcome }
}
