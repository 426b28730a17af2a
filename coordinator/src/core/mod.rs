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
//! only the coordinator's own record: see `abort_adopted.rs`.
//!
//! `Protocol` is matched exhaustively where the protocols differ, so a new protocol
//! forces every such place to say what it does.
//!
//! This file holds the `Coordinator` and routes each input and each timer to its handler:
//! `submit.rs`, `votes.rs` (collecting votes, the unlogged abort), `commit.rs` (the
//! durable commit, its acks and the decision queries), `three_phase.rs` and
//! `abort_adopted.rs` (3PC), `peers.rs` (up, down, send failures), `frame_limit.rs`
//! (each participant's frame limit, checked at submit), `recovery.rs` (restart);
//! `releases.rs` remembers the `Release`s not yet answered. The types are in `io.rs`
//! (inputs, outputs, records), `config.rs` and
//! `txn.rs` (a transaction's state); `status.rs` answers status reports, `invariants.rs`
//! checks every state, `validate.rs` checks a client's spec.

mod abort_adopted;
mod commit;
mod config;
mod frame_limit;
mod heuristic;
mod invariants;
mod io;
mod peers;
mod recovery;
mod releases;
mod status;
mod submit;
mod three_phase;
mod txn;
mod validate;
mod votes;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use wire::{FromParticipant, NodeId, TxnId};

pub use config::{
    Config, ConfigError, DECIDE_RESEND_MS_DEFAULT, HEARTBEAT_INTERVAL_MS_DEFAULT,
    KEY_BYTES_MAX_DEFAULT, Limits, OPS_PER_TXN_MAX_DEFAULT, PRECOMMIT_ACK_TIMEOUT_MS_DEFAULT,
    PRECOMMIT_MARGIN_MS_DEFAULT, TIMEOUT_HEARTBEATS_MIN, TIMEOUT_LIMIT_MS, TIMEOUT_MS_MAX_DEFAULT,
    TIMEOUT_MS_MIN_DEFAULT, TXNS_IN_FLIGHT_MAX_DEFAULT, VALUE_BYTES_MAX_DEFAULT,
};
pub use heuristic::{HAZARDS_KEPT_MAX, Hazard};
pub use invariants::InvariantViolation;
pub use io::{ClientRef, Input, Lsn, Millis, Output, Record, RecoveredTxn, SendFailure};
pub use recovery::unfinished;
pub use releases::RELEASES_UNANSWERED_MAX;
pub use status::TxnPhase;
pub use validate::validate;

use txn::{Pending, Phase, Txn};

/// The coordinator state machine. `Clone`, `Eq` and `Hash` (every map ordered) let the
/// model checker copy a state and recognise one it has seen.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Coordinator {
    config: Config,
    /// Ordered by id so every iteration (and so every output order) is deterministic.
    txns: BTreeMap<TxnId, Txn>,
    up: BTreeSet<NodeId>,
    /// The frame limit of each participant's channel, as last reported (`frame_limit.rs`).
    frame_limits: BTreeMap<NodeId, usize>,
    /// Records handed out as `Persist` and not yet reported `Persisted`.
    pending: BTreeMap<Lsn, Pending>,
    /// How many of `pending` are `Ended` records (counted against the in-flight limit).
    ended_pending: usize,
    next_lsn: u64,
    /// One entry per transaction with a deadline: `(when, txn)`.
    timers: BTreeSet<(Millis, TxnId)>,
    outputs: VecDeque<Output>,
    /// Heuristic hazards found since start (`heuristic.rs`).
    hazards: heuristic::Hazards,
    /// The `Release`s sent (or owed) and not yet answered, re-sent on `PeerUp`.
    releases: releases::UnansweredReleases,
}

impl Coordinator {
    /// The caller should have checked `config.validate()` (the shell does).
    pub fn new(config: Config) -> Self {
        Coordinator {
            config,
            txns: BTreeMap::new(),
            up: BTreeSet::new(),
            frame_limits: BTreeMap::new(),
            pending: BTreeMap::new(),
            ended_pending: 0,
            next_lsn: 1,
            timers: BTreeSet::new(),
            outputs: VecDeque::new(),
            hazards: heuristic::Hazards::default(),
            releases: releases::UnansweredReleases::default(),
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
            Input::PeerFrameLimit { peer, bytes } => self.on_peer_frame_limit(peer, bytes),
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

    /// Routes a participant's response to the handler of its kind.
    fn on_response(&mut self, now: Millis, from: NodeId, msg: FromParticipant) {
        match msg {
            FromParticipant::Vote { txn, vote, reads } => self.on_vote(now, from, txn, vote, reads),
            FromParticipant::Ack { txn, outcome } => self.on_ack(now, from, txn, outcome),
            FromParticipant::StateReply {
                txn,
                state,
                recovered,
            } => self.on_state_reply(now, from, txn, state, recovered),
            // No txn waits for a release (it only shortens a read-only voter's hold); it
            // is no longer owed on the next `PeerUp`.
            FromParticipant::Released { txn } => self.releases.answered(from, txn),
            FromParticipant::Refused { reason } => {
                tracing::warn!(peer = %from, %reason, "participant refused a request");
            }
        }
    }

    fn on_persisted(&mut self, now: Millis, lsn: Lsn) {
        match self.pending.remove(&lsn) {
            Some(Pending::Decided(id)) => self.on_decided_durable(now, id),
            Some(Pending::Ended(_)) => self.ended_pending -= 1,
            Some(Pending::AbortAdopted(id)) => self.on_abort_adopted_durable(id),
            None => {}
        }
    }

    /// Transaction `id`'s timer fired: what is due depends on its phase.
    fn on_txn_due(&mut self, now: Millis, id: TxnId) {
        let Some(txn) = self.txns.get(&id) else {
            return;
        };
        match txn.phase {
            Phase::Collecting { votes_due } => self.on_votes_due(now, id, votes_due),
            Phase::Logging { .. } | Phase::LoggingAbort { .. } => {}
            Phase::PreCommitting {
                acks_due,
                resend_at,
            } => self.on_precommit_acks_due(now, id, acks_due, resend_at),
            Phase::Committing {
                client_due,
                resend_at,
            } => self.on_commit_acks_due(now, id, client_due, resend_at),
            Phase::Resolving { resend_at } => self.on_resolving_due(now, id, resend_at),
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
