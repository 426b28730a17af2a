//! One state of the model-checked cluster (1 coordinator, 2 participants with their mesh)
//! and its transitions: the real cores behind the shells' routing rules, FIFO links that
//! may lose their head message, disks whose records become durable one at a time, peer
//! up/down notices, timers, one crash and its restart.
//!
//! Time is global and moves only when a timer fires, and never past the deadline of
//! anything in flight (a message, a log write, a failure notice): delays are bounded,
//! and a timer fires only once everything due before it has happened. Between timer
//! firings, every interleaving of deliveries, losses, log writes and notices is explored.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hasher};

use coordinator::core::{self as coordinator_core, ClientRef, Coordinator, SendFailure};
use participant::core::{self as participant_core, Participant, ReplyTo, StoredState};
use wire::{Msg, NodeId, Op, RequestId, TxnId, TxnResult, TxnSpec};

use super::replay::{ParticipantInput, Replay, Shared, Step};
use crate::sim::disk::{CoordinatorDisk, ParticipantDisk};
use crate::sim::history::txn_name;
use crate::sim::net::Frame;
use crate::sim::panics::guarded;
use crate::sim::trace::{self, COORDINATOR, node_name};
use crate::sim::workload;

/// A message may be in flight this long before it must be delivered (or lost).
pub const DELAY_MAX_MS: u64 = 20;
/// A log write becomes durable within this.
pub const FSYNC_MAX_MS: u64 = 10;
/// A crashed peer is reported down within this (the failure detector's bound).
pub const DETECT_MAX_MS: u64 = 1_000;
/// A restarted node's channels are up again within this.
pub const RECONNECT_MAX_MS: u64 = 100;
/// Participants in the model.
pub const PARTICIPANTS: [NodeId; 2] = [NodeId(1), NodeId(2)];

/// A channel notice for one side: its peer came up or went down (with the channel epoch).
#[derive(Clone, Debug)]
struct Notice {
    deadline_ms: u64,
    peer: NodeId,
    epoch: u64,
    up: bool,
}

#[derive(Clone, Debug)]
struct InFlight {
    deadline_ms: u64,
    epoch: u64,
    frame: Frame,
}

struct Node<C: Replay> {
    core: Option<Shared<C>>,
    /// The current channel epoch to each peer that is up, as this node's shell sees it.
    channels: BTreeMap<NodeId, u64>,
    /// Deadlines of the queued (not yet durable) log records, in order.
    write_deadlines: VecDeque<u64>,
}

impl<C: Replay> Clone for Node<C> {
    fn clone(&self) -> Self {
        Node {
            core: self.core.clone(),
            channels: self.channels.clone(),
            write_deadlines: self.write_deadlines.clone(),
        }
    }
}

/// What the client was told about each transaction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Told {
    Nothing,
    Committed,
    Aborted,
}

/// One transition.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Choice {
    Submit,
    Deliver(NodeId, NodeId),
    Lose(NodeId, NodeId),
    Durable(NodeId),
    Notice(NodeId),
    Timer(NodeId),
    Crash(NodeId),
    Restart(NodeId),
}

/// What the exploration may do.
#[derive(Clone, Debug)]
pub struct Limits {
    pub txns: Vec<TxnSpec>,
    pub crashes_max: u32,
    /// Links may lose the message at their head (otherwise only crashes lose messages).
    pub lossy: bool,
    pub timer_firings_max: u32,
}

#[derive(Clone)]
pub struct System {
    now_ms: u64,
    coordinator: Node<Coordinator>,
    coordinator_disk: CoordinatorDisk,
    participants: BTreeMap<NodeId, (Node<Participant>, ParticipantDisk)>,
    links: BTreeMap<(NodeId, NodeId), VecDeque<InFlight>>,
    notices: BTreeMap<NodeId, VecDeque<Notice>>,
    epochs: BTreeMap<(NodeId, NodeId), u64>,
    submitted: usize,
    crashes: u32,
    restarts: u32,
    timer_firings: u32,
    pub told: Vec<Told>,
    /// A broken core invariant, a panic or a refused record: the state is a violation.
    pub error: Option<String>,
}

pub fn txn_id(index: usize) -> TxnId {
    TxnId(uuid::Uuid::from_u128(index as u128 + 1))
}

fn pair(x: NodeId, y: NodeId) -> (NodeId, NodeId) {
    (x.min(y), x.max(y))
}

fn all_nodes() -> Vec<NodeId> {
    let mut nodes = vec![COORDINATOR];
    nodes.extend(PARTICIPANTS);
    nodes
}

impl System {
    /// Every node up and connected, nothing submitted.
    pub fn initial(limits: &Limits, coordinator_config: coordinator_core::Config) -> System {
        let mut system = System {
            now_ms: 0,
            coordinator: Node {
                core: Some(Shared::new(Coordinator::new(coordinator_config))),
                channels: BTreeMap::new(),
                write_deadlines: VecDeque::new(),
            },
            coordinator_disk: CoordinatorDisk::default(),
            participants: BTreeMap::new(),
            links: BTreeMap::new(),
            notices: BTreeMap::new(),
            epochs: BTreeMap::new(),
            submitted: 0,
            crashes: 0,
            restarts: 0,
            timer_firings: 0,
            told: vec![Told::Nothing; limits.txns.len()],
            error: None,
        };
        for node in PARTICIPANTS {
            let core = Participant::new(node, participant_core::Config::default())
                .expect("the default participant config is valid");
            system.participants.insert(
                node,
                (
                    Node {
                        core: Some(Shared::new(core)),
                        channels: BTreeMap::new(),
                        write_deadlines: VecDeque::new(),
                    },
                    ParticipantDisk::with_data(workload::initial_data()),
                ),
            );
        }
        let nodes = all_nodes();
        for (i, &x) in nodes.iter().enumerate() {
            for &y in &nodes[i + 1..] {
                system.epochs.insert(pair(x, y), 1);
                let mut line = String::new();
                for (node, peer) in [(x, y), (y, x)] {
                    system.up(node, peer, 1);
                    system.peer_event(node, PeerEvent::Up(peer), &mut line);
                }
            }
        }
        system
    }

    fn alive(&self, node: NodeId) -> bool {
        if node == COORDINATOR {
            self.coordinator.core.is_some()
        } else {
            self.participants[&node].0.core.is_some()
        }
    }

    fn channels(&self, node: NodeId) -> &BTreeMap<NodeId, u64> {
        if node == COORDINATOR {
            &self.coordinator.channels
        } else {
            &self.participants[&node].0.channels
        }
    }

    fn channels_mut(&mut self, node: NodeId) -> &mut BTreeMap<NodeId, u64> {
        if node == COORDINATOR {
            &mut self.coordinator.channels
        } else {
            &mut self.participants.get_mut(&node).expect("known").0.channels
        }
    }

    /// No time may pass beyond this: something in flight is due by then.
    fn time_bound_ms(&self) -> u64 {
        let links = self.links.values().flatten().map(|m| m.deadline_ms);
        let notices = self.notices.values().flatten().map(|n| n.deadline_ms);
        let writes = self
            .coordinator
            .write_deadlines
            .iter()
            .chain(
                self.participants
                    .values()
                    .flat_map(|(n, _)| &n.write_deadlines),
            )
            .copied();
        links.chain(notices).chain(writes).min().unwrap_or(u64::MAX)
    }

    fn timer_deadline(&self, node: NodeId) -> Option<u64> {
        if node == COORDINATOR {
            let core = self.coordinator.core.as_ref()?;
            core.get().poll_timeout().map(|at| at.0)
        } else {
            let core = self.participants[&node].0.core.as_ref()?;
            core.get().poll_timeout().map(|at| at.0)
        }
    }

    /// Every transition enabled in this state, in a fixed order.
    pub fn choices(&self, limits: &Limits) -> Vec<Choice> {
        let mut choices = Vec::new();
        if self.submitted < limits.txns.len() && self.alive(COORDINATOR) {
            choices.push(Choice::Submit);
        }
        for (&(from, to), queue) in &self.links {
            if !queue.is_empty() {
                choices.push(Choice::Deliver(from, to));
                if limits.lossy {
                    choices.push(Choice::Lose(from, to));
                }
            }
        }
        if !self.coordinator_disk.queue.is_empty() {
            choices.push(Choice::Durable(COORDINATOR));
        }
        for (&node, (_, disk)) in &self.participants {
            if !disk.queue.is_empty() {
                choices.push(Choice::Durable(node));
            }
        }
        for (&node, queue) in &self.notices {
            if !queue.is_empty() {
                choices.push(Choice::Notice(node));
            }
        }
        let bound = self.time_bound_ms();
        if self.timer_firings < limits.timer_firings_max {
            for node in all_nodes() {
                if self.timer_deadline(node).is_some_and(|at| at <= bound) {
                    choices.push(Choice::Timer(node));
                }
            }
        }
        for node in all_nodes() {
            if self.alive(node) {
                if self.crashes < limits.crashes_max {
                    choices.push(Choice::Crash(node));
                }
            } else if self.restarts < self.crashes {
                choices.push(Choice::Restart(node));
            }
        }
        choices
    }

    /// Applies one transition; returns a line describing it.
    pub fn apply(&mut self, choice: Choice, limits: &Limits) -> String {
        let mut line = format!("{:>6} ", self.now_ms);
        match choice {
            Choice::Submit => {
                let index = self.submitted;
                self.submitted += 1;
                let txn = txn_id(index);
                let _ = write!(line, "c submit {}", txn_name(txn));
                let input = coordinator_core::Input::Submit {
                    client: ClientRef {
                        channel: 0,
                        request: index as u64,
                    },
                    txn,
                    spec: limits.txns[index].clone(),
                };
                self.coordinator_step(Step::Input(self.now_ms, input), &mut line);
            }
            Choice::Deliver(from, to) => {
                let message = self
                    .links
                    .get_mut(&(from, to))
                    .and_then(VecDeque::pop_front)
                    .expect("enabled");
                let msg = match &message.frame {
                    Frame::Request { msg, .. } | Frame::Response { msg, .. } => msg,
                };
                let _ = write!(
                    line,
                    "{} <- {} {}",
                    node_name(to),
                    node_name(from),
                    trace::msg(msg)
                );
                if to == COORDINATOR {
                    self.coordinator_receive(from, message, &mut line);
                } else {
                    self.participant_receive(to, from, message, &mut line);
                }
            }
            Choice::Lose(from, to) => {
                let message = self
                    .links
                    .get_mut(&(from, to))
                    .and_then(VecDeque::pop_front)
                    .expect("enabled");
                let msg = match &message.frame {
                    Frame::Request { msg, .. } | Frame::Response { msg, .. } => msg,
                };
                let _ = write!(
                    line,
                    "LOSE {} -> {} {}",
                    node_name(from),
                    node_name(to),
                    trace::msg(msg)
                );
            }
            Choice::Durable(node) => {
                let _ = write!(line, "{} durable", node_name(node));
                self.durable(node, &mut line);
            }
            Choice::Notice(node) => {
                let notice = self
                    .notices
                    .get_mut(&node)
                    .and_then(VecDeque::pop_front)
                    .expect("enabled");
                let what = if notice.up { "up" } else { "down" };
                let _ = write!(
                    line,
                    "{} {what} {} e{}",
                    node_name(node),
                    node_name(notice.peer),
                    notice.epoch
                );
                self.notice(node, notice, &mut line);
            }
            Choice::Timer(node) => {
                let at = self.timer_deadline(node).expect("enabled");
                self.now_ms = self.now_ms.max(at);
                self.timer_firings += 1;
                line = format!("{:>6} {} timer", self.now_ms, node_name(node));
                if node == COORDINATOR {
                    self.coordinator_step(Step::Timeout(self.now_ms), &mut line);
                } else {
                    self.participant_step(node, Step::Timeout(self.now_ms), &mut line);
                }
            }
            Choice::Crash(node) => {
                let _ = write!(line, "{} CRASH", node_name(node));
                self.crash(node);
            }
            Choice::Restart(node) => {
                let _ = write!(line, "{} RESTART", node_name(node));
                self.restart(node, &mut line);
            }
        }
        line
    }

    // ---- the network ----

    fn send(&mut self, from: NodeId, to: NodeId, epoch: u64, frame: Frame, line: &mut String) {
        let msg = match &frame {
            Frame::Request { msg, .. } | Frame::Response { msg, .. } => msg,
        };
        let _ = write!(line, " | -> {} {}", node_name(to), trace::msg(msg));
        self.links
            .entry((from, to))
            .or_default()
            .push_back(InFlight {
                deadline_ms: self.now_ms + DELAY_MAX_MS,
                epoch,
                frame,
            });
    }

    fn up(&mut self, node: NodeId, peer: NodeId, epoch: u64) {
        self.channels_mut(node).insert(peer, epoch);
    }

    fn notice(&mut self, node: NodeId, notice: Notice, line: &mut String) {
        if notice.up {
            self.up(node, notice.peer, notice.epoch);
            let input = PeerEvent::Up(notice.peer);
            self.peer_event(node, input, line);
        } else if self.channels(node).get(&notice.peer) == Some(&notice.epoch) {
            self.channels_mut(node).remove(&notice.peer);
            self.peer_event(node, PeerEvent::Down(notice.peer), line);
        } else {
            line.push_str(" | stale");
        }
    }

    fn peer_event(&mut self, node: NodeId, event: PeerEvent, line: &mut String) {
        let now = self.now_ms;
        if node == COORDINATOR {
            let input = match event {
                PeerEvent::Up(peer) => coordinator_core::Input::PeerUp { peer },
                PeerEvent::Down(peer) => coordinator_core::Input::PeerDown { peer },
            };
            self.coordinator_step(Step::Input(now, input), line);
        } else {
            let input = match event {
                PeerEvent::Up(peer) => participant_core::Input::PeerUp { peer },
                PeerEvent::Down(peer) => participant_core::Input::PeerDown { peer },
            };
            self.participant_step(node, Step::Input(now, ParticipantInput(input)), line);
        }
    }

    fn crash(&mut self, node: NodeId) {
        self.crashes += 1;
        if node == COORDINATOR {
            self.coordinator.core = None;
            self.coordinator.channels.clear();
            self.coordinator.write_deadlines.clear();
            self.coordinator_disk.queue.clear();
        } else {
            let (state, disk) = self.participants.get_mut(&node).expect("known");
            state.core = None;
            state.channels.clear();
            state.write_deadlines.clear();
            disk.queue.clear();
        }
        self.notices.remove(&node);
        for peer in all_nodes().into_iter().filter(|peer| *peer != node) {
            self.links.remove(&(node, peer));
            self.links.remove(&(peer, node));
            let epoch = self.epochs[&pair(node, peer)];
            if self.alive(peer) && self.channels(peer).get(&node) == Some(&epoch) {
                let deadline_ms = self.now_ms + DETECT_MAX_MS;
                self.notices.entry(peer).or_default().push_back(Notice {
                    deadline_ms,
                    peer: node,
                    epoch,
                    up: false,
                });
            }
        }
    }

    fn restart(&mut self, node: NodeId, line: &mut String) {
        self.restarts += 1;
        if node == COORDINATOR {
            let config = coordinator_core::Config::new(PARTICIPANTS);
            self.coordinator.core = Some(Shared::new(Coordinator::new(config)));
            let txns = self.coordinator_disk.recover();
            let input = coordinator_core::Input::Recovered { txns };
            self.coordinator_step(Step::Input(self.now_ms, input), line);
        } else {
            let core = Participant::new(node, participant_core::Config::default())
                .expect("the default participant config is valid");
            let (state, disk) = self.participants.get_mut(&node).expect("known");
            state.core = Some(Shared::new(core));
            let txns = disk.in_doubt_txns();
            let input = ParticipantInput(participant_core::Input::Recover { txns });
            self.participant_step(node, Step::Input(self.now_ms, input), line);
        }
        let deadline_ms = self.now_ms + RECONNECT_MAX_MS;
        for peer in all_nodes().into_iter().filter(|peer| *peer != node) {
            if !self.alive(peer) {
                continue;
            }
            let epoch = self.epochs.get_mut(&pair(node, peer)).expect("known pair");
            *epoch += 1;
            let epoch = *epoch;
            for (side, other) in [(node, peer), (peer, node)] {
                self.notices.entry(side).or_default().push_back(Notice {
                    deadline_ms,
                    peer: other,
                    epoch,
                    up: true,
                });
            }
        }
    }

    // ---- durable records ----

    fn durable(&mut self, node: NodeId, line: &mut String) {
        if node == COORDINATOR {
            let (lsn, record) = self.coordinator_disk.queue.pop_front().expect("enabled");
            self.coordinator.write_deadlines.pop_front();
            let _ = write!(line, " {}", trace::coordinator_record(&record));
            if let Err(reason) = self.coordinator_disk.apply(&record) {
                self.error = Some(reason);
                return;
            }
            let input = coordinator_core::Input::Persisted { lsn };
            self.coordinator_step(Step::Input(self.now_ms, input), line);
        } else {
            let (state, disk) = self.participants.get_mut(&node).expect("known");
            let (lsn, record) = disk.queue.pop_front().expect("enabled");
            state.write_deadlines.pop_front();
            let _ = write!(line, " {} {}", record.kind(), txn_name(record.txn()));
            if let Err(reason) = disk.apply(&record) {
                self.error = Some(format!("participant {node}: {reason}"));
                return;
            }
            let input = ParticipantInput(participant_core::Input::Persisted { lsn });
            self.participant_step(node, Step::Input(self.now_ms, input), line);
        }
    }

    // ---- the coordinator's shell ----

    fn coordinator_receive(&mut self, from: NodeId, message: InFlight, line: &mut String) {
        let now = self.now_ms;
        match message.frame {
            Frame::Request { id, msg } => {
                if self.coordinator.channels.get(&from) == Some(&message.epoch) {
                    let input = coordinator_core::Input::Request { from, id, msg };
                    self.coordinator_step(Step::Input(now, input), line);
                } else {
                    line.push_str(" | stale");
                }
            }
            Frame::Response { msg, .. } => {
                let input = coordinator_core::Input::Response { from, msg };
                self.coordinator_step(Step::Input(now, input), line);
            }
        }
    }

    fn coordinator_step(&mut self, step: Step<coordinator_core::Input>, line: &mut String) {
        let mut pending = vec![step];
        while !pending.is_empty() {
            let mut failed = Vec::new();
            for step in pending {
                let Some(core) = self.coordinator.core.as_mut() else {
                    return;
                };
                let outcome = guarded(|| {
                    let outputs = core.step(step);
                    core.get()
                        .check_invariants()
                        .map(|()| outputs)
                        .map_err(|violation| violation.to_string())
                })
                .and_then(|checked| checked);
                let outputs = match outcome {
                    Ok(outputs) => outputs,
                    Err(error) => {
                        self.error = Some(error);
                        return;
                    }
                };
                for output in outputs {
                    if let Some(input) = self.coordinator_output(output, line) {
                        failed.push(Step::Input(self.now_ms, input));
                    }
                }
            }
            pending = failed;
        }
    }

    /// Carries out one output; a send that found no channel comes back as `SendFailed`.
    fn coordinator_output(
        &mut self,
        output: coordinator_core::Output,
        line: &mut String,
    ) -> Option<coordinator_core::Input> {
        match output {
            coordinator_core::Output::Send { to, msg } => {
                let txn = msg.txn()?;
                match self.coordinator.channels.get(&to).copied() {
                    Some(epoch) => {
                        let frame = Frame::Request {
                            id: RequestId(1),
                            msg,
                        };
                        self.send(COORDINATOR, to, epoch, frame, line);
                        None
                    }
                    None => Some(coordinator_core::Input::SendFailed {
                        to,
                        txn,
                        failure: SendFailure::Closed,
                    }),
                }
            }
            coordinator_core::Output::Reply { to, id, msg } => {
                if let Some(epoch) = self.coordinator.channels.get(&to).copied() {
                    self.send(COORDINATOR, to, epoch, Frame::Response { id, msg }, line);
                }
                None
            }
            coordinator_core::Output::Persist { lsn, record } => {
                let _ = write!(line, " | persist {}", trace::coordinator_record(&record));
                self.coordinator_disk.queue.push_back((lsn, record));
                self.coordinator
                    .write_deadlines
                    .push_back(self.now_ms + FSYNC_MAX_MS);
                None
            }
            coordinator_core::Output::ClientResult { client, result, .. } => {
                let _ = write!(line, " | client {}", trace::result_text(&result));
                let index = client.request as usize;
                self.told[index] = match result {
                    TxnResult::Committed { .. } => Told::Committed,
                    TxnResult::Aborted { .. } | TxnResult::Rejected { .. } => Told::Aborted,
                };
                None
            }
        }
    }

    // ---- the participants' shell ----

    fn participant_receive(
        &mut self,
        node: NodeId,
        from: NodeId,
        message: InFlight,
        line: &mut String,
    ) {
        if self.channels(node).get(&from) != Some(&message.epoch) {
            line.push_str(" | stale");
            return;
        }
        let reply_to = ReplyTo {
            peer: from,
            conn: message.epoch,
        };
        let (state, disk) = &self.participants[&node];
        let Some(core) = state.core.as_ref() else {
            return;
        };
        let core = core.get();
        let stored = |txn: TxnId| if core.knows(txn) { None } else { disk.txn(txn) };
        use participant_core::Input;
        let input = match message.frame {
            Frame::Request { id, msg } => match msg {
                Msg::Prepare {
                    txn,
                    protocol,
                    ops,
                    timeout_ms,
                    participants,
                } if from == COORDINATOR => {
                    let values = if core.knows(txn) {
                        Default::default()
                    } else {
                        disk.values(ops.iter().map(Op::key))
                    };
                    Input::Prepare {
                        from: reply_to,
                        id,
                        txn,
                        protocol,
                        ops,
                        timeout_ms,
                        participants,
                        values,
                        stored: stored(txn),
                    }
                }
                Msg::PreCommit { txn } => Input::PreCommit {
                    from: reply_to,
                    id,
                    txn,
                    stored: stored(txn),
                },
                Msg::Decide { txn, decision } => Input::Decide {
                    from: reply_to,
                    id,
                    txn,
                    decision,
                    stored: stored(txn),
                },
                Msg::Release { txn } => Input::Release {
                    from: reply_to,
                    id,
                    txn,
                },
                Msg::StateQuery { txn } => Input::StateQuery {
                    from: reply_to,
                    id,
                    txn,
                    stored: stored(txn),
                },
                other => {
                    let reason = format!("unexpected {}", other.kind());
                    let epoch = message.epoch;
                    self.send(
                        node,
                        from,
                        epoch,
                        Frame::Response {
                            id,
                            msg: Msg::Error { reason },
                        },
                        line,
                    );
                    return;
                }
            },
            Frame::Response { msg, .. } => match msg {
                Msg::DecisionAnswer { txn, answer } => Input::DecisionAnswer { from, txn, answer },
                Msg::StateReply {
                    txn,
                    state,
                    recovered,
                } => Input::StateReply {
                    from,
                    txn,
                    state,
                    recovered,
                },
                Msg::Ack { txn, outcome } => Input::Ack { from, txn, outcome },
                _ => return,
            },
        };
        self.participant_step(
            node,
            Step::Input(self.now_ms, ParticipantInput(input)),
            line,
        );
    }

    fn participant_step(&mut self, node: NodeId, step: Step<ParticipantInput>, line: &mut String) {
        let (state, _) = self.participants.get_mut(&node).expect("known");
        let Some(core) = state.core.as_mut() else {
            return;
        };
        let outcome = guarded(|| {
            let outputs = core.step(step);
            core.get().check_invariants();
            outputs
        });
        let outputs = match outcome {
            Ok(outputs) => outputs,
            Err(error) => {
                self.error = Some(format!("participant {node}: {error}"));
                return;
            }
        };
        for output in outputs {
            match output {
                participant_core::Output::Persist { lsn, record } => {
                    let _ = write!(
                        line,
                        " | persist {} {}",
                        record.kind(),
                        txn_name(record.txn())
                    );
                    let deadline = self.now_ms + FSYNC_MAX_MS;
                    let (state, disk) = self.participants.get_mut(&node).expect("known");
                    disk.queue.push_back((lsn, record));
                    state.write_deadlines.push_back(deadline);
                }
                participant_core::Output::Reply { to, id, msg } => {
                    if self.channels(node).get(&to.peer) == Some(&to.conn) {
                        self.send(node, to.peer, to.conn, Frame::Response { id, msg }, line);
                    }
                }
                participant_core::Output::Send { to, msg } => {
                    if let Some(epoch) = self.channels(node).get(&to).copied() {
                        let frame = Frame::Request {
                            id: RequestId(1),
                            msg,
                        };
                        self.send(node, to, epoch, frame, line);
                    }
                }
            }
        }
    }

    // ---- judging ----

    /// Atomicity: no transaction durably committed at one participant and aborted at the
    /// other (states only move forward on disk, so checking every state is enough).
    pub fn atomicity_violation(&self, limits: &Limits) -> Option<String> {
        (0..limits.txns.len()).find_map(|index| {
            let txn = txn_id(index);
            let states: Vec<(NodeId, StoredState)> = self
                .participants
                .iter()
                .filter_map(|(node, (_, disk))| disk.txns.get(&txn).map(|row| (*node, row.state)))
                .collect();
            let committed = states.iter().any(|(_, s)| *s == StoredState::Committed);
            let aborted = states.iter().any(|(_, s)| *s == StoredState::Aborted);
            (committed && aborted)
                .then(|| format!("{} committed and aborted: {states:?}", txn_name(txn)))
        })
    }

    /// Every transaction submitted and committed at each participant that writes in it.
    pub fn all_committed(&self, limits: &Limits) -> bool {
        self.submitted == limits.txns.len()
            && limits.txns.iter().enumerate().all(|(index, spec)| {
                spec.parts.iter().all(|(node, ops)| {
                    ops.iter().all(Op::is_read)
                        || self.participants[node]
                            .1
                            .txns
                            .get(&txn_id(index))
                            .map(|r| r.state)
                            == Some(StoredState::Committed)
                })
            })
    }

    /// Every transaction submitted, told aborted, and nowhere committed or in doubt.
    pub fn all_aborted(&self, limits: &Limits) -> bool {
        self.submitted == limits.txns.len()
            && (0..limits.txns.len()).all(|index| {
                self.told[index] == Told::Aborted
                    && self.participants.values().all(|(_, disk)| {
                        disk.txns
                            .get(&txn_id(index))
                            .is_none_or(|row| row.state == StoredState::Aborted)
                    })
            })
    }

    /// A hash that is equal for equal states: of the full content (the cores' own
    /// `Debug`, with the participant's one hash map's entries sorted).
    pub fn fingerprint(&self) -> u64 {
        let mut out = String::with_capacity(FINGERPRINT_CAPACITY_BYTES);
        let _ = write!(
            out,
            "{} {} {} {} {} {:?} {:?} {:?} {:?}",
            self.now_ms,
            self.submitted,
            self.crashes,
            self.restarts,
            self.timer_firings,
            self.told,
            self.links,
            self.notices,
            self.epochs
        );
        match &self.coordinator.core {
            Some(core) => {
                let _ = write!(out, " c {:?}", core.get());
            }
            None => out.push_str(" c -"),
        }
        let _ = write!(
            out,
            " {:?} {:?} {:?}",
            self.coordinator.channels, self.coordinator_disk.decisions, self.coordinator_disk.queue
        );
        let mut core_text = String::new();
        for (node, (state, disk)) in &self.participants {
            let _ = write!(out, " p{}", node.0);
            match &state.core {
                Some(core) => {
                    core_text.clear();
                    let _ = write!(core_text, "{:?}", core.get());
                    out.push_str(&sorted_hash_maps(&core_text));
                }
                None => out.push('-'),
            }
            let _ = write!(
                out,
                " {:?} {:?} {:?} {:?} {:?}",
                state.channels, disk.kv, disk.txns, disk.read_only, disk.queue
            );
        }
        let mut hasher = DefaultHasher::new();
        hasher.write(out.as_bytes());
        hasher.finish()
    }
}

/// Room for one state's text (a few kB with two transactions), to avoid regrowing it.
const FINGERPRINT_CAPACITY_BYTES: usize = 16 * 1024;

enum PeerEvent {
    Up(NodeId),
    Down(NodeId),
}

/// The participant core's lock table is a `HashMap`, whose `Debug` order varies between
/// equal maps: sorts the entries of `locks: {..}` so equal states print equally.
fn sorted_hash_maps(debug: &str) -> String {
    const FIELD: &str = "locks: {";
    let Some(start) = debug.find(FIELD) else {
        return debug.to_string();
    };
    let body_start = start + FIELD.len();
    let Some(body_len) = debug[body_start..].find('}') else {
        return debug.to_string();
    };
    let body = &debug[body_start..body_start + body_len];
    let mut entries: Vec<&str> = body.split(", ").filter(|e| !e.is_empty()).collect();
    entries.sort_unstable();
    format!(
        "{}{}{}",
        &debug[..body_start],
        entries.join(", "),
        &debug[body_start + body_len..]
    )
}

/// The model's transactions: a transfer p1 → p2, then a second debit on the same
/// account (a lock conflict while the first holds it; NO on bounds if it is too large).
pub fn model_txns(protocol: wire::Protocol, count: usize) -> Vec<TxnSpec> {
    let add = |key: &str, delta: i64, min: Option<i64>| Op::Add {
        key: key.to_string(),
        delta,
        min,
        max: None,
    };
    let first = TxnSpec {
        protocol,
        timeout_ms: 1_000,
        parts: vec![
            (NodeId(1), vec![add("acct0", -30, Some(0))]),
            (NodeId(2), vec![add("acct0", 30, None)]),
        ],
    };
    let second = TxnSpec {
        protocol,
        timeout_ms: 1_000,
        parts: vec![
            (NodeId(1), vec![add("acct0", -60, Some(0))]),
            (
                NodeId(2),
                vec![Op::Put {
                    key: "k0".to_string(),
                    value: wire::Value::Int(1),
                }],
            ),
        ],
    };
    [first, second].into_iter().take(count).collect()
}
