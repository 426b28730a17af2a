//! The 2PC presumed-abort coordinator as a pure state machine: `handle` an input, then
//! drain `poll_output`; timers via `poll_timeout` / `handle_timeout`. No IO, no clock, no RNG.
//!
//! Presumed abort: an abort is never logged and its acks are ignored; a transaction the
//! coordinator has no record of is answered `Abort`. A commit is logged (`Persist
//! Decided`) and nothing that reveals it leaves the core before `Persisted` for that
//! record: that is the "durable before visible" rule, and `check_invariants` checks it.
//!
//! 3PC will add phases to `Phase` and records to `Record`; `Protocol` is matched
//! exhaustively so adding it forces every place that must change to say so.

mod validate;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use wire::{
    Answer, Decision, Msg, NodeId, Op, Outcome, Protocol, Read, RequestId, TxnId, TxnResult,
    TxnSpec, Vote,
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Transactions the core tracks at once, including decided ones awaiting acks and
    /// `Ended` records not yet durable; past it a Submit is rejected as overload.
    pub txns_in_flight_max: usize,
    /// Operations in one transaction, over all its participants.
    pub ops_per_txn_max: usize,
    pub key_bytes_max: usize,
    pub value_bytes_max: usize,
    pub timeout_ms_min: u64,
    pub timeout_ms_max: u64,
}

pub const TXNS_IN_FLIGHT_MAX_DEFAULT: usize = 10_000;
pub const OPS_PER_TXN_MAX_DEFAULT: usize = 1_000;
pub const KEY_BYTES_MAX_DEFAULT: usize = 1_024;
pub const VALUE_BYTES_MAX_DEFAULT: usize = 8 * 1_024;
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

impl Default for Limits {
    fn default() -> Self {
        Limits {
            txns_in_flight_max: TXNS_IN_FLIGHT_MAX_DEFAULT,
            ops_per_txn_max: OPS_PER_TXN_MAX_DEFAULT,
            key_bytes_max: KEY_BYTES_MAX_DEFAULT,
            value_bytes_max: VALUE_BYTES_MAX_DEFAULT,
            timeout_ms_min: 10,
            timeout_ms_max: 60_000,
        }
    }
}

/// What the core needs to know about its cluster.
#[derive(Clone, Debug)]
pub struct Config {
    /// Every participant a transaction may name.
    pub participants: BTreeSet<NodeId>,
    pub limits: Limits,
    /// How often `Decide{Commit}` is re-sent to an up participant whose ack is missing
    /// (covers a request the channel could not queue, or a participant that lost it).
    pub decide_resend_ms: u64,
}

pub const DECIDE_RESEND_MS_DEFAULT: u64 = 1_000;

impl Config {
    pub fn new(participants: impl IntoIterator<Item = NodeId>) -> Self {
        Config {
            participants: participants.into_iter().collect(),
            limits: Limits::default(),
            decide_resend_ms: DECIDE_RESEND_MS_DEFAULT,
        }
    }
}

/// Why the shell could not hand a message to a participant's channel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SendFailure {
    /// The channel's send queue is full: the participant is not keeping up.
    Overloaded,
    /// No open channel to the participant.
    Closed,
}

/// A logged commit without an end, as the store recovers it at startup.
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
    /// A participant's response to one of our requests (`Vote`, `Ack`).
    Response {
        from: NodeId,
        msg: Msg,
    },
    /// A participant's request (`DecisionQuery`); answered with `Output::Reply`.
    Request {
        from: NodeId,
        id: RequestId,
        msg: Msg,
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
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Record {
    Decided {
        txn: TxnId,
        protocol: Protocol,
        decision: Decision,
        /// The participants that must learn the decision (the Yes voters).
        participants: Vec<NodeId>,
    },
    /// Every participant acked: recovery can skip the transaction.
    Ended { txn: TxnId },
}

/// Everything the core asks the shell to do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Output {
    /// A request to a participant (`Prepare`, `Decide`).
    Send { to: NodeId, msg: Msg },
    /// The response to a participant's request.
    Reply { to: NodeId, id: RequestId, msg: Msg },
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
    /// Prepare sent; waiting for votes.
    Collecting,
    /// All voted Yes/ReadOnly; the commit record is not yet durable.
    Logging,
    /// The commit is durable; waiting for acks.
    Committing,
}

impl TxnPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            TxnPhase::Collecting => "collecting votes",
            TxnPhase::Logging => "logging commit",
            TxnPhase::Committing => "committed, awaiting acks",
        }
    }
}

/// A broken core invariant: a bug, reported with what was seen.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("coordinator invariant violated: {0}")]
pub struct InvariantViolation(pub String);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PartState {
    /// The Prepare never reached the channel: the participant cannot have prepared.
    Unsent,
    AwaitingVote,
    Yes,
    ReadOnly,
    No,
    AwaitingAck,
    Acked,
}

#[derive(Debug)]
struct Part {
    node: NodeId,
    /// Kept while collecting votes (for a re-sent Prepare), dropped at the decision.
    ops: Vec<Op>,
    state: PartState,
    reads: Vec<Read>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Collecting {
        votes_due: Millis,
    },
    Logging {
        lsn: Lsn,
    },
    Committing {
        client_due: Option<Millis>,
        resend_at: Millis,
    },
}

#[derive(Debug)]
struct Txn {
    protocol: Protocol,
    timeout_ms: u64,
    /// `None` once the client has its result (or for a recovered transaction).
    client: Option<ClientRef>,
    parts: Vec<Part>,
    phase: Phase,
    /// The entry this transaction has in `Coordinator::timers`.
    wake_at: Option<Millis>,
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

    fn phase_name(&self) -> TxnPhase {
        match self.phase {
            Phase::Collecting { .. } => TxnPhase::Collecting,
            Phase::Logging { .. } => TxnPhase::Logging,
            Phase::Committing { .. } => TxnPhase::Committing,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pending {
    Decided(TxnId),
    Ended(TxnId),
}

/// The coordinator state machine.
#[derive(Debug)]
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
            Input::Response { from, msg } => self.on_response(from, msg),
            Input::Request { from, id, msg } => self.on_request(from, id, msg),
            Input::Persisted { lsn } => self.on_persisted(now, lsn),
            Input::SendFailed { to, txn, failure } => self.on_send_failed(to, txn, failure),
            Input::PeerUp { peer } => self.on_peer_up(peer),
            Input::PeerDown { peer } => self.on_peer_down(peer),
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

    /// Per participant: transactions waiting for its vote or its ack.
    pub fn in_flight_by_peer(&self) -> BTreeMap<NodeId, usize> {
        let mut counts: BTreeMap<NodeId, usize> =
            self.config.participants.iter().map(|&p| (p, 0)).collect();
        for part in self.txns.values().flat_map(|txn| &txn.parts) {
            if matches!(part.state, PartState::AwaitingVote | PartState::AwaitingAck) {
                *counts.entry(part.node).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Transactions without a durable decision (collecting votes or logging the commit).
    pub fn undecided(&self) -> impl Iterator<Item = TxnId> + '_ {
        self.txns
            .iter()
            .filter(|(_, txn)| !matches!(txn.phase, Phase::Committing { .. }))
            .map(|(id, _)| *id)
    }

    /// Durable commits whose end is not logged yet (some ack is missing).
    pub fn decided_not_ended(&self) -> impl Iterator<Item = TxnId> + '_ {
        self.txns
            .iter()
            .filter(|(_, txn)| matches!(txn.phase, Phase::Committing { .. }))
            .map(|(id, _)| *id)
    }

    /// Checks the safety invariants; the tests and the simulator call it after every input.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let fail = |what: String| Err(InvariantViolation(what));
        for (&id, txn) in &self.txns {
            let states = || txn.parts.iter().map(|part| part.state);
            match txn.phase {
                Phase::Collecting { .. } => {
                    if states().any(|s| {
                        !matches!(
                            s,
                            PartState::AwaitingVote | PartState::Yes | PartState::ReadOnly
                        )
                    }) {
                        return fail(format!("txn {id} collecting with states {:?}", txn.parts));
                    }
                }
                Phase::Logging { lsn } => {
                    if self.pending.get(&lsn) != Some(&Pending::Decided(id)) {
                        return fail(format!("txn {id} logging but lsn {lsn:?} not pending"));
                    }
                    if states().any(|s| !matches!(s, PartState::Yes | PartState::ReadOnly)) {
                        return fail(format!(
                            "txn {id} decided commit (announced before durable?) with {:?}",
                            txn.parts
                        ));
                    }
                }
                Phase::Committing { .. } => {
                    if states().any(|s| {
                        !matches!(
                            s,
                            PartState::ReadOnly | PartState::AwaitingAck | PartState::Acked
                        )
                    }) {
                        return fail(format!(
                            "txn {id} committed but not every participant voted Yes/ReadOnly: {:?}",
                            txn.parts
                        ));
                    }
                }
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
            if let Pending::Decided(id) = pending {
                let logging = self
                    .txns
                    .get(id)
                    .is_some_and(|txn| txn.phase == Phase::Logging { lsn: *lsn });
                if !logging {
                    return fail(format!(
                        "decided record {lsn:?} pending for txn {id} not logging"
                    ));
                }
            }
        }
        Ok(())
    }

    // ---- transitions ----

    fn on_submit(&mut self, now: Millis, client: ClientRef, id: TxnId, spec: TxnSpec) {
        let rejected =
            if let Err(reason) = validate(&spec, &self.config.participants, &self.config.limits) {
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
        match spec.protocol {
            Protocol::TwoPhase => {}
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
        for part in &parts {
            self.outputs.push_back(Output::Send {
                to: part.node,
                msg: prepare(id, spec.protocol, spec.timeout_ms, &part.ops),
            });
        }
        let votes_due = now.plus(spec.timeout_ms);
        self.txns.insert(
            id,
            Txn {
                protocol: spec.protocol,
                timeout_ms: spec.timeout_ms,
                client: Some(client),
                parts,
                phase: Phase::Collecting { votes_due },
                wake_at: None,
            },
        );
        self.arm(id, Some(votes_due));
    }

    fn on_response(&mut self, from: NodeId, msg: Msg) {
        match msg {
            Msg::Vote { txn, vote, reads } => self.on_vote(from, txn, vote, reads),
            Msg::Ack { txn, outcome } => self.on_ack(from, txn, outcome),
            Msg::Error { reason } => {
                tracing::warn!(peer = %from, %reason, "participant refused a request");
            }
            other => {
                tracing::warn!(peer = %from, msg = ?other, "unexpected response from participant, ignored");
            }
        }
    }

    fn on_vote(&mut self, from: NodeId, id: TxnId, vote: Vote, reads: Vec<Read>) {
        // A vote for a forgotten transaction is late (it was aborted: the participant got
        // or will get Decide{Abort}, or learns Abort by query) or a duplicate: ignore it.
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        if !matches!(txn.phase, Phase::Collecting { .. }) {
            return;
        }
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
        let lsn = self.next_lsn();
        if let Some(txn) = self.txns.get_mut(&id) {
            txn.phase = Phase::Logging { lsn };
        }
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

    fn on_ack(&mut self, from: NodeId, id: TxnId, outcome: Outcome) {
        // Acks for aborts and for forgotten transactions need nothing (presumed abort).
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        if !matches!(txn.phase, Phase::Committing { .. }) {
            return;
        }
        let Some(part) = txn.part_mut(from) else {
            return;
        };
        if part.state != PartState::AwaitingAck {
            return;
        }
        if outcome != Outcome::Committed {
            // The participant lost or overrode a Yes vote: its bug, not ours to repair.
            // Counted as acked so the commit can end; the error makes it visible.
            tracing::error!(peer = %from, txn_id = %id, ?outcome, "participant acked a commit with another outcome");
        }
        part.state = PartState::Acked;
        if txn.parts.iter().any(|p| p.state == PartState::AwaitingAck) {
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
        // Lazy: nothing waits on the end record; losing it only means a re-sent Commit.
        let lsn = self.next_lsn();
        self.pending.insert(lsn, Pending::Ended(id));
        self.ended_pending += 1;
        self.outputs.push_back(Output::Persist {
            lsn,
            record: Record::Ended { txn: id },
        });
    }

    fn on_request(&mut self, from: NodeId, id: RequestId, msg: Msg) {
        let reply = match msg {
            Msg::DecisionQuery { txn } => {
                let answer = match self.txns.get(&txn).map(|t| t.phase) {
                    None => Answer::Abort,
                    Some(Phase::Committing { .. }) => Answer::Commit,
                    Some(Phase::Collecting { .. } | Phase::Logging { .. }) => Answer::Undecided,
                };
                Msg::DecisionAnswer { txn, answer }
            }
            other => Msg::Error {
                reason: format!(
                    "the coordinator serves only DecisionQuery from participants, got {}",
                    msg_kind(&other)
                ),
            },
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
            None => return,
        };
        let resend_ms = self.config.decide_resend_ms;
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        for part in &mut txn.parts {
            if part.state == PartState::Yes {
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
    }

    fn on_send_failed(&mut self, to: NodeId, id: TxnId, failure: SendFailure) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        // A Decide that could not be queued is re-sent by the resend timer or on PeerUp.
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
            match (txn.phase, part.state) {
                (Phase::Collecting { .. }, PartState::AwaitingVote) => {
                    self.outputs.push_back(Output::Send {
                        to: peer,
                        msg: prepare(id, txn.protocol, txn.timeout_ms, &part.ops),
                    });
                }
                (Phase::Committing { .. }, PartState::AwaitingAck) => {
                    self.outputs.push_back(Output::Send {
                        to: peer,
                        msg: decide(id, Decision::Commit),
                    });
                }
                _ => {}
            }
        }
    }

    fn on_peer_down(&mut self, peer: NodeId) {
        self.up.remove(&peer);
        let missing: Vec<TxnId> = self
            .txns
            .iter()
            .filter(|(_, txn)| {
                matches!(txn.phase, Phase::Collecting { .. })
                    && txn
                        .parts
                        .iter()
                        .any(|p| p.node == peer && p.state == PartState::AwaitingVote)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in missing {
            self.abort(id, format!("participant {peer} is down"));
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
            let parts: Vec<Part> = participants
                .into_iter()
                .map(|node| Part {
                    node,
                    ops: Vec::new(),
                    state: PartState::AwaitingAck,
                    reads: Vec::new(),
                })
                .collect();
            for part in &parts {
                if self.up.contains(&part.node) {
                    self.outputs.push_back(Output::Send {
                        to: part.node,
                        msg: decide(id, Decision::Commit),
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
                    phase: Phase::Committing {
                        client_due: None,
                        resend_at,
                    },
                    wake_at: None,
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
            Phase::Logging { .. } => {}
            Phase::Committing {
                mut client_due,
                mut resend_at,
            } => {
                if client_due.is_some_and(|due| due <= now) {
                    // The commit is durable and will reach every participant: the client
                    // may rely on it even though some ack is still missing.
                    client_due = None;
                    if let Some(client) = txn.client.take() {
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

    /// Aborts a collecting transaction: Decide{Abort} to every up participant that may
    /// have prepared, the reason to the client, and the transaction is forgotten.
    fn abort(&mut self, id: TxnId, reason: String) {
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
        if let Some(client) = txn.client {
            self.outputs.push_back(Output::ClientResult {
                client,
                txn: id,
                result: TxnResult::Aborted { reason },
            });
        }
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

fn prepare(txn: TxnId, protocol: Protocol, timeout_ms: u64, ops: &[Op]) -> Msg {
    Msg::Prepare {
        txn,
        protocol,
        ops: ops.to_vec(),
        timeout_ms,
    }
}

fn decide(txn: TxnId, decision: Decision) -> Msg {
    Msg::Decide { txn, decision }
}

fn earliest(a: Option<Millis>, b: Millis) -> Millis {
    a.map_or(b, |a| a.min(b))
}

/// "participant 2" or "participants 2, 3".
fn participants_text(nodes: &[NodeId]) -> String {
    let list: Vec<String> = nodes.iter().map(NodeId::to_string).collect();
    match list.len() {
        1 => format!("participant {}", list[0]),
        _ => format!("participants {}", list.join(", ")),
    }
}

/// A message's kind without its payload, for error texts and logs.
pub fn msg_kind(msg: &Msg) -> &'static str {
    match msg {
        Msg::Prepare { .. } => "Prepare",
        Msg::Vote { .. } => "Vote",
        Msg::Decide { .. } => "Decide",
        Msg::Ack { .. } => "Ack",
        Msg::DecisionQuery { .. } => "DecisionQuery",
        Msg::DecisionAnswer { .. } => "DecisionAnswer",
        Msg::Submit { .. } => "Submit",
        Msg::Result { .. } => "Result",
        Msg::Status => "Status",
        Msg::StatusReport { .. } => "StatusReport",
        Msg::Error { .. } => "Error",
    }
}

impl fmt::Display for TxnPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
