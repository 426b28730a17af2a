//! Deliberately wrong variants, built as wrappers around the real cores (and as a flag on
//! the simulated disk), so the planted-bug tests can show that the checkers fail.

use std::collections::VecDeque;

use coordinator::core::{Coordinator, Input, Millis, Output, Record};
use participant::core::{self as participant_core, Participant, TxnCounts};
use wire::{Decision, FromParticipant, NodeId, ToParticipant, TxnId};

use super::cores::{CoordinatorCore, ParticipantCore};

/// A coordinator that sends `Decide{Commit}` as soon as it asks for its commit record,
/// instead of after `Persisted`: "durable before visible" broken by reordering outputs.
pub struct CommitBeforeDurable {
    inner: Coordinator,
    early: VecDeque<Output>,
}

impl CommitBeforeDurable {
    pub fn new(inner: Coordinator) -> Self {
        CommitBeforeDurable {
            inner,
            early: VecDeque::new(),
        }
    }
}

impl CoordinatorCore for CommitBeforeDurable {
    fn handle(&mut self, now: Millis, input: Input) {
        self.inner.handle(now, input);
    }

    fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.early.pop_front() {
            return Some(output);
        }
        let output = self.inner.poll_output()?;
        if let Output::Persist {
            record:
                Record::Decided {
                    txn,
                    decision: Decision::Commit,
                    participants,
                    ..
                },
            ..
        } = &output
        {
            for &to in participants {
                self.early.push_back(Output::Send {
                    to,
                    msg: ToParticipant::Decide {
                        txn: *txn,
                        decision: Decision::Commit,
                        reason: None,
                    },
                });
            }
        }
        Some(output)
    }

    fn poll_timeout(&self) -> Option<Millis> {
        self.inner.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Millis) {
        self.inner.handle_timeout(now);
    }

    fn check_invariants(&self) -> Result<(), String> {
        CoordinatorCore::check_invariants(&self.inner)
    }

    fn txns_in_flight(&self) -> usize {
        self.inner.txns_in_flight()
    }
}

/// A recovering 3PC coordinator that takes every participant for restarted: it rewrites
/// each `StateReply` it receives to say `recovered: true` before the real core sees it
/// (only a coordinator resolving a recovered precommit acts on that flag). It then commits
/// once every participant reported an undecided state, although an operational one may be
/// leading a termination round that aborts: a second decision-maker beside the
/// participants', the bug the `recovered` rule in `three_phase.rs` fixed.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct SecondDecider {
    inner: Coordinator,
}

impl SecondDecider {
    pub fn new(inner: Coordinator) -> Self {
        SecondDecider { inner }
    }
}

impl CoordinatorCore for SecondDecider {
    fn handle(&mut self, now: Millis, input: Input) {
        let input = match input {
            Input::Response {
                from,
                msg: FromParticipant::StateReply { txn, state, .. },
            } => Input::Response {
                from,
                msg: FromParticipant::StateReply {
                    txn,
                    state,
                    recovered: true,
                },
            },
            input => input,
        };
        self.inner.handle(now, input);
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.inner.poll_output()
    }

    fn poll_timeout(&self) -> Option<Millis> {
        self.inner.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Millis) {
        self.inner.handle_timeout(now);
    }

    fn check_invariants(&self) -> Result<(), String> {
        CoordinatorCore::check_invariants(&self.inner)
    }

    fn txns_in_flight(&self) -> usize {
        self.inner.txns_in_flight()
    }
}

/// A 3PC participant that applies the timeout rules without the termination protocol:
/// it never sees its peers (their `PeerUp`/`PeerDown` are filtered out and requests to
/// them dropped), so when its coordinator fails or its timeout fires it finds no live
/// peer and decides alone by the card's rules (`waiting` -> abort, `precommitted` ->
/// commit). A single coordinator crash between two PreCommits then splits a transaction.
/// Only while it votes does it see the txn's peers up: a 3PC YES needs them.
pub struct TimeoutsWithoutTermination {
    inner: Participant,
    coordinator: NodeId,
}

impl TimeoutsWithoutTermination {
    pub fn new(inner: Participant, coordinator: NodeId) -> Self {
        TimeoutsWithoutTermination { inner, coordinator }
    }
}

impl ParticipantCore for TimeoutsWithoutTermination {
    fn handle(&mut self, now: participant_core::Millis, input: participant_core::Input) {
        match input {
            participant_core::Input::PeerUp { peer }
            | participant_core::Input::PeerDown { peer }
                if peer != self.coordinator => {}
            participant_core::Input::Prepare {
                ref participants, ..
            } => {
                let me = self.inner.node_id();
                let peers: Vec<NodeId> = participants
                    .iter()
                    .copied()
                    .filter(|peer| *peer != me && *peer != self.coordinator)
                    .collect();
                for &peer in &peers {
                    self.inner
                        .handle(now, participant_core::Input::PeerUp { peer });
                }
                self.inner.handle(now, input);
                for peer in peers {
                    self.inner
                        .handle(now, participant_core::Input::PeerDown { peer });
                }
            }
            input => self.inner.handle(now, input),
        }
    }

    fn poll_output(&mut self) -> Option<participant_core::Output> {
        loop {
            match self.inner.poll_output()? {
                participant_core::Output::Send { to, .. } if to != self.coordinator => {}
                output => return Some(output),
            }
        }
    }

    fn poll_timeout(&self) -> Option<participant_core::Millis> {
        self.inner.poll_timeout()
    }

    fn handle_timeout(&mut self, now: participant_core::Millis) {
        self.inner.handle_timeout(now);
    }

    fn check_invariants(&self) -> Result<(), participant_core::InvariantViolation> {
        self.inner.check_invariants()
    }

    fn plan(&self, role: wire::Role, msg: wire::Request) -> participant::core::inbound::Plan {
        participant::core::inbound::plan(&self.inner, role, msg)
    }

    fn locks_held(&self) -> usize {
        self.inner.locks_held()
    }

    fn committing_value(&self, key: &str) -> Option<(TxnId, Option<wire::Value>)> {
        self.inner.committing_value(key)
    }

    fn counts(&self) -> TxnCounts {
        self.inner.counts()
    }

    fn set_horizon(&mut self, horizon: wire::retention::Horizon) {
        self.inner.set_horizon(horizon);
    }
}

/// A participant that releases a read-only vote's shared locks as the vote goes out (what
/// every participant did before read holds): there is then no lock point across
/// participants, and with several coordinators a read can see half of a transfer.
pub struct ReleaseReadLocksAtVote {
    inner: Participant,
    now: participant_core::Millis,
}

/// The request id of the planted bug's own `Release`: its `Released` reply is swallowed.
const PLANTED_RELEASE_ID: wire::RequestId = wire::RequestId(u64::MAX);

impl ReleaseReadLocksAtVote {
    pub fn new(inner: Participant) -> Self {
        ReleaseReadLocksAtVote {
            inner,
            now: participant_core::Millis(0),
        }
    }
}

impl ParticipantCore for ReleaseReadLocksAtVote {
    fn handle(&mut self, now: participant_core::Millis, input: participant_core::Input) {
        self.now = now;
        self.inner.handle(now, input);
    }

    fn poll_output(&mut self) -> Option<participant_core::Output> {
        loop {
            let output = self.inner.poll_output()?;
            match &output {
                participant_core::Output::Reply {
                    to,
                    msg:
                        FromParticipant::Vote {
                            txn,
                            vote: wire::Vote::ReadOnly,
                            ..
                        },
                    ..
                } => {
                    let release = participant_core::Input::Release {
                        from: *to,
                        id: PLANTED_RELEASE_ID,
                        txn: *txn,
                    };
                    self.inner.handle(self.now, release);
                }
                participant_core::Output::Reply {
                    id: PLANTED_RELEASE_ID,
                    msg: FromParticipant::Released { .. },
                    ..
                } => continue,
                _ => {}
            }
            return Some(output);
        }
    }

    fn poll_timeout(&self) -> Option<participant_core::Millis> {
        self.inner.poll_timeout()
    }

    fn handle_timeout(&mut self, now: participant_core::Millis) {
        self.now = now;
        self.inner.handle_timeout(now);
    }

    fn check_invariants(&self) -> Result<(), participant_core::InvariantViolation> {
        self.inner.check_invariants()
    }

    fn plan(&self, role: wire::Role, msg: wire::Request) -> participant::core::inbound::Plan {
        participant::core::inbound::plan(&self.inner, role, msg)
    }

    fn locks_held(&self) -> usize {
        self.inner.locks_held()
    }

    fn committing_value(&self, key: &str) -> Option<(TxnId, Option<wire::Value>)> {
        self.inner.committing_value(key)
    }

    fn counts(&self) -> TxnCounts {
        self.inner.counts()
    }

    fn set_horizon(&mut self, horizon: wire::retention::Horizon) {
        self.inner.set_horizon(horizon);
    }
}
