//! The simulation loop: the event queue on a virtual clock, the nodes (core + disk +
//! shell state), fault injection, and the two phases (safety, then healing) of a run.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::ops::RangeInclusive;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;
use wire::{NodeId, Request, TxnId};

use super::check::{self, CoordinatorEnd, ParticipantEnd, View, Violation};
use super::cores::{CoordinatorCore, ParticipantCore};
use super::disk::{CoordinatorDisk, ParticipantDisk};
use super::history::{Breach, ClientView, History, TxnInfo, TxnKind, txn_name};
use super::net::{Frame, Net, Side};
use super::options::{Options, Planted};
use super::trace::{self, COORDINATOR, node_name};
use super::workload;

/// What one run found.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub participants: usize,
    /// Transactions the client submitted (accepted by a live coordinator).
    pub txns: u64,
    /// What the client was told: committed, aborted (NO votes, timeouts, peers down),
    /// unknown (the coordinator crashed first).
    pub committed: u64,
    pub aborted: u64,
    pub unknown: u64,
    /// Aborts by cause: `bounds`, `lock conflict`, `participant down`, `timeout`, `other`.
    pub aborted_by: BTreeMap<&'static str, u64>,
    /// Read-all bank transactions committed and aborted (the read abort rate).
    pub read_all_committed: u64,
    pub read_all_aborted: u64,
    pub violations: Vec<Violation>,
    /// 3PC splits a fault outside 3PC's model allows, each naming that fault.
    pub excused: Vec<String>,
    /// One line per event (empty unless `Options::trace`).
    pub trace: Vec<String>,
    pub events: u64,
    /// Virtual time when the run ended.
    pub end_ms: u64,
    /// Participant txns (and read-only votes) pruned by retention, over every node.
    pub pruned: u64,
}

/// Runs one seed to the end and checks it.
pub fn run(seed: u64, options: &Options) -> Report {
    if let Err(reason) = options.validate() {
        return Report {
            seed,
            participants: 0,
            txns: 0,
            committed: 0,
            aborted: 0,
            unknown: 0,
            aborted_by: BTreeMap::new(),
            read_all_committed: 0,
            read_all_aborted: 0,
            violations: vec![Violation {
                checker: "setup",
                detail: reason,
            }],
            excused: Vec::new(),
            trace: Vec::new(),
            events: 0,
            end_ms: 0,
            pruned: 0,
        };
    }
    let mut world = World::new(seed, options.clone());
    world.run();
    world.report()
}

#[derive(Debug)]
pub(super) enum Event {
    Submit,
    Deliver {
        from: NodeId,
        to: NodeId,
        epoch: u64,
        frame: Frame,
    },
    SideUp {
        node: NodeId,
        epoch: u64,
    },
    SideDown {
        node: NodeId,
        epoch: u64,
    },
    Connect {
        x: NodeId,
        y: NodeId,
    },
    DiskFlush {
        node: NodeId,
        incarnation: u64,
    },
    Timer {
        node: NodeId,
        incarnation: u64,
    },
    Fault,
    Crash {
        node: NodeId,
    },
    Restart {
        node: NodeId,
    },
    Heal {
        x: NodeId,
        y: NodeId,
    },
    StartHealing,
}

struct Scheduled {
    at_ms: u64,
    seq: u64,
    event: Event,
}

// A min-heap on (time, insertion order): equal times run in the order scheduled.
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}

impl Eq for Scheduled {}

/// A node's local clock: starts at 0 when the process starts (as `Instant` does in the
/// shells), runs at a slightly wrong rate, and may jump forward.
#[derive(Clone, Copy, Debug)]
pub(super) struct Clock {
    started_ms: u64,
    jumps_ms: u64,
    rate_ppm: u64,
}

const PPM: u64 = 1_000_000;

impl Clock {
    fn now_ms(&self, vt_ms: u64) -> u64 {
        let elapsed = u128::from(vt_ms.saturating_sub(self.started_ms));
        (elapsed * u128::from(self.rate_ppm) / u128::from(PPM)) as u64 + self.jumps_ms
    }

    /// The first virtual time at which this clock reads at least `local_ms`.
    fn vt_at(&self, local_ms: u64) -> u64 {
        let local = u128::from(local_ms.saturating_sub(self.jumps_ms));
        let rate = u128::from(self.rate_ppm);
        self.started_ms + (local * u128::from(PPM)).div_ceil(rate) as u64
    }
}

/// A node's process: whether it runs, and what its shell keeps besides the core.
#[derive(Debug)]
pub(super) struct Host {
    pub alive: bool,
    /// Bumped at every restart; events of an older incarnation are ignored.
    pub incarnation: u64,
    pub clock: Clock,
    /// The current channel (epoch) to each peer, from its `Up` until its `Down`.
    pub channels: BTreeMap<NodeId, u64>,
    /// When the pending timer event fires, if one is pending.
    pub timer_ms: Option<u64>,
    pub flush_scheduled: bool,
}

pub(super) struct CoordinatorNode {
    pub host: Host,
    pub core: Option<Box<dyn CoordinatorCore>>,
    pub disk: CoordinatorDisk,
    /// Client requests waiting for a result: request number → txn.
    pub clients: BTreeMap<u64, TxnId>,
}

pub(super) struct ParticipantNode {
    pub host: Host,
    pub core: Option<Box<dyn ParticipantCore>>,
    pub disk: ParticipantDisk,
}

pub(super) struct World {
    pub options: Options,
    pub rng: StdRng,
    pub now_ms: u64,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    /// By node id: `COORDINATOR`, then the next ids (`Options::coordinators` of them).
    pub coordinators: BTreeMap<NodeId, CoordinatorNode>,
    pub participants: BTreeMap<NodeId, ParticipantNode>,
    pub net: Net,
    pub history: History,
    pub violations: Vec<Violation>,
    /// The excused 3PC splits, filled at the end of the run.
    excused: Vec<String>,
    trace: Option<Vec<String>>,
    line: String,
    pub healing: bool,
    /// A violation that ends the run at once (a panic, a refused record).
    pub stopped: bool,
    seed: u64,
    next_txn: u64,
    events: u64,
    crashes: u32,
}

fn host(clock_rate_ppm: u64) -> Host {
    Host {
        alive: true,
        incarnation: 1,
        clock: Clock {
            started_ms: 0,
            jumps_ms: 0,
            rate_ppm: clock_rate_ppm,
        },
        channels: BTreeMap::new(),
        timer_ms: None,
        flush_scheduled: false,
    }
}

impl World {
    fn new(seed: u64, options: Options) -> World {
        let mut rng = StdRng::seed_from_u64(seed);
        let count = options.participants.unwrap_or_else(|| {
            rng.random_range(super::options::PARTICIPANTS_MIN..=super::options::PARTICIPANTS_MAX)
        });
        let drift = options.faults.clock_drift_ppm_max;
        let rate = |rng: &mut StdRng| rng.random_range(PPM - drift..=PPM + drift);
        let coordinator_node = |rng: &mut StdRng| CoordinatorNode {
            host: host(rate(rng)),
            core: None,
            disk: CoordinatorDisk::default(),
            clients: BTreeMap::new(),
        };
        let mut coordinators = BTreeMap::new();
        coordinators.insert(COORDINATOR, coordinator_node(&mut rng));
        let coordinator_ids: Vec<NodeId> = (0..options.coordinators)
            .map(|index| NodeId(COORDINATOR.0 + index as u32))
            .collect();
        let mut participants = BTreeMap::new();
        let mut net = Net::default();
        for index in 1..=count {
            let id = NodeId(index as u32);
            participants.insert(
                id,
                ParticipantNode {
                    host: host(rate(&mut rng)),
                    core: None,
                    disk: ParticipantDisk::with_data(workload::initial_data()),
                },
            );
            // Each coordinator has its own channel to every participant.
            for &coordinator in &coordinator_ids {
                net.add_pair(coordinator, id);
            }
        }
        // The participant mesh: one channel per pair, dialled by the larger id.
        for larger in 1..=count {
            for smaller in 1..larger {
                net.add_pair(NodeId(larger as u32), NodeId(smaller as u32));
            }
        }
        // Drawn after the rest, so a one-coordinator run draws what it always drew.
        for &coordinator in &coordinator_ids[1..] {
            coordinators.insert(coordinator, coordinator_node(&mut rng));
        }
        let trace = options.trace.then(Vec::new);
        World {
            options,
            rng,
            now_ms: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            coordinators,
            participants,
            net,
            history: History::default(),
            violations: Vec::new(),
            excused: Vec::new(),
            trace,
            line: String::new(),
            healing: false,
            stopped: false,
            seed,
            next_txn: 0,
            events: 0,
            crashes: 0,
        }
    }

    fn run(&mut self) {
        self.begin(
            "sim",
            format!(
                "seed {} participants {} protocol {} planted {:?}",
                self.seed,
                self.participants.len(),
                self.options.protocol.as_str(),
                self.options.planted
            ),
        );
        for node in self.coordinator_ids() {
            self.start_coordinator(node);
        }
        for node in self.participant_ids() {
            self.start_participant(node);
        }
        self.end_line();
        let pairs: Vec<(NodeId, NodeId)> = self.net.pairs.keys().copied().collect();
        for (x, y) in pairs {
            self.schedule(0, Event::Connect { x, y });
        }
        let first_submit = self.random(self.options.submit_interval_ms.clone());
        self.schedule(first_submit, Event::Submit);
        if self.options.faults.random_faults() {
            let first_fault = self.random(self.options.faults.interval_ms.clone());
            self.schedule(first_fault, Event::Fault);
        }
        self.schedule(self.options.safety_ms, Event::StartHealing);
        let end_ms = self.options.safety_ms + self.options.healing_ms_max;
        while let Some(next) = self.queue.pop() {
            if next.at_ms > end_ms {
                self.queue.push(next);
                break;
            }
            self.now_ms = next.at_ms;
            self.events += 1;
            self.dispatch(next.event);
            self.end_line();
            if self.stopped {
                return;
            }
            if self.events.is_multiple_of(1024) {
                self.net.prune();
            }
        }
        self.finish(!self.queue.is_empty());
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Submit => self.submit(),
            Event::Deliver {
                from,
                to,
                epoch,
                frame,
            } => self.deliver(from, to, epoch, frame),
            Event::SideUp { node, epoch } => {
                let pending = self
                    .net
                    .conns
                    .get(&epoch)
                    .is_some_and(|conn| conn.side(node) == Side::Pending);
                if pending {
                    self.side_up(node, epoch);
                }
            }
            Event::SideDown { node, epoch } => self.side_down(node, epoch),
            Event::Connect { x, y } => self.connect(x, y),
            Event::DiskFlush { node, incarnation } => {
                if self.alive_as(node, incarnation) {
                    self.host_mut(node).flush_scheduled = false;
                    if self.is_coordinator(node) {
                        self.coordinator_flush_disk(node);
                    } else {
                        self.participant_flush_disk(node);
                    }
                }
            }
            Event::Timer { node, incarnation } => {
                if self.alive_as(node, incarnation) {
                    let now_ms = self.now_ms;
                    let host = self.host_mut(node);
                    if host.timer_ms.is_some_and(|at| at <= now_ms) {
                        host.timer_ms = None;
                    }
                    if self.is_coordinator(node) {
                        self.begin(&node_name(node), "timer".to_string());
                        self.coordinator_settle(node);
                    } else {
                        self.begin(&node_name(node), "timer".to_string());
                        self.participant_timer(node);
                    }
                }
            }
            Event::Fault => self.fault(),
            Event::Crash { node } => {
                if !self.healing {
                    self.crash(node);
                }
            }
            Event::Restart { node } => self.restart(node),
            Event::Heal { x, y } => self.heal(x, y),
            Event::StartHealing => self.start_healing(),
        }
    }

    // ---- scheduling and small helpers ----

    pub(super) fn schedule(&mut self, at_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at_ms,
            seq: self.seq,
            event,
        });
    }

    pub(super) fn random(&mut self, range: RangeInclusive<u64>) -> u64 {
        self.rng.random_range(range)
    }

    pub(super) fn after(&mut self, range: RangeInclusive<u64>) -> u64 {
        self.now_ms + self.random(range)
    }

    pub(super) fn participant_ids(&self) -> Vec<NodeId> {
        self.participants.keys().copied().collect()
    }

    pub(super) fn coordinator_ids(&self) -> Vec<NodeId> {
        self.coordinators.keys().copied().collect()
    }

    pub(super) fn is_coordinator(&self, node: NodeId) -> bool {
        self.coordinators.contains_key(&node)
    }

    pub(super) fn coord_mut(&mut self, node: NodeId) -> &mut CoordinatorNode {
        self.coordinators.get_mut(&node).expect("known coordinator")
    }

    pub(super) fn host(&self, node: NodeId) -> &Host {
        if let Some(coordinator) = self.coordinators.get(&node) {
            &coordinator.host
        } else {
            &self.participants[&node].host
        }
    }

    pub(super) fn host_mut(&mut self, node: NodeId) -> &mut Host {
        if self.is_coordinator(node) {
            &mut self.coord_mut(node).host
        } else {
            &mut self.participants.get_mut(&node).expect("known node").host
        }
    }

    fn alive_as(&self, node: NodeId, incarnation: u64) -> bool {
        let host = self.host(node);
        host.alive && host.incarnation == incarnation
    }

    /// The node's own clock reading now.
    pub(super) fn local_ms(&self, node: NodeId) -> u64 {
        self.host(node).clock.now_ms(self.now_ms)
    }

    /// Schedules the node's next timer event for the core's deadline (in its local time).
    pub(super) fn schedule_timer(&mut self, node: NodeId, deadline_local_ms: Option<u64>) {
        let Some(deadline) = deadline_local_ms else {
            return;
        };
        let now_ms = self.now_ms;
        let host = self.host_mut(node);
        if !host.alive {
            return;
        }
        let at = host.clock.vt_at(deadline).max(now_ms);
        if host.timer_ms.is_some_and(|pending| pending <= at) {
            return;
        }
        host.timer_ms = Some(at);
        let incarnation = host.incarnation;
        self.schedule(at, Event::Timer { node, incarnation });
    }

    pub(super) fn schedule_flush(&mut self, node: NodeId) {
        let host = self.host_mut(node);
        if host.flush_scheduled {
            return;
        }
        host.flush_scheduled = true;
        let incarnation = host.incarnation;
        let slow_pct = self.options.faults.slow_write_pct;
        let slow = !self.healing && slow_pct > 0 && self.rng.random_range(0..100) < slow_pct;
        let at = if slow {
            let at = self.after(self.options.faults.slow_write_ms.clone());
            note!(
                self,
                "SLOW WRITE {}: durable in {} ms",
                node_name(node),
                at - self.now_ms
            );
            at
        } else {
            self.after(self.options.fsync_ms.clone())
        };
        self.schedule(at, Event::DiskFlush { node, incarnation });
    }

    /// After a `Persist`, sometimes crash the node around the time the record becomes
    /// durable: the windows "durable before visible" is about.
    pub(super) fn maybe_crash_on_persist(&mut self, node: NodeId) {
        let faults = &self.options.faults;
        let pct = if self.coordinators.contains_key(&node) {
            faults.coordinator_crash_on_persist_pct
        } else {
            faults.participant_crash_on_persist_pct
        };
        if self.healing || pct == 0 || self.rng.random_range(0..100) >= pct {
            return;
        }
        let at = self.after(0..=*self.options.fsync_ms.end());
        self.schedule(at, Event::Crash { node });
    }

    /// After the coordinator sends a PreCommit, sometimes crash it before the others go
    /// out or arrive: some participants precommitted, the others still waiting.
    pub(super) fn maybe_crash_on_precommit(&mut self, node: NodeId) {
        let pct = self.options.faults.coordinator_crash_on_precommit_pct;
        if self.healing || pct == 0 || self.rng.random_range(0..100) >= pct {
            return;
        }
        let at = self.after(0..=*self.options.network.delay_ms.end());
        self.schedule(at, Event::Crash { node });
    }

    /// After a termination leader sends its decision, sometimes crash it before the
    /// others arrive: decided and durable at the leader, unknown to some of its peers.
    pub(super) fn maybe_crash_leader_on_decide(&mut self, node: NodeId) {
        let pct = self.options.faults.leader_crash_on_decide_pct;
        if self.healing || pct == 0 || self.rng.random_range(0..100) >= pct {
            return;
        }
        let at = self.after(0..=*self.options.network.delay_ms.end());
        self.schedule(at, Event::Crash { node });
    }

    /// Notes a fault outside the model 3PC is safe in (crash failures, bounded delays, a
    /// detector that suspects only crashed nodes): a split it overlaps is excused.
    fn breach(&mut self, what: String, until_ms: u64, cut_link: Option<(NodeId, NodeId)>) {
        self.history.breaches.push(Breach {
            from_ms: self.now_ms,
            until_ms,
            what,
            cut_link,
        });
    }

    pub(super) fn violation(&mut self, checker: &'static str, detail: String) {
        note!(self, "VIOLATION {checker}: {detail}");
        self.violations.push(Violation { checker, detail });
    }

    /// Runs a core call, turning a panic into a violation that stops the run.
    pub(super) fn guarded<R>(&mut self, what: &'static str, call: impl FnOnce() -> R) -> Option<R> {
        match super::panics::guarded(call) {
            Ok(value) => Some(value),
            Err(text) => {
                self.violation(what, text);
                self.stopped = true;
                None
            }
        }
    }

    // ---- trace ----

    pub(super) fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    pub(super) fn push_note(&mut self, text: String) {
        if self.line.is_empty() {
            self.line = format!("{:>7} {:<4}", self.now_ms, "-");
        }
        self.line.push_str(" | ");
        self.line.push_str(&text);
    }

    /// Starts the current event's line: who, and what happened to it.
    pub(super) fn begin(&mut self, who: &str, what: String) {
        if self.tracing() {
            self.end_line();
            self.line = format!("{:>7} {who:<4} {what}", self.now_ms);
        }
    }

    fn end_line(&mut self) {
        if let Some(trace) = &mut self.trace
            && !self.line.is_empty()
        {
            trace.push(std::mem::take(&mut self.line));
        }
    }

    // ---- the workload ----

    fn submit(&mut self) {
        let stop_ms = self.options.safety_ms + self.options.healing_workload_ms;
        if self.now_ms >= stop_ms {
            return;
        }
        let next = self.after(self.options.submit_interval_ms.clone());
        self.schedule(next, Event::Submit);
        // Transactions spread over the coordinators (a one-coordinator run draws nothing).
        let coordinator = match self.coordinators.len() {
            1 => COORDINATOR,
            count => NodeId(COORDINATOR.0 + self.rng.random_range(0..count) as u32),
        };
        if !self.host(coordinator).alive {
            self.begin(
                "cli",
                format!("{} down: not submitted", node_name(coordinator)),
            );
            return;
        }
        self.next_txn += 1;
        let number = self.next_txn;
        let txn = match self.options.retain_ms {
            None => TxnId(Uuid::from_u128(u128::from(number))),
            // The submit time in the top 48 bits, as in a v7 id: what horizons compare.
            Some(_) => TxnId(Uuid::from_u128(
                (u128::from(self.now_ms) << 80) | u128::from(number),
            )),
        };
        let nodes = self.participant_ids();
        let (kind, spec) = workload::next_txn(&mut self.rng, &self.options, &nodes);
        if self.tracing() {
            let parts: Vec<String> = spec
                .parts
                .iter()
                .map(|(node, ops)| format!("{}[{}]", node_name(*node), trace::ops_text(ops)))
                .collect();
            self.begin(
                &node_name(coordinator),
                format!(
                    "submit {} {} timeout {} {}",
                    txn_name(txn),
                    spec.protocol.as_str(),
                    spec.timeout_ms,
                    parts.join(" ")
                ),
            );
        }
        self.history.txns.insert(
            txn,
            TxnInfo {
                number,
                kind,
                protocol: spec.protocol,
                parts: spec.parts.clone(),
                submitted_ms: self.now_ms,
                in_healing: self.healing,
                client: ClientView::Pending,
                reads: Vec::new(),
            },
        );
        self.coordinator_submit(coordinator, number, txn, spec);
    }

    // ---- the network ----

    /// Sends a request on `epoch` (the sender's current channel to `to`).
    pub(super) fn request(
        &mut self,
        from: NodeId,
        to: NodeId,
        epoch: u64,
        msg: impl Into<Request>,
    ) {
        let msg = msg.into();
        let Some(conn) = self.net.conns.get_mut(&epoch) else {
            note!(
                self,
                "-> {} {} lost (closed)",
                node_name(to),
                trace::request(&msg)
            );
            return;
        };
        let id = conn.next_request_id(from);
        self.transmit(from, to, epoch, Frame::Request { id, msg });
    }

    pub(super) fn transmit(&mut self, from: NodeId, to: NodeId, epoch: u64, frame: Frame) {
        let text = trace::frame(&frame);
        let flowing = self
            .net
            .conns
            .get(&epoch)
            .is_some_and(|conn| conn.flowing(from));
        if !flowing {
            note!(self, "-> {} {text} lost", node_name(to));
            return;
        }
        note!(self, "-> {} {text}", node_name(to));
        let mut delay = self.random(self.options.network.delay_ms.clone());
        let lag_pct = self.options.network.lag_pct;
        if lag_pct > 0 && self.rng.random_range(0..100) < lag_pct {
            delay += self.random(self.options.network.lag_ms.clone());
        }
        let at = self.net.arrival_ms(from, to, self.now_ms, delay);
        self.schedule(
            at,
            Event::Deliver {
                from,
                to,
                epoch,
                frame,
            },
        );
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, epoch: u64, frame: Frame) {
        let side = match self.net.conns.get(&epoch) {
            Some(conn) if conn.flowing(from) => conn.side(to),
            _ => return,
        };
        match side {
            Side::Down => return,
            // The channel reports Up before any message of the connection.
            Side::Pending => {
                self.side_up(to, epoch);
                if self.net.conns.get(&epoch).map(|conn| conn.side(to)) != Some(Side::Up) {
                    return;
                }
            }
            Side::Up => {}
        }
        if !self.host(to).alive {
            return;
        }
        if self.is_coordinator(to) {
            self.coordinator_receive(to, from, epoch, frame);
        } else {
            self.participant_receive(to, from, epoch, frame);
        }
    }

    fn connect(&mut self, x: NodeId, y: NodeId) {
        if !self.host(x).alive || !self.host(y).alive || !self.net.may_connect(x, y) {
            return;
        }
        let epoch = self.net.connect(x, y);
        for node in [x, y] {
            let at = self.after(self.options.network.handshake_ms.clone());
            self.schedule(at, Event::SideUp { node, epoch });
        }
    }

    fn side_up(&mut self, node: NodeId, epoch: u64) {
        let Some(conn) = self.net.conns.get_mut(&epoch) else {
            return;
        };
        if conn.broken {
            conn.set_side(node, Side::Down);
            return;
        }
        conn.set_side(node, Side::Up);
        let peer = conn.peer_of(node);
        if self.is_coordinator(node) {
            self.coordinator_up(node, peer, epoch);
        } else {
            self.participant_up(node, peer, epoch);
        }
    }

    fn side_down(&mut self, node: NodeId, epoch: u64) {
        let Some(conn) = self.net.conns.get_mut(&epoch) else {
            return;
        };
        if conn.side(node) != Side::Up {
            return;
        }
        conn.set_side(node, Side::Down);
        let peer = conn.peer_of(node);
        let dialler = conn.a == node;
        if self.host(node).alive {
            if self.is_coordinator(node) {
                self.coordinator_down(node, peer, epoch);
            } else {
                self.participant_down(node, peer, epoch);
            }
        }
        if dialler {
            let at = self.after(self.options.network.reconnect_ms.clone());
            self.schedule(at, Event::Connect { x: node, y: peer });
        }
    }

    /// Breaks a connection: `stop` directions (dialler→acceptor, acceptor→dialler) lose
    /// what is in flight at once; each side still up is told Down within `notice_ms`.
    pub(super) fn break_conn(
        &mut self,
        epoch: u64,
        stop: [bool; 2],
        notice_ms: RangeInclusive<u64>,
    ) {
        let Some(conn) = self.net.conns.get_mut(&epoch) else {
            return;
        };
        conn.broken = true;
        let (a, b) = (conn.a, conn.b);
        if stop[0] {
            conn.stop(a);
        }
        if stop[1] {
            conn.stop(b);
        }
        let mut notify = Vec::new();
        let mut dialler_cut_short = false;
        for node in [a, b] {
            match conn.side(node) {
                Side::Pending => {
                    conn.set_side(node, Side::Down);
                    dialler_cut_short |= node == a;
                }
                Side::Up => notify.push(node),
                Side::Down => {}
            }
        }
        for node in notify {
            let at = self.after(notice_ms.clone());
            self.schedule(at, Event::SideDown { node, epoch });
        }
        // A handshake that failed: the dialler retries as after any close.
        if dialler_cut_short {
            let at = self.after(self.options.network.reconnect_ms.clone());
            self.schedule(at, Event::Connect { x: a, y: b });
        }
    }

    /// A shell replaced its channel to a peer: it closes the old one.
    pub(super) fn close_replaced(&mut self, old_epoch: u64) {
        let healthy = self
            .net
            .conns
            .get(&old_epoch)
            .is_some_and(|conn| !conn.broken);
        if healthy {
            let notice = self.options.network.reset_notice_ms.clone();
            self.break_conn(old_epoch, [true, true], notice);
        }
    }

    // ---- faults ----

    fn fault(&mut self) {
        if self.healing {
            return;
        }
        let next = self.after(self.options.faults.interval_ms.clone());
        self.schedule(next, Event::Fault);
        let faults = &self.options.faults;
        let mut kinds = Vec::new();
        if faults.crashes {
            kinds.push(FaultKind::Crash);
        }
        if faults.partitions {
            kinds.push(FaultKind::Partition);
        }
        if faults.one_way_partitions {
            kinds.push(FaultKind::OneWay);
        }
        if faults.resets {
            kinds.push(FaultKind::Reset);
        }
        if faults.clock_jump_ms_max > 0 {
            kinds.push(FaultKind::ClockJump);
        }
        if kinds.is_empty() {
            return;
        }
        let kind = kinds[self.rng.random_range(0..kinds.len())];
        let mut nodes = self.coordinator_ids();
        nodes.extend(self.participant_ids());
        let node = nodes[self.rng.random_range(0..nodes.len())];
        match kind {
            FaultKind::Crash => {
                if self.host(node).alive {
                    self.crash(node);
                }
            }
            FaultKind::Partition | FaultKind::OneWay => {
                let pairs: Vec<(NodeId, NodeId)> = self.net.pairs.keys().copied().collect();
                let (x, y) = pairs[self.rng.random_range(0..pairs.len())];
                let cut = if kind == FaultKind::Partition {
                    [true, true]
                } else if self.rng.random_bool(0.5) {
                    [true, false]
                } else {
                    [false, true]
                };
                self.partition(x, y, cut);
            }
            FaultKind::Reset => {
                let pairs: Vec<(NodeId, NodeId)> = self.net.pairs.keys().copied().collect();
                let (x, y) = pairs[self.rng.random_range(0..pairs.len())];
                if let Some(epoch) = self.net.healthy(x, y) {
                    self.begin(
                        "net",
                        format!("RESET {}-{} e{epoch}", node_name(x), node_name(y)),
                    );
                    let notice = self.options.network.reset_notice_ms.clone();
                    // Both sides see the peer go down while it is alive: a detector
                    // suspecting a live node, outside the crash-only model.
                    let until_ms = self.now_ms
                        + self.options.network.reconnect_ms.end()
                        + self.options.network.detect_ms_max();
                    let what = format!(
                        "connection reset {}-{} at {} ms",
                        node_name(x),
                        node_name(y),
                        self.now_ms
                    );
                    self.breach(what, until_ms, None);
                    self.break_conn(epoch, [true, true], notice);
                }
            }
            FaultKind::ClockJump => {
                if self.host(node).alive {
                    let jump = self.random(1..=self.options.faults.clock_jump_ms_max);
                    self.begin(&node_name(node), format!("CLOCK JUMP +{jump} ms"));
                    let bound = self.options.clock_jump_bound_ms();
                    if jump > bound {
                        let what = format!(
                            "clock jump +{jump} ms on {} at {} ms (bound {bound} ms)",
                            node_name(node),
                            self.now_ms
                        );
                        // Timers it shortens fire within the longest transaction timeout.
                        let until_ms = self.now_ms + self.options.txn_timeout_ms.end();
                        self.breach(what, until_ms, None);
                    }
                    let host = self.host_mut(node);
                    host.clock.jumps_ms += jump;
                    host.timer_ms = None;
                    self.schedule_node_timer(node);
                }
            }
        }
    }

    fn partition(&mut self, x: NodeId, y: NodeId, cut: [bool; 2]) {
        let Some(pair) = self.net.pair_mut(x, y) else {
            return;
        };
        if pair.is_cut() {
            return;
        }
        pair.cut = cut;
        let (dialler, acceptor) = (pair.dialler, pair.acceptor);
        let arrow = match cut {
            [true, true] => "<->",
            [true, false] => "->",
            _ => "<-",
        };
        let what = format!(
            "partition {} {arrow} {} from {} ms",
            node_name(dialler),
            node_name(acceptor),
            self.now_ms
        );
        self.breach(what, u64::MAX, Some((dialler, acceptor)));
        self.begin(
            "net",
            format!(
                "PARTITION {} {arrow} {}",
                node_name(dialler),
                node_name(acceptor)
            ),
        );
        if let Some(epoch) = self.net.healthy(x, y) {
            let detect = 1..=self.options.network.detect_ms_max();
            self.break_conn(epoch, cut, detect);
        }
        let heal_at = self.after(self.options.faults.outage_ms.clone());
        self.schedule(heal_at, Event::Heal { x, y });
    }

    fn heal(&mut self, x: NodeId, y: NodeId) {
        let Some(pair) = self.net.pair_mut(x, y) else {
            return;
        };
        if !pair.is_cut() {
            return;
        }
        pair.cut = [false, false];
        self.begin("net", format!("HEAL {}-{}", node_name(x), node_name(y)));
        // The partition's breach lasts until the new connection is up and heartbeating.
        let until_ms = self.now_ms
            + self.options.network.reconnect_ms.end()
            + self.options.network.detect_ms_max();
        for breach in &mut self.history.breaches {
            if breach.until_ms == u64::MAX && breach.cuts(x, y) {
                breach.cut_link = None;
                breach.until_ms = until_ms;
            }
        }
        let at = self.after(self.options.network.reconnect_ms.clone());
        self.schedule(at, Event::Connect { x, y });
    }

    fn crash(&mut self, node: NodeId) {
        if !self.host(node).alive
            || self
                .options
                .faults
                .crashes_max
                .is_some_and(|max| self.crashes >= max)
        {
            return;
        }
        self.crashes += 1;
        self.history
            .crashed_ms
            .entry(node)
            .or_default()
            .push(self.now_ms);
        self.begin(&node_name(node), "CRASH".to_string());
        let host = self.host_mut(node);
        host.alive = false;
        host.channels.clear();
        host.timer_ms = None;
        host.flush_scheduled = false;
        if self.is_coordinator(node) {
            let coordinator = self.coord_mut(node);
            coordinator.core = None;
            let lost = coordinator.disk.crash();
            let clients = std::mem::take(&mut coordinator.clients);
            note!(self, "{lost} records not durable lost");
            for (_, txn) in clients {
                if let Some(info) = self.history.txns.get_mut(&txn) {
                    info.client = ClientView::Unknown;
                }
            }
        } else {
            let participant = self.participants.get_mut(&node).expect("known node");
            participant.core = None;
            let lost = participant.disk.crash();
            note!(self, "{lost} records not durable lost");
        }
        let detect = 1..=self.options.network.detect_ms_max();
        for epoch in self.net.live_conns_of(node) {
            if let Some(conn) = self.net.conns.get_mut(&epoch) {
                conn.set_side(node, Side::Down);
            }
            self.break_conn(epoch, [true, true], detect.clone());
        }
        if !self.healing {
            let at = self.after(self.options.faults.outage_ms.clone());
            self.schedule(at, Event::Restart { node });
        }
    }

    fn restart(&mut self, node: NodeId) {
        if self.host(node).alive {
            return;
        }
        self.begin(&node_name(node), "RESTART".to_string());
        let drift = self.options.faults.clock_drift_ppm_max;
        let rate_ppm = self.random(PPM - drift..=PPM + drift);
        let now_ms = self.now_ms;
        let host = self.host_mut(node);
        host.alive = true;
        host.incarnation += 1;
        host.clock = Clock {
            started_ms: now_ms,
            jumps_ms: 0,
            rate_ppm,
        };
        if self.is_coordinator(node) {
            self.start_coordinator(node);
        } else {
            if self.options.planted == Planted::ForgetPreparedOnRestart {
                let participant = self.participants.get_mut(&node).expect("known node");
                participant.disk.forget_prepared();
            }
            self.start_participant(node);
        }
        let peers: Vec<NodeId> = self
            .net
            .pairs
            .values()
            .filter(|pair| pair.dialler == node || pair.acceptor == node)
            .map(|pair| {
                if pair.dialler == node {
                    pair.acceptor
                } else {
                    pair.dialler
                }
            })
            .collect();
        for peer in peers {
            let at = self.after(self.options.network.reconnect_ms.clone());
            self.schedule(at, Event::Connect { x: node, y: peer });
        }
    }

    fn start_healing(&mut self) {
        self.begin(
            "sim",
            "HEALING: faults off, every crashed node restarts, every partition heals".to_string(),
        );
        self.healing = true;
        let mut nodes = self.coordinator_ids();
        nodes.extend(self.participant_ids());
        for node in nodes {
            self.restart(node);
        }
        let cut: Vec<(NodeId, NodeId)> = self
            .net
            .pairs
            .iter()
            .filter(|(_, pair)| pair.is_cut())
            .map(|(key, _)| *key)
            .collect();
        for (x, y) in cut {
            self.heal(x, y);
        }
    }

    pub(super) fn schedule_node_timer(&mut self, node: NodeId) {
        if self.is_coordinator(node) {
            self.coordinator_schedule_timer(node);
        } else {
            self.participant_schedule_timer(node);
        }
    }

    // ---- the end ----

    fn finish(&mut self, timed_out: bool) {
        self.begin("sim", format!("END after {} events", self.events));
        if timed_out {
            note!(
                self,
                "healing phase hit its {} ms bound",
                self.options.healing_ms_max
            );
        }
        let participants: Vec<ParticipantEnd<'_>> = self
            .participants
            .iter()
            .map(|(id, node)| ParticipantEnd {
                id: *id,
                disk: &node.disk,
                locks_held: node.core.as_ref().map_or(0, |core| core.locks_held()),
                counts: node
                    .core
                    .as_ref()
                    .map(|core| core.counts())
                    .unwrap_or_default(),
            })
            .collect();
        let view = View {
            history: &self.history,
            participants,
            coordinators: self
                .coordinators
                .iter()
                .map(|(id, node)| CoordinatorEnd {
                    id: *id,
                    disk: &node.disk,
                    txns_in_flight: node.core.as_ref().map_or(0, |core| core.txns_in_flight()),
                })
                .collect(),
            bank_total: workload::initial_total(self.participants.len()),
            excused: check::atomicity::excused_txns(&self.history),
            decision_bound_ms: self.options.three_phase_decision_bound_ms(),
            end_ms: self.now_ms,
        };
        let found = check::check_all(&view);
        self.excused = check::atomicity::excused(&self.history);
        for line in self.excused.clone() {
            note!(self, "EXCUSED 3pc split: {line}");
        }
        for violation in found {
            self.violation(violation.checker, violation.detail);
        }
        self.end_line();
    }

    fn abort_causes(&self) -> BTreeMap<&'static str, u64> {
        let mut causes = BTreeMap::new();
        for info in self.history.txns.values() {
            if let ClientView::Aborted(reason) = &info.client {
                let cause = if reason.contains("below the minimum")
                    || reason.contains("above the maximum")
                {
                    "bounds"
                } else if reason.contains("lock conflict") {
                    "lock conflict"
                } else if reason.contains("is down") {
                    "participant down"
                } else if reason.contains("timeout") || reason.contains("too late") {
                    "timeout"
                } else {
                    "other"
                };
                *causes.entry(cause).or_insert(0) += 1;
            }
        }
        causes
    }

    fn report(self) -> Report {
        let count = |wanted: fn(&ClientView) -> bool| {
            self.history
                .txns
                .values()
                .filter(|info| wanted(&info.client))
                .count() as u64
        };
        let read_all = |wanted: fn(&ClientView) -> bool| {
            self.history
                .txns
                .values()
                .filter(|info| info.kind == TxnKind::ReadAll && wanted(&info.client))
                .count() as u64
        };
        let pruned = self
            .participants
            .values()
            .map(|participant| participant.disk.pruned.len() as u64)
            .sum();
        Report {
            seed: self.seed,
            participants: self.participants.len(),
            read_all_committed: read_all(|view| *view == ClientView::Committed),
            read_all_aborted: read_all(|view| matches!(view, ClientView::Aborted(_))),
            txns: self.next_txn,
            committed: count(|view| *view == ClientView::Committed),
            aborted: count(|view| matches!(view, ClientView::Aborted(_))),
            unknown: count(|view| *view == ClientView::Unknown),
            aborted_by: self.abort_causes(),
            violations: self.violations,
            excused: self.excused,
            trace: self.trace.unwrap_or_default(),
            events: self.events,
            end_ms: self.now_ms,
            pruned,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FaultKind {
    Crash,
    Partition,
    OneWay,
    Reset,
    ClockJump,
}
