//! The participant's shell, as `participant::shell` does it, over the simulated network
//! and disk: recovery at start, the committed values and stored state read before a
//! Prepare or Decide, replies routed to the connection the request came on, and each
//! durable record reported `Persisted` in order.

use std::collections::{BTreeMap, BTreeSet};

use participant::core::inbound::{self, Plan};
use participant::core::{Config, Input, Millis, Output, Participant, Record, ReplyTo};
use wire::{
    ClientResponse, Decision, FromParticipant, NodeId, Op, Request, Role, ToParticipant, TxnId,
};

use super::cores::ParticipantCore;
use super::history::{Applied, Observed, VoteKind, txn_name};
use super::net::Frame;
use super::options::Planted;
use super::planted::{ReleaseReadLocksAtVote, TimeoutsWithoutTermination};
use super::trace::{self, COORDINATOR, node_name};
use super::world::World;

impl World {
    /// A fresh core, handed every in-doubt transaction of the disk (`Node::start`).
    pub(super) fn start_participant(&mut self, node: NodeId) {
        let config = Config::default();
        let checked = config
            .validate_for_heartbeat(self.options.network.heartbeat_interval_ms)
            .and_then(|()| Participant::new(node, config));
        let core = match checked {
            Ok(core) => core,
            Err(error) => {
                self.violation("setup", error.to_string());
                self.stopped = true;
                return;
            }
        };
        let core: Box<dyn ParticipantCore> = match self.options.planted {
            Planted::TimeoutsWithoutTermination => {
                Box::new(TimeoutsWithoutTermination::new(core, COORDINATOR))
            }
            Planted::ReleaseReadLocksAtVote => Box::new(ReleaseReadLocksAtVote::new(core)),
            _ => Box::new(core),
        };
        let mut core = core;
        let participant = self.participants.get_mut(&node).expect("known node");
        // What pruning reached survives the restart, as `retention.horizon` does.
        core.set_horizon(participant.disk.horizon);
        participant.core = Some(core);
        let txns = participant.disk.in_doubt_txns();
        let stored_max = participant.disk.max_txn_id();
        // The store's wall clock is the simulation's true time (the monotonic clock the
        // core runs on restarts at 0 with the process).
        let wall_ms = self.now_ms;
        let holds = if self.options.planted == Planted::ForgetReadHoldsOnRestart {
            Vec::new()
        } else {
            participant.disk.read_holds(wall_ms)
        };
        note!(
            self,
            "{} recovers {} in-doubt txns, {} read holds",
            node_name(node),
            txns.len(),
            holds.len()
        );
        self.participant_input(
            node,
            Input::Recover {
                txns,
                holds,
                wall_ms,
                stored_max,
            },
        );
        self.participant_outputs(node);
    }

    pub(super) fn participant_receive(
        &mut self,
        node: NodeId,
        from: NodeId,
        epoch: u64,
        frame: Frame,
    ) {
        let name = node_name(node);
        self.begin(
            &name,
            format!("<- {} {}", node_name(from), trace::frame(&frame)),
        );
        if self.host(node).channels.get(&from) != Some(&epoch) {
            note!(self, "stale channel: dropped");
            return;
        }
        match frame {
            Frame::Request { id, msg } => self.participant_request(node, from, epoch, id, msg),
            Frame::Response { msg, .. } => match inbound::response_input(from, msg) {
                Ok(input) => self.participant_input(node, input),
                Err(reason) => note!(self, "{reason}"),
            },
        }
        self.participant_outputs(node);
        // The real writer also prunes while idle: here, after every message too.
        self.participant_prune(node);
        self.participant_schedule_timer(node);
    }

    fn participant_request(
        &mut self,
        node: NodeId,
        from: NodeId,
        epoch: u64,
        id: wire::RequestId,
        msg: Request,
    ) {
        let reply_to = ReplyTo {
            peer: from,
            conn: epoch,
        };
        let participant = &self.participants[&node];
        let Some(core) = participant.core.as_ref() else {
            return;
        };
        // Coordinators dial as coordinators; everyone else is a peer participant.
        let role = if self.is_coordinator(from) {
            Role::Coordinator
        } else {
            Role::Participant
        };
        let refusal = match core.plan(role, msg) {
            Plan::Protocol { msg, needs } => {
                let reads = participant.disk.read(&needs);
                if let ToParticipant::Prepare { txn, .. } = &msg {
                    // The core reads a key a committing txn writes as that commit leaves it.
                    let pending: BTreeMap<String, (TxnId, Option<wire::Value>)> = reads
                        .values
                        .keys()
                        .filter_map(|key| Some((key.clone(), core.committing_value(key)?)))
                        .collect();
                    self.observe(node, *txn, &reads.values, &pending);
                }
                let input = inbound::request_input(reply_to, id, msg, reads);
                self.participant_input(node, input);
                return;
            }
            // No operator works in the simulator.
            Plan::Status | Plan::Lookup(_) | Plan::Resolve { .. } => {
                let reason =
                    format!("participant {node} has no operator requests in the simulator");
                ClientResponse::Refused { reason }.into()
            }
            Plan::Refuse { reply, .. } => reply,
        };
        self.transmit(node, from, epoch, Frame::Response { id, msg: refusal });
    }

    /// Records which committed version of each key a Prepare's evaluation read (for the
    /// serializability checker).
    fn observe(
        &mut self,
        node: NodeId,
        txn: TxnId,
        values: &BTreeMap<String, Option<wire::Value>>,
        pending: &BTreeMap<String, (TxnId, Option<wire::Value>)>,
    ) {
        if values.is_empty() {
            return;
        }
        let observed = values
            .iter()
            .map(|(key, value)| {
                let (value, writer) = match pending.get(key) {
                    Some((writer, value)) => (value, Some(*writer)),
                    None => {
                        let versions = self.history.versions.get(&(node, key.clone()));
                        (
                            value,
                            versions.and_then(|versions| versions.last().copied()),
                        )
                    }
                };
                Observed {
                    key: key.clone(),
                    value: value.clone(),
                    writer,
                }
            })
            .collect();
        self.history
            .observed
            .entry((txn, node))
            .or_default()
            .push(observed);
    }

    pub(super) fn participant_up(&mut self, node: NodeId, peer: NodeId, epoch: u64) {
        self.begin(&node_name(node), format!("up {} e{epoch}", node_name(peer)));
        let host = self.host_mut(node);
        if let Some(old) = host.channels.insert(peer, epoch)
            && old != epoch
        {
            self.close_replaced(old);
        }
        self.participant_input(node, Input::PeerUp { peer });
        self.participant_outputs(node);
        self.participant_schedule_timer(node);
    }

    pub(super) fn participant_down(&mut self, node: NodeId, peer: NodeId, epoch: u64) {
        self.begin(
            &node_name(node),
            format!("down {} e{epoch}", node_name(peer)),
        );
        let host = self.host_mut(node);
        if host.channels.get(&peer) == Some(&epoch) {
            host.channels.remove(&peer);
            self.participant_input(node, Input::PeerDown { peer });
        } else {
            note!(self, "stale");
        }
        self.participant_outputs(node);
        self.participant_schedule_timer(node);
    }

    pub(super) fn participant_timer(&mut self, node: NodeId) {
        let now = Millis(self.local_ms(node));
        let due = self.participants[&node]
            .core
            .as_ref()
            .and_then(|core| core.poll_timeout())
            .is_some_and(|at| at <= now);
        if due {
            self.participant_call(node, |core| core.handle_timeout(now));
            self.participant_outputs(node);
        }
        self.participant_schedule_timer(node);
    }

    /// One group commit: a prefix of the write queue becomes durable; each record is
    /// reported `Persisted` (and its outputs carried out) in order.
    /// `txn`'s commit is durable on `node`: it is the newest version of every key it
    /// writes there.
    fn record_versions(&mut self, node: NodeId, txn: TxnId) {
        let Some(info) = self.history.txns.get(&txn) else {
            return;
        };
        let written: BTreeSet<String> = info
            .parts
            .iter()
            .filter(|(part, _)| *part == node)
            .flat_map(|(_, ops)| ops.iter())
            .filter(|op| !matches!(op, Op::Get { .. }))
            .map(|op| op.key().to_string())
            .collect();
        for key in written {
            let versions = self.history.versions.entry((node, key)).or_default();
            if !versions.contains(&txn) {
                versions.push(txn);
            }
        }
    }

    pub(super) fn participant_flush_disk(&mut self, node: NodeId) {
        let len = self.participants[&node].disk.queue.len();
        if len == 0 {
            return;
        }
        let count = self.batch_len(len);
        self.begin(&node_name(node), format!("durable {count} of {len}"));
        for _ in 0..count {
            let participant = self.participants.get_mut(&node).expect("known node");
            let Some((lsn, record)) = participant.disk.queue.pop_front() else {
                break;
            };
            if let Err(reason) = participant.disk.apply_at(&record, self.now_ms) {
                self.violation("store", format!("participant {node}: {reason}"));
                self.stopped = true;
                return;
            }
            let decision = match &record {
                Record::Committed { .. } => Some(Decision::Commit),
                Record::Aborted { .. } => Some(Decision::Abort),
                Record::Prepared { .. }
                | Record::PreCommitted { .. }
                | Record::ReadOnly { .. }
                | Record::Heuristic { .. } => None,
            };
            if let Some(decision) = decision {
                let txn = record.txn();
                if decision == Decision::Commit {
                    self.record_versions(node, txn);
                }
                let applied = Applied {
                    decision,
                    at_ms: self.now_ms,
                    // Txn ids are unique over the coordinators: at most one logs it.
                    commit_logged: self
                        .coordinators
                        .values()
                        .any(|coordinator| coordinator.disk.commit_logged(txn)),
                };
                self.history
                    .applied
                    .entry((txn, node))
                    .or_default()
                    .push(applied);
            }
            self.participant_input(node, Input::Persisted { lsn });
            self.participant_outputs(node);
        }
        self.participant_prune(node);
        if !self.participants[&node].disk.queue.is_empty() {
            self.schedule_flush(node);
        }
        self.participant_schedule_timer(node);
    }

    pub(super) fn participant_schedule_timer(&mut self, node: NodeId) {
        let deadline = self.participants[&node]
            .core
            .as_ref()
            .and_then(|core| core.poll_timeout())
            .map(|at| at.0);
        self.schedule_timer(node, deadline);
    }

    fn participant_input(&mut self, node: NodeId, input: Input) {
        let now = Millis(self.local_ms(node));
        self.participant_call(node, |core| core.handle(now, input));
    }

    /// Runs `call` on the core, then its invariants; a panic or a broken invariant is a
    /// violation that stops the run.
    fn participant_call(&mut self, node: NodeId, call: impl FnOnce(&mut dyn ParticipantCore)) {
        if self.stopped {
            return;
        }
        let participant = self.participants.get_mut(&node).expect("known node");
        let Some(mut core) = participant.core.take() else {
            return;
        };
        let handled = self.guarded("participant panic", || call(core.as_mut()));
        if handled.is_some()
            && let Some(Err(violation)) =
                self.guarded("participant invariant", || core.check_invariants())
        {
            // A broken invariant stops the run, as a panic in the core does.
            self.violation("participant invariant", violation.to_string());
            self.stopped = true;
        }
        self.participants.get_mut(&node).expect("known node").core = Some(core);
    }

    /// The shell's `drain`: records to the writer, replies to their connection, requests
    /// to peers that are up.
    fn participant_outputs(&mut self, node: NodeId) {
        let mut outputs = Vec::new();
        if let Some(core) = self
            .participants
            .get_mut(&node)
            .and_then(|p| p.core.as_mut())
        {
            while let Some(output) = core.poll_output() {
                outputs.push(output);
            }
        }
        let mut leader_crash_armed = false;
        for output in outputs {
            match output {
                Output::Persist { lsn, record } => {
                    note!(
                        self,
                        "persist {} {} {}",
                        lsn.0,
                        record.kind(),
                        txn_name(record.txn())
                    );
                    let participant = self.participants.get_mut(&node).expect("known node");
                    participant.disk.queue.push_back((lsn, record));
                    self.schedule_flush(node);
                    self.maybe_crash_on_persist(node);
                }
                Output::Reply { to, id, msg } => {
                    if let FromParticipant::Vote { txn, vote, .. } = &msg {
                        self.history
                            .votes
                            .entry((*txn, node))
                            .or_default()
                            .push(VoteKind::of(vote));
                        if VoteKind::of(vote) == VoteKind::Yes {
                            self.history
                                .voted_yes_ms
                                .entry((*txn, node))
                                .or_insert(self.now_ms);
                        }
                    }
                    let msg = msg.into();
                    if self.host(node).channels.get(&to.peer) == Some(&to.conn) {
                        self.transmit(node, to.peer, to.conn, Frame::Response { id, msg });
                    } else {
                        note!(
                            self,
                            "reply {} dropped: its connection is gone",
                            trace::response(&msg)
                        );
                    }
                }
                Output::Send { to, msg } => match self.host(node).channels.get(&to).copied() {
                    Some(epoch) => {
                        // Only a termination leader sends a participant's Decide.
                        let decides =
                            matches!(msg, Request::Participant(ToParticipant::Decide { .. }));
                        self.request(node, to, epoch, msg);
                        if decides && !leader_crash_armed {
                            leader_crash_armed = true;
                            self.maybe_crash_leader_on_decide(node);
                        }
                    }
                    None => note!(
                        self,
                        "send {} to {} dropped: down",
                        trace::request(&msg),
                        node_name(to)
                    ),
                },
                // Only an operator's resolve causes one, and none runs here.
                Output::ClientReply { .. } => {}
            }
        }
    }
}
