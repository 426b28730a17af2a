//! The atomic-commit coordinator as a pure state machine: 2PC (presumed abort) and 3PC
//! (Skeen's CanCommit / PreCommit / DoCommit). `handle` an input, then drain
//! `poll_output`; timers via `poll_timeout` / `handle_timeout`. No IO, no clock, no RNG.
//!
//! Presumed abort (both protocols): an abort decided while collecting votes is never
//! logged and its acks are ignored; a transaction the coordinator has no record of is
//! answered `Abort`. A commit is logged (`Persist Decided`) and nothing that reveals it
//! leaves the core before `Persisted` for that record: that is the "durable before
//! visible" rule, and `check_invariants` checks it.
//!
//! 3PC (the transitions live in `three_phase.rs`): the `Decided{Commit}` record is the
//! *precommit*; after it is durable the YES voters get `PreCommit`, then `Decide{Commit}`
//! (DoCommit) once every PreCommit is acked or the ack timeout passed. Once the precommit
//! is logged the coordinator never aborts on its own; it adopts an abort only when a
//! participant reports one (the termination protocol decided it: see `Record::AbortAdopted`).
//! What the client hears and what the log says follow the participants' answers, never
//! only the coordinator's own record: see `three_phase.rs`.
//!
//! `Protocol` is matched exhaustively where the protocols differ, so a new protocol
//! forces every such place to say what it does.

mod three_phase;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use wire::{
    Answer, Decision, FromCoordinator, FromParticipant, NodeId, Op, Outcome, Protocol, Read,
    RequestId, ToCoordinator, ToParticipant, TxnId, TxnResult, TxnSpec, TxnState, Vote,
};

pub use validate::validate;

/// A point in time in milliseconds, from a clock only the shell reads.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Millis(pub u64);

impl Millis {
    pub fn plus(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
}

/// Log sequence number: the order in which records were handed to the store.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Lsn(pub u64);

/// The shell's opaque handle on a waiting client request; the core only hands it back.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ClientRef {
    pub channel: u64,
    pub request: u64,
}

/// Bounds on what one client may ask for (DESIGN §10).
#[derive(Clone, Hash, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Transactions the core tracks at once, including decided ones awaiting acks and
    /// `Ended` records not yet durable; past it a Submit is rejected as overload.
    pub txns_in_flight_max: usize,
    /// Operations in one transaction, over all its participants.
    pub ops_per_txn_max: usize,
    pub key_bytes_max: usize,
    pub value_bytes_max: usize,
    /// Bounds of a spec's `timeout_ms`. For 3PC the timeout is the participants' waiting
    /// timeout and votes are due `precommit_margin_ms` before it, so a 3PC timeout must
    /// be at least `timeout_ms_min + precommit_margin_ms`.
    pub timeout_ms_min: u64,
    pub timeout_ms_max: u64,
}

pub const TXNS_IN_FLIGHT_MAX_DEFAULT: usize = 10_000;
pub const OPS_PER_TXN_MAX_DEFAULT: usize = 1_000;
pub const KEY_BYTES_MAX_DEFAULT: usize = 1_024;
pub const VALUE_BYTES_MAX_DEFAULT: usize = 8 * 1_024;
/// The wire's default heartbeat interval; the core only uses it to validate timeouts.
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 100;
/// Every timeout must span at least this many heartbeat intervals: a shorter one would
/// fire before a heartbeat or a reconnect could tell a slow peer from a dead one.
pub const TIMEOUT_HEARTBEATS_MIN: u64 = 3;
pub const TIMEOUT_MS_MIN_DEFAULT: u64 = TIMEOUT_HEARTBEATS_MIN * HEARTBEAT_INTERVAL_MS_DEFAULT;
pub const TIMEOUT_MS_MAX_DEFAULT: u64 = 60_000;
/// No configured timeout or interval may exceed an hour.
pub const TIMEOUT_MS_LIMIT: u64 = 60 * 60 * 1_000;
pub const DECIDE_RESEND_MS_DEFAULT: u64 = 1_000;
/// 3PC: votes must all be in this long before the participants' waiting timeout, so a
/// PreCommit sent then still reaches them (log write + network) before it fires.
pub const PRECOMMIT_MARGIN_MS_DEFAULT: u64 = 2 * HEARTBEAT_INTERVAL_MS_DEFAULT;
/// 3PC: how long PreCommit acks are awaited before a silent participant is treated as
/// failed and DoCommit goes out anyway (the time the wire takes to declare it dead).
pub const PRECOMMIT_ACK_TIMEOUT_MS_DEFAULT: u64 = 10 * HEARTBEAT_INTERVAL_MS_DEFAULT;
/// Room for a message's framing, ids and per-op encoding beyond its keys and values.
const MSG_OVERHEAD_BYTES_MAX: usize = 64 * 1_024;
const OP_OVERHEAD_BYTES_MAX: usize = 64;

// The largest Prepare (or Vote carrying reads) a valid spec can produce must fit in a frame.
const _: () = assert!(
    OPS_PER_TXN_MAX_DEFAULT
        * (KEY_BYTES_MAX_DEFAULT + VALUE_BYTES_MAX_DEFAULT + OP_OVERHEAD_BYTES_MAX)
        + MSG_OVERHEAD_BYTES_MAX
        < wire::frame::DEFAULT_MAX_FRAME_LEN
);
// The defaults pass `Config::validate`.
const _: () = assert!(PRECOMMIT_MARGIN_MS_DEFAULT >= HEARTBEAT_INTERVAL_MS_DEFAULT);
const _: () = assert!(
    PRECOMMIT_ACK_TIMEOUT_MS_DEFAULT >= TIMEOUT_HEARTBEATS_MIN * HEARTBEAT_INTERVAL_MS_DEFAULT
);
const _: () =
    assert!(TIMEOUT_MS_MIN_DEFAULT + PRECOMMIT_MARGIN_MS_DEFAULT <= TIMEOUT_MS_MAX_DEFAULT);
const _: () = assert!(DECIDE_RESEND_MS_DEFAULT >= HEARTBEAT_INTERVAL_MS_DEFAULT);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            txns_in_flight_max: TXNS_IN_FLIGHT_MAX_DEFAULT,
            ops_per_txn_max: OPS_PER_TXN_MAX_DEFAULT,
            key_bytes_max: KEY_BYTES_MAX_DEFAULT,
            value_bytes_max: VALUE_BYTES_MAX_DEFAULT,
            timeout_ms_min: TIMEOUT_MS_MIN_DEFAULT,
            timeout_ms_max: TIMEOUT_MS_MAX_DEFAULT,
        }
    }
}

/// What the core needs to know about its cluster.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Config {
    /// Every participant a transaction may name.
    pub participants: BTreeSet<NodeId>,
    pub limits: Limits,
    /// How often `Decide{Commit}` (and, in 3PC, `PreCommit` / `StateQuery`) is re-sent
    /// to an up participant whose answer is missing (covers a request the channel could
    /// not queue, or a participant that lost it).
    pub decide_resend_ms: u64,
    /// The channels' heartbeat interval: every timeout must span several of them.
    pub heartbeat_interval_ms: u64,
    /// 3PC: votes are due this long before the participants' waiting timeout (the spec's
    /// `timeout_ms`, counted from CanCommit); all YES later than that aborts.
    pub precommit_margin_ms: u64,
    /// 3PC: PreCommit acks are awaited this long; then DoCommit goes to every YES voter.
    pub precommit_ack_timeout_ms: u64,
}

impl Config {
    pub fn new(participants: impl IntoIterator<Item = NodeId>) -> Self {
        Config {
            participants: participants.into_iter().collect(),
            limits: Limits::default(),
            decide_resend_ms: DECIDE_RESEND_MS_DEFAULT,
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS_DEFAULT,
            precommit_margin_ms: PRECOMMIT_MARGIN_MS_DEFAULT,
            precommit_ack_timeout_ms: PRECOMMIT_ACK_TIMEOUT_MS_DEFAULT,
        }
    }

    /// Checks the timing settings against each other; `Err` names the setting to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |what: String| Err(ConfigError(what));
        let heartbeat = self.heartbeat_interval_ms;
        if heartbeat == 0 || heartbeat > TIMEOUT_MS_LIMIT {
            return fail(format!(
                "heartbeat interval {heartbeat} ms outside 1..={TIMEOUT_MS_LIMIT} ms"
            ));
        }
        let spans = TIMEOUT_HEARTBEATS_MIN * heartbeat;
        let spans_text = format!("{TIMEOUT_HEARTBEATS_MIN} heartbeats of {heartbeat} ms");
        let limits = &self.limits;
        let checks = [
            (
                "timeout_ms_min",
                limits.timeout_ms_min,
                spans,
                spans_text.clone(),
            ),
            (
                "timeout_ms_max",
                limits.timeout_ms_max,
                limits.timeout_ms_min,
                "timeout_ms_min".to_string(),
            ),
            (
                "precommit_ack_timeout_ms",
                self.precommit_ack_timeout_ms,
                spans,
                spans_text,
            ),
            (
                "precommit_margin_ms",
                self.precommit_margin_ms,
                heartbeat,
                "one heartbeat".to_string(),
            ),
            (
                "decide_resend_ms",
                self.decide_resend_ms,
                heartbeat,
                "one heartbeat".to_string(),
            ),
        ];
        for (name, value, min, min_text) in checks {
            if value < min {
                return fail(format!(
                    "{name} {value} ms must be at least {min_text} ({min} ms)"
                ));
            }
            if value > TIMEOUT_MS_LIMIT {
                return fail(format!(
                    "{name} {value} ms exceeds the limit of {TIMEOUT_MS_LIMIT} ms"
                ));
            }
        }
        if limits
            .timeout_ms_min
            .saturating_add(self.precommit_margin_ms)
            > limits.timeout_ms_max
        {
            return fail(format!(
                "timeout_ms_max {} ms leaves no valid 3pc timeout: it must be at least \
                 timeout_ms_min {} ms + precommit_margin_ms {} ms",
                limits.timeout_ms_max, limits.timeout_ms_min, self.precommit_margin_ms
            ));
        }
        if limits.txns_in_flight_max == 0 || limits.ops_per_txn_max == 0 {
            return fail("txns_in_flight_max and ops_per_txn_max must be at least 1".to_string());
        }
        Ok(())
    }
}

/// A configuration the core refuses, with what to change.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("invalid coordinator configuration: {0}")]
pub struct ConfigError(pub String);

/// Why the shell could not hand a message to a participant's channel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SendFailure {
    /// The channel's send queue is full: the participant is not keeping up.
    Overloaded,
    /// No open channel to the participant.
    Closed,
}

/// A logged commit without an end, as the store recovers it at startup (3PC: a logged
/// precommit; `unfinished` computes the same from a list of records).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RecoveredTxn {
    pub txn: TxnId,
    pub protocol: Protocol,
    /// The participants that voted Yes and must apply the commit.
    pub participants: Vec<NodeId>,
}

/// Everything that can happen to the coordinator.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Input {
    /// A client submits a transaction; the shell made `txn` (a fresh v7 id).
    Submit {
        client: ClientRef,
        txn: TxnId,
        spec: TxnSpec,
    },
    /// A participant's response to one of our requests (`Vote`, `Ack`, `StateReply`).
    Response {
        from: NodeId,
        msg: FromParticipant,
    },
    /// A participant's request (`DecisionQuery`); answered with `Output::Reply`.
    Request {
        from: NodeId,
        id: RequestId,
        msg: ToCoordinator,
    },
    /// The record handed over as `Persist{lsn}` is durable.
    Persisted {
        lsn: Lsn,
    },
    /// A `Send` to `to` about `txn` did not reach the channel.
    SendFailed {
        to: NodeId,
        txn: TxnId,
        failure: SendFailure,
    },
    PeerUp {
        peer: NodeId,
    },
    PeerDown {
        peer: NodeId,
    },
    /// Startup: the log's commits without an end.
    Recovered {
        txns: Vec<RecoveredTxn>,
    },
}

/// A decision-log record.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Record {
    /// The commit decision (3PC: the precommit). Only commits are logged.
    Decided {
        txn: TxnId,
        protocol: Protocol,
        decision: Decision,
        /// The participants that must learn the decision (the Yes voters).
        participants: Vec<NodeId>,
    },
    /// Every participant acked: recovery can skip the transaction.
    Ended { txn: TxnId },
    /// 3PC: a participant reported that it aborted (its termination protocol decided
    /// while the coordinator was down or cut off), so the logged precommit is turned
    /// into an abort and the transaction ends (the decision row becomes 'abort', ended).
    AbortAdopted { txn: TxnId, reason: String },
}

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
            Record::Decided { .. } => {}
            Record::Ended { txn } | Record::AbortAdopted { txn, .. } => {
                open.remove(txn);
            }
        }
    }
    open.into_values().collect()
}

/// Everything the core asks the shell to do.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Output {
    /// A request to a participant (`Prepare`, `PreCommit`, `Decide`, `StateQuery`).
    Send { to: NodeId, msg: ToParticipant },
    /// The response to a participant's request.
    Reply {
        to: NodeId,
        id: RequestId,
        msg: FromCoordinator,
    },
    /// Make `record` durable, then report `Persisted{lsn}` (in lsn order).
    Persist { lsn: Lsn, record: Record },
    ClientResult {
        client: ClientRef,
        txn: TxnId,
        result: TxnResult,
    },
}

/// Where a transaction stands, for status reports.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum TxnPhase {
    /// Prepare (3PC: CanCommit) sent; waiting for votes.
    Collecting,
    /// All voted Yes/ReadOnly; the commit record (3PC: precommit) is not yet durable.
    Logging,
    /// 3PC: the precommit is durable; waiting for PreCommit acks.
    PreCommitting,
    /// The commit is durable (3PC: DoCommit sent); waiting for acks.
    Committing,
    /// 3PC recovery: a logged precommit without end; asking the participants' states.
    Resolving,
    /// 3PC: a participant reported an abort; the adopted abort is not yet durable.
    LoggingAbort,
}

impl TxnPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            TxnPhase::Collecting => "collecting votes",
            TxnPhase::Logging => "logging commit",
            TxnPhase::PreCommitting => "precommitted, awaiting precommit acks",
            TxnPhase::Committing => "committed, awaiting acks",
            TxnPhase::Resolving => "recovered, asking participants' states",
            TxnPhase::LoggingAbort => "logging adopted abort",
        }
    }
}

/// A broken core invariant: a bug, reported with what was seen.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("coordinator invariant violated: {0}")]
pub struct InvariantViolation(pub String);

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum PartState {
    /// The Prepare never reached the channel: the participant cannot have prepared.
    Unsent,
    AwaitingVote,
    Yes,
    ReadOnly,
    No,
    /// 3PC: PreCommit sent (or owed while it is down); no ack yet.
    AwaitingPreAck,
    /// 3PC: acked the PreCommit (PreCommitted, or Committed by a termination leader).
    PreAcked,
    /// 3PC: no PreCommit ack by the ack timeout, or went down: treated as failed, it
    /// gets DoCommit with the others (and PreCommit again if it comes back first).
    Silent,
    /// 3PC recovery: StateQuery sent (or owed while it is down); no reply yet.
    AwaitingState,
    /// 3PC recovery: replied Waiting or PreCommitted (Prepared is taken as Waiting).
    /// `recovered`: the participant restarted since its vote, so it never decides on its
    /// own again (an operational one may still lead a termination round and decide).
    Reported {
        state: TxnState,
        recovered: bool,
    },
    /// 3PC: the participant reported that it aborted (or, answering a DoCommit, that it
    /// has no record of the transaction): it will never commit.
    Aborted,
    AwaitingAck,
    /// The commit is applied there: it acked the DoCommit (3PC: or answered a PreCommit
    /// or a StateQuery with Committed). 2PC also counts a contradicting ack here (logged).
    Acked,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Part {
    node: NodeId,
    /// Kept while collecting votes (for a re-sent Prepare), dropped at the decision.
    ops: Vec<Op>,
    state: PartState,
    reads: Vec<Read>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Phase {
    Collecting {
        /// 2PC: submission + timeout. 3PC: CanCommit + timeout - precommit margin, the
        /// last moment a PreCommit is safe (see `three_phase.rs`).
        votes_due: Millis,
    },
    Logging {
        lsn: Lsn,
        /// 3PC: the PreCommit deadline (`Collecting::votes_due`), kept while the
        /// precommit is written: a record durable at or after it sends no PreCommit.
        precommit_due: Option<Millis>,
    },
    PreCommitting {
        /// `None` in recovery: every PreCommit must be acked (nobody is presumed failed).
        acks_due: Option<Millis>,
        resend_at: Millis,
    },
    Committing {
        client_due: Option<Millis>,
        resend_at: Millis,
    },
    Resolving {
        resend_at: Millis,
    },
    LoggingAbort {
        lsn: Lsn,
    },
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Txn {
    protocol: Protocol,
    timeout_ms: u64,
    /// `None` once the client has its result (or for a recovered transaction).
    client: Option<ClientRef>,
    parts: Vec<Part>,
    phase: Phase,
    /// The entry this transaction has in `Coordinator::timers`.
    wake_at: Option<Millis>,
    /// 3PC: why the commit was turned into an abort (set in `LoggingAbort`).
    abort_reason: Option<String>,
    /// 3PC: the precommit record became durable after the PreCommit deadline, so no
    /// PreCommit went out and the abort is adopted with no participant reporting one.
    precommit_late: bool,
    /// `Release` went to the ReadOnly voters (every vote was in): not sent again at an abort.
    released: bool,
}

impl Txn {
    fn part_mut(&mut self, node: NodeId) -> Option<&mut Part> {
        self.parts.iter_mut().find(|part| part.node == node)
    }

    fn reads(&self) -> Vec<(NodeId, Vec<Read>)> {
        self.parts
            .iter()
            .filter(|part| !part.reads.is_empty())
            .map(|part| (part.node, part.reads.clone()))
            .collect()
    }

    fn nodes(&self) -> Vec<NodeId> {
        self.parts.iter().map(|part| part.node).collect()
    }

    /// The participants in `state`, by id (for reasons and logs).
    fn nodes_in(&self, state: PartState) -> Vec<NodeId> {
        let nodes: BTreeSet<NodeId> = self
            .parts
            .iter()
            .filter(|part| part.state == state)
            .map(|part| part.node)
            .collect();
        nodes.into_iter().collect()
    }

    /// Whether the client may hear "committed" before every ack is in. 2PC: yes, the
    /// logged commit is final. 3PC: only once a participant confirmed that it committed
    /// and none refused: until then the participants' termination protocol may have
    /// aborted the precommit (and a recovering coordinator would adopt that abort).
    fn commit_known(&self) -> bool {
        let has = |state| self.parts.iter().any(|part| part.state == state);
        match self.protocol {
            Protocol::TwoPhase => true,
            Protocol::ThreePhase => has(PartState::Acked) && !has(PartState::Aborted),
        }
    }

    fn phase_name(&self) -> TxnPhase {
        match self.phase {
            Phase::Collecting { .. } => TxnPhase::Collecting,
            Phase::Logging { .. } => TxnPhase::Logging,
            Phase::PreCommitting { .. } => TxnPhase::PreCommitting,
            Phase::Committing { .. } => TxnPhase::Committing,
            Phase::Resolving { .. } => TxnPhase::Resolving,
            Phase::LoggingAbort { .. } => TxnPhase::LoggingAbort,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Pending {
    Decided(TxnId),
    Ended(TxnId),
    AbortAdopted(TxnId),
}

/// The coordinator state machine. `Clone`, `Eq` and `Hash` (every map ordered) let the
/// model checker copy a state and recognise one it has seen.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Coordinator {
    config: Config,
    /// Ordered by id so every iteration (and so every output order) is deterministic.
    txns: BTreeMap<TxnId, Txn>,
    up: BTreeSet<NodeId>,
    /// Records handed out as `Persist` and not yet reported `Persisted`.
    pending: BTreeMap<Lsn, Pending>,
    /// How many of `pending` are `Ended` records (counted against the in-flight limit).
    ended_pending: usize,
    next_lsn: u64,
    /// One entry per transaction with a deadline: `(when, txn)`.
    timers: BTreeSet<(Millis, TxnId)>,
    outputs: VecDeque<Output>,
}

impl Coordinator {
    /// The caller should have checked `config.validate()` (the shell does).
    pub fn new(config: Config) -> Self {
        Coordinator {
            config,
            txns: BTreeMap::new(),
            up: BTreeSet::new(),
            pending: BTreeMap::new(),
            ended_pending: 0,
            next_lsn: 1,
            timers: BTreeSet::new(),
            outputs: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn handle(&mut self, now: Millis, input: Input) {
        match input {
            Input::Submit { client, txn, spec } => self.on_submit(now, client, txn, spec),
            Input::Response { from, msg } => self.on_response(now, from, msg),
            Input::Request { from, id, msg } => self.on_request(from, id, msg),
            Input::Persisted { lsn } => self.on_persisted(now, lsn),
            Input::SendFailed { to, txn, failure } => self.on_send_failed(to, txn, failure),
            Input::PeerUp { peer } => self.on_peer_up(peer),
            Input::PeerDown { peer } => self.on_peer_down(now, peer),
            Input::Recovered { txns } => self.on_recovered(now, txns),
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest deadline of any transaction; call `handle_timeout` once it passes.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.timers.first().map(|(at, _)| *at)
    }

    pub fn handle_timeout(&mut self, now: Millis) {
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some(txn) = self.txns.get_mut(&id) {
                txn.wake_at = None;
            }
            self.on_txn_due(now, id);
        }
    }

    // ---- read-only accessors for status reports ----

    pub fn is_up(&self, peer: NodeId) -> bool {
        self.up.contains(&peer)
    }

    /// Transactions tracked, including `Ended` records not yet durable.
    pub fn txns_in_flight(&self) -> usize {
        self.txns.len() + self.ended_pending
    }

    pub fn txns_by_phase(&self) -> BTreeMap<TxnPhase, usize> {
        let mut counts = BTreeMap::new();
        for txn in self.txns.values() {
            *counts.entry(txn.phase_name()).or_insert(0) += 1;
        }
        counts
    }

    /// Like `txns_by_phase`, split by protocol (`"2pc"`, `"3pc"`).
    pub fn txns_by_protocol_and_phase(&self) -> BTreeMap<(&'static str, TxnPhase), usize> {
        let mut counts = BTreeMap::new();
        for txn in self.txns.values() {
            *counts
                .entry((txn.protocol.as_str(), txn.phase_name()))
                .or_insert(0) += 1;
        }
        counts
    }

    /// Per participant: transactions waiting for its vote, ack or state.
    pub fn in_flight_by_peer(&self) -> BTreeMap<NodeId, usize> {
        let mut counts: BTreeMap<NodeId, usize> =
            self.config.participants.iter().map(|&p| (p, 0)).collect();
        for part in self.txns.values().flat_map(|txn| &txn.parts) {
            if matches!(
                part.state,
                PartState::AwaitingVote
                    | PartState::AwaitingAck
                    | PartState::AwaitingPreAck
                    | PartState::AwaitingState
            ) {
                *counts.entry(part.node).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Transactions without a durable decision (collecting votes or logging the commit).
    pub fn undecided(&self) -> impl Iterator<Item = TxnId> + '_ {
        self.txns
            .iter()
            .filter(|(_, txn)| {
                matches!(txn.phase, Phase::Collecting { .. } | Phase::Logging { .. })
            })
            .map(|(id, _)| *id)
    }

    /// Durable commits (3PC: precommits) whose end is not logged yet: some ack is
    /// missing, or a recovered 3PC transaction is being resolved.
    pub fn decided_not_ended(&self) -> impl Iterator<Item = TxnId> + '_ {
        self.txns
            .iter()
            .filter(|(_, txn)| {
                !matches!(txn.phase, Phase::Collecting { .. } | Phase::Logging { .. })
            })
            .map(|(id, _)| *id)
    }

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
                Pending::Decided(id) if !matches!(phase(id), Some(Phase::Logging { lsn: at, .. }) if at == *lsn) =>
                {
                    return fail(format!(
                        "decided record {lsn:?} pending for txn {id} not logging"
                    ));
                }
                Pending::AbortAdopted(id)
                    if phase(id) != Some(Phase::LoggingAbort { lsn: *lsn }) =>
                {
                    return fail(format!(
                        "abort record {lsn:?} pending for txn {id} not logging it"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    // ---- transitions ----

    fn on_submit(&mut self, now: Millis, client: ClientRef, id: TxnId, spec: TxnSpec) {
        let valid = validate(&spec, &self.config.participants, &self.config.limits)
            .and_then(|()| self.validate_three_phase(&spec));
        let rejected = if let Err(reason) = valid {
            Some(reason)
        } else if self.txns.contains_key(&id) {
            Some(format!("duplicate transaction id {id}"))
        } else if self.txns_in_flight() >= self.config.limits.txns_in_flight_max {
            Some(format!(
                "coordinator overloaded: {} transactions in flight",
                self.txns_in_flight()
            ))
        } else {
            None
        };
        if let Some(reason) = rejected {
            self.outputs.push_back(Output::ClientResult {
                client,
                txn: id,
                result: TxnResult::Rejected { reason },
            });
            return;
        }
        if let Some((down, _)) = spec.parts.iter().find(|(node, _)| !self.up.contains(node)) {
            self.outputs.push_back(Output::ClientResult {
                client,
                txn: id,
                result: TxnResult::Aborted {
                    reason: format!("participant {down} is down"),
                },
            });
            return;
        }
        let parts: Vec<Part> = spec
            .parts
            .into_iter()
            .map(|(node, ops)| Part {
                node,
                ops,
                state: PartState::AwaitingVote,
                reads: Vec::new(),
            })
            .collect();
        let nodes: Vec<NodeId> = parts.iter().map(|part| part.node).collect();
        for part in &parts {
            self.outputs.push_back(Output::Send {
                to: part.node,
                msg: prepare(id, spec.protocol, spec.timeout_ms, &part.ops, &nodes),
            });
        }
        let votes_due = match spec.protocol {
            Protocol::TwoPhase => now.plus(spec.timeout_ms),
            Protocol::ThreePhase => self.precommit_deadline(now, spec.timeout_ms),
        };
        self.txns.insert(
            id,
            Txn {
                protocol: spec.protocol,
                timeout_ms: spec.timeout_ms,
                client: Some(client),
                parts,
                phase: Phase::Collecting { votes_due },
                wake_at: None,
                abort_reason: None,
                precommit_late: false,
                released: false,
            },
        );
        self.arm(id, Some(votes_due));
    }

    fn on_response(&mut self, now: Millis, from: NodeId, msg: FromParticipant) {
        match msg {
            FromParticipant::Vote { txn, vote, reads } => self.on_vote(now, from, txn, vote, reads),
            FromParticipant::Ack { txn, outcome } => self.on_ack(now, from, txn, outcome),
            FromParticipant::StateReply {
                txn,
                state,
                recovered,
            } => self.on_state_reply(now, from, txn, state, recovered),
            // Nothing waits for a release: it only shortens a read-only voter's hold.
            FromParticipant::Released { .. } => {}
            FromParticipant::Refused { reason } => {
                tracing::warn!(peer = %from, %reason, "participant refused a request");
            }
        }
    }

    fn on_vote(&mut self, now: Millis, from: NodeId, id: TxnId, vote: Vote, reads: Vec<Read>) {
        // A vote for a forgotten transaction is late (it was aborted: the participant got
        // or will get Decide{Abort}, or learns Abort by query) or a duplicate: ignore it.
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        let Phase::Collecting { votes_due } = txn.phase else {
            return;
        };
        let Some(part) = txn.part_mut(from) else {
            tracing::warn!(peer = %from, txn_id = %id, "vote from a non-participant, ignored");
            return;
        };
        if part.state != PartState::AwaitingVote {
            return;
        }
        match vote {
            Vote::Yes => {
                part.state = PartState::Yes;
                part.reads = reads;
            }
            Vote::ReadOnly => {
                part.state = PartState::ReadOnly;
                part.reads = reads;
            }
            Vote::No { reason } => {
                part.state = PartState::No;
                self.abort(id, format!("participant {from} voted no: {reason}"));
                return;
            }
        }
        if txn.parts.iter().any(|p| p.state == PartState::AwaitingVote) {
            return;
        }
        // The lock point: every participant holds its locks now, so the read-only voters
        // may drop theirs (the writers keep theirs until the outcome).
        self.release_read_only(id);
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        if txn.parts.iter().all(|p| p.state == PartState::ReadOnly) {
            // Nothing to apply anywhere: committed without a log record.
            let result = TxnResult::Committed { reads: txn.reads() };
            let client = txn.client.take();
            self.forget(id);
            if let Some(client) = client {
                self.outputs.push_back(Output::ClientResult {
                    client,
                    txn: id,
                    result,
                });
            }
            return;
        }
        let (protocol, timeout_ms) = (txn.protocol, txn.timeout_ms);
        let precommit_due = match protocol {
            Protocol::TwoPhase => None,
            Protocol::ThreePhase => {
                if let Some(reason) = self.too_late_to_precommit(now, votes_due, timeout_ms) {
                    self.abort(id, reason);
                    return;
                }
                Some(votes_due)
            }
        };
        self.log_commit(id, precommit_due);
    }

    /// All voted Yes/ReadOnly (and, for 3PC, in time): hands out the commit record.
    fn log_commit(&mut self, id: TxnId, precommit_due: Option<Millis>) {
        let lsn = self.next_lsn();
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        for part in &mut txn.parts {
            part.ops = Vec::new();
        }
        let participants: Vec<NodeId> = txn
            .parts
            .iter()
            .filter(|p| p.state == PartState::Yes)
            .map(|p| p.node)
            .collect();
        let protocol = txn.protocol;
        txn.phase = Phase::Logging { lsn, precommit_due };
        // No deadline while logging: the store answers or the node dies (a failed write is fatal).
        self.arm(id, None);
        self.pending.insert(lsn, Pending::Decided(id));
        self.outputs.push_back(Output::Persist {
            lsn,
            record: Record::Decided {
                txn: id,
                protocol,
                decision: Decision::Commit,
                participants,
            },
        });
    }

    fn on_ack(&mut self, now: Millis, from: NodeId, id: TxnId, outcome: Outcome) {
        // Acks for aborts and for forgotten transactions need nothing (presumed abort).
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        match txn.phase {
            Phase::Committing { .. } => {}
            Phase::PreCommitting { .. } => {
                self.on_precommit_ack(now, from, id, outcome);
                return;
            }
            Phase::LoggingAbort { .. } => {
                if outcome == Outcome::Committed {
                    self.committed_while_logging_abort(id, from);
                }
                return;
            }
            _ => return,
        }
        let protocol = txn.protocol;
        if protocol == Protocol::ThreePhase && outcome == Outcome::PreCommitted {
            // A late ack of the PreCommit, not of the DoCommit.
            return;
        }
        let Some(part) = txn.part_mut(from) else {
            return;
        };
        if part.state != PartState::AwaitingAck {
            return;
        }
        match (outcome, protocol) {
            (Outcome::Committed, _) => part.state = PartState::Acked,
            // The participant lost or overrode a Yes vote: its bug, not ours to repair.
            // Counted as acked so the commit can end; the error makes it visible.
            (_, Protocol::TwoPhase) => {
                tracing::error!(peer = %from, txn_id = %id, ?outcome, "participant acked a commit with another outcome");
                part.state = PartState::Acked;
            }
            // A termination protocol aborted it: the client and the log must say so.
            (_, Protocol::ThreePhase) => {
                self.commit_refused(id, from, outcome);
                return;
            }
        }
        self.tell_committed_if_known(id);
        self.end_commit_if_acked(id);
    }

    /// Committing with no ack missing: the client hears "committed" and the end is
    /// logged. 3PC: if a participant refused the DoCommit, `end_refused_commit` instead.
    fn end_commit_if_acked(&mut self, id: TxnId) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        if !matches!(txn.phase, Phase::Committing { .. })
            || txn.parts.iter().any(|p| p.state == PartState::AwaitingAck)
        {
            return;
        }
        if txn.parts.iter().any(|p| p.state == PartState::Aborted) {
            self.end_refused_commit(id);
            return;
        }
        let reads = txn.reads();
        let client = txn.client.take();
        self.forget(id);
        if let Some(client) = client {
            self.outputs.push_back(Output::ClientResult {
                client,
                txn: id,
                result: TxnResult::Committed { reads },
            });
        }
        self.log_ended(id);
    }

    /// Committing past the client's deadline (`client_due` gone, client still waiting):
    /// tells it "committed" as soon as that is known (`Txn::commit_known`).
    fn tell_committed_if_known(&mut self, id: TxnId) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        let due_passed = matches!(
            txn.phase,
            Phase::Committing {
                client_due: None,
                ..
            }
        );
        if !due_passed || !txn.commit_known() {
            return;
        }
        if let Some(client) = txn.client.take() {
            self.outputs.push_back(Output::ClientResult {
                client,
                txn: id,
                result: TxnResult::Committed { reads: txn.reads() },
            });
        }
    }

    /// The transaction is over and forgotten: its `Ended` record.
    fn log_ended(&mut self, id: TxnId) {
        // Lazy: nothing waits on the end record; losing it only means a re-sent Commit.
        let lsn = self.next_lsn();
        self.pending.insert(lsn, Pending::Ended(id));
        self.ended_pending += 1;
        self.outputs.push_back(Output::Persist {
            lsn,
            record: Record::Ended { txn: id },
        });
    }

    fn on_request(&mut self, from: NodeId, id: RequestId, msg: ToCoordinator) {
        let reply = match msg {
            ToCoordinator::DecisionQuery { txn } => {
                // 3PC: Commit only once DoCommit is going out. Before that a precommit
                // may still turn into an adopted abort, so the answer is Undecided.
                let answer = match self.txns.get(&txn).map(|t| t.phase) {
                    None => Answer::Abort,
                    Some(Phase::Committing { .. }) => Answer::Commit,
                    Some(_) => Answer::Undecided,
                };
                FromCoordinator::DecisionAnswer { txn, answer }
            }
        };
        self.outputs.push_back(Output::Reply {
            to: from,
            id,
            msg: reply,
        });
    }

    fn on_persisted(&mut self, now: Millis, lsn: Lsn) {
        let id = match self.pending.remove(&lsn) {
            Some(Pending::Decided(id)) => id,
            Some(Pending::Ended(_)) => {
                self.ended_pending -= 1;
                return;
            }
            Some(Pending::AbortAdopted(id)) => {
                self.on_abort_adopted_durable(id);
                return;
            }
            None => return,
        };
        let Some(txn) = self.txns.get(&id) else {
            return;
        };
        let precommit_due = match txn.phase {
            Phase::Logging { precommit_due, .. } => precommit_due,
            _ => None,
        };
        match txn.protocol {
            Protocol::TwoPhase => self.send_commit(now, id),
            Protocol::ThreePhase => match precommit_due {
                Some(due) if now >= due => self.precommit_durable_too_late(id, due),
                _ => self.send_precommit(now, id),
            },
        }
    }

    /// The commit is durable (3PC: every PreCommit acked or given up on): Decide{Commit}
    /// to every YES voter that is up, the others get it when they come back.
    fn send_commit(&mut self, now: Millis, id: TxnId) {
        let resend_ms = self.config.decide_resend_ms;
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        for part in &mut txn.parts {
            if matches!(
                part.state,
                PartState::Yes
                    | PartState::AwaitingPreAck
                    | PartState::PreAcked
                    | PartState::Silent
                    | PartState::AwaitingState
                    | PartState::Reported { .. }
            ) {
                part.state = PartState::AwaitingAck;
                if self.up.contains(&part.node) {
                    self.outputs.push_back(Output::Send {
                        to: part.node,
                        msg: decide(id, Decision::Commit),
                    });
                }
            }
        }
        let client_due = txn.client.map(|_| now.plus(txn.timeout_ms));
        let resend_at = now.plus(resend_ms);
        txn.phase = Phase::Committing {
            client_due,
            resend_at,
        };
        self.arm(id, Some(earliest(client_due, resend_at)));
        // 3PC: every YES voter may already have answered (Committed to a PreCommit, or
        // Aborted): nothing left to send.
        self.end_commit_if_acked(id);
    }

    fn on_send_failed(&mut self, to: NodeId, id: TxnId, failure: SendFailure) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        // A later-phase message that could not be queued is re-sent by the resend timer
        // or on PeerUp.
        if !matches!(txn.phase, Phase::Collecting { .. }) {
            return;
        }
        let Some(part) = txn.part_mut(to) else {
            return;
        };
        if part.state != PartState::AwaitingVote {
            return;
        }
        part.state = PartState::Unsent;
        let reason = match failure {
            SendFailure::Overloaded => {
                format!("participant {to} is overloaded: its send queue is full")
            }
            SendFailure::Closed => format!("participant {to} is down"),
        };
        self.abort(id, reason);
    }

    fn on_peer_up(&mut self, peer: NodeId) {
        self.up.insert(peer);
        // A new connection: whatever the old one carried may be lost. Every message is
        // idempotent at the participant, so re-send what is still unanswered.
        for (&id, txn) in &self.txns {
            let Some(part) = txn.parts.iter().find(|p| p.node == peer) else {
                continue;
            };
            let msg = match (txn.phase, part.state) {
                (Phase::Collecting { .. }, PartState::AwaitingVote) => {
                    prepare(id, txn.protocol, txn.timeout_ms, &part.ops, &txn.nodes())
                }
                (Phase::PreCommitting { .. }, PartState::AwaitingPreAck | PartState::Silent) => {
                    ToParticipant::PreCommit { txn: id }
                }
                (Phase::Committing { .. }, PartState::AwaitingAck) => decide(id, Decision::Commit),
                // A participant that reported an operational state may have restarted.
                (Phase::Resolving { .. }, state) if asks_state(state) => {
                    ToParticipant::StateQuery { txn: id }
                }
                _ => continue,
            };
            self.outputs.push_back(Output::Send { to: peer, msg });
        }
    }

    fn on_peer_down(&mut self, now: Millis, peer: NodeId) {
        self.up.remove(&peer);
        let mut aborts = Vec::new();
        let mut silent = Vec::new();
        for (&id, txn) in &self.txns {
            let Some(part) = txn.parts.iter().find(|p| p.node == peer) else {
                continue;
            };
            match (txn.phase, part.state, txn.protocol) {
                (Phase::Collecting { .. }, PartState::AwaitingVote, _) => aborts.push(id),
                // A read-only voter that went down may have restarted and lost its shared
                // locks (they are in memory only) before every vote is in: no lock point.
                (Phase::Collecting { .. }, PartState::ReadOnly, _) if txn.parts.len() > 1 => {
                    aborts.push(id);
                }
                // 3PC: a YES voter that is down could not get its PreCommit in time.
                (Phase::Collecting { .. }, PartState::Yes, Protocol::ThreePhase) => {
                    aborts.push(id);
                }
                (
                    Phase::PreCommitting {
                        acks_due: Some(_), ..
                    },
                    PartState::AwaitingPreAck,
                    _,
                ) => silent.push(id),
                _ => {}
            }
        }
        for id in aborts {
            self.abort(id, format!("participant {peer} is down"));
        }
        for id in silent {
            self.precommit_failed(now, id, peer);
        }
    }

    fn on_recovered(&mut self, now: Millis, recovered: Vec<RecoveredTxn>) {
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
                    decide(id, Decision::Commit),
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

    fn on_txn_due(&mut self, now: Millis, id: TxnId) {
        let resend_ms = self.config.decide_resend_ms;
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        match txn.phase {
            Phase::Collecting { votes_due } => {
                if votes_due > now {
                    self.arm(id, Some(votes_due));
                    return;
                }
                let missing: Vec<NodeId> = txn
                    .parts
                    .iter()
                    .filter(|p| p.state == PartState::AwaitingVote)
                    .map(|p| p.node)
                    .collect();
                self.abort(
                    id,
                    format!(
                        "timeout waiting for votes from {}",
                        participants_text(&missing)
                    ),
                );
            }
            Phase::Logging { .. } | Phase::LoggingAbort { .. } => {}
            Phase::PreCommitting { .. } | Phase::Resolving { .. } => {
                self.on_three_phase_due(now, id);
            }
            Phase::Committing {
                mut client_due,
                mut resend_at,
            } => {
                if client_due.is_some_and(|due| due <= now) {
                    // 2PC: the commit is durable and will reach every participant: the
                    // client may rely on it even though some ack is still missing. 3PC:
                    // only once a participant confirmed it (else it hears at that moment,
                    // or the truth once every ack is in).
                    client_due = None;
                    if txn.commit_known()
                        && let Some(client) = txn.client.take()
                    {
                        self.outputs.push_back(Output::ClientResult {
                            client,
                            txn: id,
                            result: TxnResult::Committed { reads: txn.reads() },
                        });
                    }
                }
                if resend_at <= now {
                    for part in &txn.parts {
                        if part.state == PartState::AwaitingAck && self.up.contains(&part.node) {
                            self.outputs.push_back(Output::Send {
                                to: part.node,
                                msg: decide(id, Decision::Commit),
                            });
                        }
                    }
                    resend_at = now.plus(resend_ms);
                }
                txn.phase = Phase::Committing {
                    client_due,
                    resend_at,
                };
                self.arm(id, Some(earliest(client_due, resend_at)));
            }
        }
    }

    // ---- helpers ----

    /// Aborts a collecting transaction (presumed abort, nothing logged): Decide{Abort}
    /// to every up participant that may have prepared, the reason to the client, and the
    /// transaction is forgotten. Never called once a commit record was handed out.
    fn abort(&mut self, id: TxnId, reason: String) {
        if let Some(txn) = self.txns.get(&id)
            && !matches!(txn.phase, Phase::Collecting { .. })
        {
            tracing::error!(txn_id = %id, phase = ?txn.phase, %reason, "bug: abort requested after the commit record; ignored");
            return;
        }
        let Some(txn) = self.forget(id) else {
            return;
        };
        for part in &txn.parts {
            let may_have_prepared = matches!(part.state, PartState::AwaitingVote | PartState::Yes);
            if may_have_prepared && self.up.contains(&part.node) {
                self.outputs.push_back(Output::Send {
                    to: part.node,
                    msg: decide(id, Decision::Abort),
                });
            }
        }
        // A read-only voter of an aborted txn holds its shared locks for nothing.
        if !txn.released {
            self.send_release(id, &txn);
        }
        if let Some(client) = txn.client {
            self.outputs.push_back(Output::ClientResult {
                client,
                txn: id,
                result: TxnResult::Aborted { reason },
            });
        }
    }

    /// Every vote is in: `Release` to each ReadOnly voter that is up (one that is not, or
    /// misses it, releases at its own timeout). Once per txn.
    fn release_read_only(&mut self, id: TxnId) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        if txn.released {
            return;
        }
        txn.released = true;
        let Some(txn) = self.txns.get(&id) else {
            return;
        };
        let sends = release_sends(id, txn, &self.up);
        self.outputs.extend(sends);
    }

    fn send_release(&mut self, id: TxnId, txn: &Txn) {
        let sends = release_sends(id, txn, &self.up);
        self.outputs.extend(sends);
    }

    fn forget(&mut self, id: TxnId) -> Option<Txn> {
        self.arm(id, None);
        self.txns.remove(&id)
    }

    /// Sets (or clears) the one timer of transaction `id`.
    fn arm(&mut self, id: TxnId, at: Option<Millis>) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        if let Some(old) = txn.wake_at.take() {
            self.timers.remove(&(old, id));
        }
        if let Some(at) = at {
            txn.wake_at = Some(at);
            self.timers.insert((at, id));
        }
    }

    fn next_lsn(&mut self) -> Lsn {
        let lsn = Lsn(self.next_lsn);
        self.next_lsn += 1;
        lsn
    }
}

fn prepare(
    txn: TxnId,
    protocol: Protocol,
    timeout_ms: u64,
    ops: &[Op],
    participants: &[NodeId],
) -> ToParticipant {
    ToParticipant::Prepare {
        txn,
        protocol,
        ops: ops.to_vec(),
        timeout_ms,
        participants: participants.to_vec(),
    }
}

/// `Release` for each ReadOnly voter of `txn` that is up. A txn on one participant has no
/// hold to release (its participant keeps no locks after a ReadOnly vote).
fn release_sends(id: TxnId, txn: &Txn, up: &BTreeSet<NodeId>) -> Vec<Output> {
    if txn.parts.len() < 2 {
        return Vec::new();
    }
    txn.parts
        .iter()
        .filter(|part| part.state == PartState::ReadOnly && up.contains(&part.node))
        .map(|part| Output::Send {
            to: part.node,
            msg: ToParticipant::Release { txn: id },
        })
        .collect()
}

fn decide(txn: TxnId, decision: Decision) -> ToParticipant {
    ToParticipant::Decide { txn, decision }
}

fn earliest(a: Option<Millis>, b: Millis) -> Millis {
    a.map_or(b, |a| a.min(b))
}

/// 3PC recovery: whether a participant in `state` is asked (again) for its state: until
/// it answered, and while its answer came from an operational participant, which may
/// still decide in a termination round.
fn asks_state(state: PartState) -> bool {
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
fn is_undecided_report(state: PartState) -> bool {
    matches!(
        state,
        PartState::Reported {
            state: TxnState::Waiting | TxnState::PreCommitted,
            ..
        }
    )
}

/// "participant 2" or "participants 2, 3".
fn participants_text(nodes: &[NodeId]) -> String {
    let list: Vec<String> = nodes.iter().map(NodeId::to_string).collect();
    match list.len() {
        1 => format!("participant {}", list[0]),
        _ => format!("participants {}", list.join(", ")),
    }
}

impl fmt::Display for TxnPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
