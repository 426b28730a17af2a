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

use coordinator::core::{self as coordinator_core, ClientRef, Coordinator, SendFailure};
use participant::core::inbound::{self, Plan};
use participant::core::{self as participant_core, Participant, ReplyTo, StoredState};
use wire::retention::Horizon;
use wire::{NodeId, Op, Request, RequestId, Response, Role, TxnId, TxnResult, TxnSpec};

use crate::sim::cores::CoordinatorCore;
use crate::sim::disk::{CoordinatorDisk, ParticipantDisk};
use crate::sim::history::txn_name;
use crate::sim::net::Frame;
use crate::sim::panics::guarded;
use crate::sim::planted::SecondDecider;
use crate::sim::trace::{self, COORDINATOR, node_name};
use crate::sim::workload;

/// What one transition did, in words. Written only when a path is printed: formatting
/// every transition of a search would cost about as much as the transition itself.
pub struct Line(Option<String>);

impl Line {
    pub fn on() -> Line {
        Line(Some(String::new()))
    }

    pub fn off() -> Line {
        Line(None)
    }

    pub fn into_text(self) -> String {
        self.0.unwrap_or_default()
    }
}

/// `write!` to a `Line`; the arguments are evaluated only if it is on.
macro_rules! note {
    ($line:expr, $($arg:tt)*) => {
        if let Some(text) = $line.0.as_mut() {
            let _ = write!(text, $($arg)*);
        }
    };
}

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
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Notice {
    deadline_ms: u64,
    peer: NodeId,
    epoch: u64,
    up: bool,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct InFlight {
    deadline_ms: u64,
    epoch: u64,
    frame: Frame,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Node<C> {
    core: Option<C>,
    /// The current channel epoch to each peer that is up, as this node's shell sees it.
    channels: BTreeMap<NodeId, u64>,
    /// Deadlines of the queued (not yet durable) log records, in order.
    write_deadlines: VecDeque<u64>,
}

/// The coordinator core under test: the real one, or a planted-bug wrapper around it
/// (an enum rather than a trait object, so that the state stays `Clone + Eq + Hash`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum CoordinatorUnderTest {
    Real(Coordinator),
    SecondDecider(SecondDecider),
}

impl CoordinatorUnderTest {
    fn new(limits: &Limits) -> Self {
        let core = Coordinator::new(coordinator_core::Config::new(PARTICIPANTS));
        if limits.planted_second_decider {
            CoordinatorUnderTest::SecondDecider(SecondDecider::new(core))
        } else {
            CoordinatorUnderTest::Real(core)
        }
    }

    fn get(&self) -> &dyn CoordinatorCore {
        match self {
            CoordinatorUnderTest::Real(core) => core,
            CoordinatorUnderTest::SecondDecider(core) => core,
        }
    }

    fn get_mut(&mut self) -> &mut dyn CoordinatorCore {
        match self {
            CoordinatorUnderTest::Real(core) => core,
            CoordinatorUnderTest::SecondDecider(core) => core,
        }
    }
}

/// One thing that happens to a core at the current time.
enum Step<I> {
    Input(I),
    Timeout,
}

/// What the client was told about each transaction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Told {
    Nothing,
    Committed,
    Aborted,
}

/// One transition.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Choice {
    Submit,
    Deliver(NodeId, NodeId),
    Lose(NodeId, NodeId),
    Durable(NodeId),
    Notice(NodeId),
    Timer(NodeId),
    Crash(NodeId),
    Restart(NodeId),
    /// Retention: the participant prunes every decided txn up to this one (its core
    /// told the horizon first), as if the window had passed.
    Prune(NodeId, TxnId),
}

/// What the exploration may do.
#[derive(Clone, Debug)]
pub struct Limits {
    pub txns: Vec<TxnSpec>,
    pub crashes_max: u32,
    /// Links may lose the message at their head (otherwise only crashes lose messages).
    pub lossy: bool,
    pub timer_firings_max: u32,
    /// Run the coordinator as `planted::SecondDecider` (a checker must then find a split).
    pub planted_second_decider: bool,
    /// Participants may prune any decided txn at any time (`Choice::Prune`).
    pub prune: bool,
}

/// The whole cluster. Equal states are equal as values (every map is ordered), so the
/// derived `Hash` is what the checker deduplicates by.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct System {
    now_ms: u64,
    coordinator: Node<CoordinatorUnderTest>,
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
    pub fn initial(limits: &Limits) -> System {
        let mut system = System {
            now_ms: 0,
            coordinator: Node {
                core: Some(CoordinatorUnderTest::new(limits)),
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
                        core: Some(core),
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
                let mut line = Line::off();
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
            core.poll_timeout().map(|at| at.0)
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
        if limits.prune {
            for (&node, (state, disk)) in &self.participants {
                if state.core.is_none() {
                    continue;
                }
                let decided = disk.txns.iter().filter(|(_, row)| {
                    matches!(row.state, StoredState::Committed | StoredState::Aborted)
                });
                let prunable = decided
                    .map(|(txn, _)| *txn)
                    .chain(disk.read_only.keys().copied());
                for txn in prunable {
                    choices.push(Choice::Prune(node, txn));
                }
            }
        }
        choices
    }

    /// Applies one transition, describing it in `line`.
    pub fn apply(&mut self, choice: Choice, limits: &Limits, line: &mut Line) {
        if let Choice::Timer(node) = choice {
            // The only transition that moves time: to the timer's deadline.
            let at = self.timer_deadline(node).expect("enabled");
            self.now_ms = self.now_ms.max(at);
        }
        note!(line, "{:>6} ", self.now_ms);
        match choice {
            Choice::Submit => {
                let index = self.submitted;
                self.submitted += 1;
                let txn = txn_id(index);
                note!(line, "c submit {}", txn_name(txn));
                let input = coordinator_core::Input::Submit {
                    client: ClientRef {
                        channel: 0,
                        request: index as u64,
                    },
                    txn,
                    spec: limits.txns[index].clone(),
                };
                self.coordinator_step(Step::Input(input), line);
            }
            Choice::Deliver(from, to) => {
                let message = self
                    .links
                    .get_mut(&(from, to))
                    .and_then(VecDeque::pop_front)
                    .expect("enabled");
                note!(
                    line,
                    "{} <- {} {}",
                    node_name(to),
                    node_name(from),
                    trace::frame(&message.frame)
                );
                if to == COORDINATOR {
                    self.coordinator_receive(from, message, line);
                } else {
                    self.participant_receive(to, from, message, line);
                }
            }
            Choice::Lose(from, to) => {
                let message = self
                    .links
                    .get_mut(&(from, to))
                    .and_then(VecDeque::pop_front)
                    .expect("enabled");
                note!(
                    line,
                    "LOSE {} -> {} {}",
                    node_name(from),
                    node_name(to),
                    trace::frame(&message.frame)
                );
            }
            Choice::Durable(node) => {
                note!(line, "{} durable", node_name(node));
                self.durable(node, line);
            }
            Choice::Notice(node) => {
                let notice = self
                    .notices
                    .get_mut(&node)
                    .and_then(VecDeque::pop_front)
                    .expect("enabled");
                let what = if notice.up { "up" } else { "down" };
                note!(
                    line,
                    "{} {what} {} e{}",
                    node_name(node),
                    node_name(notice.peer),
                    notice.epoch
                );
                self.notice(node, notice, line);
            }
            Choice::Timer(node) => {
                self.timer_firings += 1;
                note!(line, "{} timer", node_name(node));
                if node == COORDINATOR {
                    self.coordinator_step(Step::Timeout, line);
                } else {
                    self.participant_step(node, Step::Timeout, line);
                }
            }
            Choice::Crash(node) => {
                note!(line, "{} CRASH", node_name(node));
                self.crash(node);
            }
            Choice::Restart(node) => {
                note!(line, "{} RESTART", node_name(node));
                self.restart(node, limits, line);
            }
            Choice::Prune(node, txn) => {
                note!(line, "{} PRUNE up to {}", node_name(node), txn_name(txn));
                // Just above `txn`: model ids grow by one per submit.
                let horizon =
                    Horizon::from_txn_id(TxnId(uuid::Uuid::from_u128(txn.0.as_u128() + 1)));
                let (state, disk) = self.participants.get_mut(&node).expect("known");
                if let Some(core) = state.core.as_mut() {
                    core.set_horizon(horizon);
                }
                disk.prune(horizon);
            }
        }
    }

    // ---- the network ----

    fn send(&mut self, from: NodeId, to: NodeId, epoch: u64, frame: Frame, line: &mut Line) {
        note!(line, " | -> {} {}", node_name(to), trace::frame(&frame));
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

    fn notice(&mut self, node: NodeId, notice: Notice, line: &mut Line) {
        if notice.up {
            self.up(node, notice.peer, notice.epoch);
            let input = PeerEvent::Up(notice.peer);
            self.peer_event(node, input, line);
        } else if self.channels(node).get(&notice.peer) == Some(&notice.epoch) {
            self.channels_mut(node).remove(&notice.peer);
            self.peer_event(node, PeerEvent::Down(notice.peer), line);
        } else {
            note!(line, " | stale");
        }
    }

    fn peer_event(&mut self, node: NodeId, event: PeerEvent, line: &mut Line) {
        if node == COORDINATOR {
            let input = match event {
                PeerEvent::Up(peer) => coordinator_core::Input::PeerUp { peer },
                PeerEvent::Down(peer) => coordinator_core::Input::PeerDown { peer },
            };
            self.coordinator_step(Step::Input(input), line);
        } else {
            let input = match event {
                PeerEvent::Up(peer) => participant_core::Input::PeerUp { peer },
                PeerEvent::Down(peer) => participant_core::Input::PeerDown { peer },
            };
            self.participant_step(node, Step::Input(input), line);
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

    fn restart(&mut self, node: NodeId, limits: &Limits, line: &mut Line) {
        self.restarts += 1;
        if node == COORDINATOR {
            self.coordinator.core = Some(CoordinatorUnderTest::new(limits));
            let txns = self.coordinator_disk.recover();
            let input = coordinator_core::Input::Recovered { txns };
            self.coordinator_step(Step::Input(input), line);
        } else {
            let core = Participant::new(node, participant_core::Config::default())
                .expect("the default participant config is valid");
            let mut core = core;
            let (state, disk) = self.participants.get_mut(&node).expect("known");
            core.set_horizon(disk.horizon);
            state.core = Some(core);
            let txns = disk.in_doubt_txns();
            // The disk here keeps no read holds (`apply`, not `apply_at`): the model
            // checks atomicity and agreement, which shared locks do not touch; the
            // simulator's serializability checkers cover them.
            let input = participant_core::Input::Recover {
                txns,
                holds: Vec::new(),
                wall_ms: self.now_ms,
            };
            self.participant_step(node, Step::Input(input), line);
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

    fn durable(&mut self, node: NodeId, line: &mut Line) {
        if node == COORDINATOR {
            let (lsn, record) = self.coordinator_disk.queue.pop_front().expect("enabled");
            self.coordinator.write_deadlines.pop_front();
            note!(line, " {}", trace::coordinator_record(&record));
            if let Err(reason) = self.coordinator_disk.apply(&record) {
                self.error = Some(reason);
                return;
            }
            let input = coordinator_core::Input::Persisted { lsn };
            self.coordinator_step(Step::Input(input), line);
        } else {
            let (state, disk) = self.participants.get_mut(&node).expect("known");
            let (lsn, record) = disk.queue.pop_front().expect("enabled");
            state.write_deadlines.pop_front();
            note!(line, " {} {}", record.kind(), txn_name(record.txn()));
            if let Err(reason) = disk.apply(&record) {
                self.error = Some(format!("participant {node}: {reason}"));
                return;
            }
            let input = participant_core::Input::Persisted { lsn };
            self.participant_step(node, Step::Input(input), line);
        }
    }

    // ---- the coordinator's shell ----

    fn coordinator_receive(&mut self, from: NodeId, message: InFlight, line: &mut Line) {
        match message.frame {
            Frame::Request { id, msg } => {
                if self.coordinator.channels.get(&from) != Some(&message.epoch) {
                    note!(line, " | stale");
                    return;
                }
                match msg {
                    Request::Coordinator(msg) => {
                        let input = coordinator_core::Input::Request { from, id, msg };
                        self.coordinator_step(Step::Input(input), line);
                    }
                    // Participants in the model send the coordinator only decision queries.
                    Request::Participant(_) | Request::Client(_) => note!(line, " | not served"),
                }
            }
            Frame::Response { msg, .. } => match msg {
                Response::Participant(msg) => {
                    let input = coordinator_core::Input::Response { from, msg };
                    self.coordinator_step(Step::Input(input), line);
                }
                Response::Coordinator(_) | Response::Client(_) => note!(line, " | not an answer"),
            },
        }
    }

    fn coordinator_step(&mut self, step: Step<coordinator_core::Input>, line: &mut Line) {
        let mut pending = vec![step];
        while !pending.is_empty() {
            let mut failed = Vec::new();
            for step in pending {
                let Some(core) = self.coordinator.core.as_mut() else {
                    return;
                };
                let now = coordinator_core::Millis(self.now_ms);
                let outcome = guarded(|| {
                    let core = core.get_mut();
                    match step {
                        Step::Input(input) => core.handle(now, input),
                        Step::Timeout => core.handle_timeout(now),
                    }
                    let outputs: Vec<_> = std::iter::from_fn(|| core.poll_output()).collect();
                    core.check_invariants().map(|()| outputs)
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
                        failed.push(Step::Input(input));
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
        line: &mut Line,
    ) -> Option<coordinator_core::Input> {
        match output {
            coordinator_core::Output::Send { to, msg } => {
                let txn = msg.txn();
                match self.coordinator.channels.get(&to).copied() {
                    Some(epoch) => {
                        let frame = Frame::Request {
                            id: RequestId(1),
                            msg: msg.into(),
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
                    let msg = msg.into();
                    self.send(COORDINATOR, to, epoch, Frame::Response { id, msg }, line);
                }
                None
            }
            coordinator_core::Output::Persist { lsn, record } => {
                note!(line, " | persist {}", trace::coordinator_record(&record));
                self.coordinator_disk.queue.push_back((lsn, record));
                self.coordinator
                    .write_deadlines
                    .push_back(self.now_ms + FSYNC_MAX_MS);
                None
            }
            coordinator_core::Output::ClientResult { client, result, .. } => {
                note!(line, " | client {}", trace::result_text(&result));
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
        line: &mut Line,
    ) {
        if self.channels(node).get(&from) != Some(&message.epoch) {
            note!(line, " | stale");
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
        // The only coordinator dials as one; everyone else is a peer participant.
        let role = if from == COORDINATOR {
            Role::Coordinator
        } else {
            Role::Participant
        };
        let input = match message.frame {
            Frame::Request { id, msg } => match inbound::plan(core, role, msg) {
                Plan::Protocol { msg, needs } => {
                    inbound::request_input(reply_to, id, msg, disk.read(&needs))
                }
                // Nothing in the model asks for a status or is an operator.
                Plan::Status | Plan::Lookup(_) | Plan::Resolve { .. } => return,
                Plan::Refuse { reply, .. } => {
                    let epoch = message.epoch;
                    self.send(node, from, epoch, Frame::Response { id, msg: reply }, line);
                    return;
                }
            },
            Frame::Response { msg, .. } => match inbound::response_input(from, msg) {
                Ok(input) => input,
                Err(_) => return,
            },
        };
        self.participant_step(node, Step::Input(input), line);
    }

    fn participant_step(
        &mut self,
        node: NodeId,
        step: Step<participant_core::Input>,
        line: &mut Line,
    ) {
        let (state, _) = self.participants.get_mut(&node).expect("known");
        let Some(core) = state.core.as_mut() else {
            return;
        };
        let now = participant_core::Millis(self.now_ms);
        let outcome = guarded(|| {
            match step {
                Step::Input(input) => core.handle(now, input),
                Step::Timeout => core.handle_timeout(now),
            }
            let outputs: Vec<_> = std::iter::from_fn(|| core.poll_output()).collect();
            core.check_invariants()
                .map(|()| outputs)
                .map_err(|violation| violation.to_string())
        })
        .and_then(|checked| checked);
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
                    note!(
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
                        let msg = msg.into();
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
                participant_core::Output::ClientReply { .. } => {}
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
                .filter_map(|(node, (_, disk))| {
                    disk.state_kept_or_pruned(txn).map(|state| (*node, state))
                })
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
                            .state_kept_or_pruned(txn_id(index))
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
                        disk.state_kept_or_pruned(txn_id(index))
                            .is_none_or(|state| state == StoredState::Aborted)
                    })
            })
    }
}

enum PeerEvent {
    Up(NodeId),
    Down(NodeId),
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
