//! The simulation loop: the `World` (the nodes, each core + disk + shell state, the
//! network and the history), its event queue on a virtual clock, and the two phases
//! (safety, then healing) of a run. What the events do lives in the files below:
//! `network.rs` (sending, delivery, connections), `faults.rs` (crashes, partitions,
//! resets, clock jumps, healing), `client.rs` (the workload's submits), `host.rs` (a
//! node's process and clock), `trace_line.rs` (the event trace), `report.rs` (the
//! checkers at the end and the `Report`).

mod client;
mod faults;
mod host;
mod network;
mod report;
mod trace_line;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::ops::RangeInclusive;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wire::{NodeId, TxnId};

use super::check::Violation;
use super::cores::{CoordinatorCore, ParticipantCore};
use super::disk::{CoordinatorDisk, ParticipantDisk};
use super::history::History;
use super::net::{Frame, Net, Side};
use super::options::Options;
use super::trace::{COORDINATOR, node_name};
use super::workload;

use host::{Host, PPM};
pub use report::Report;

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

impl World {
    fn new(seed: u64, options: Options) -> World {
        let mut rng = StdRng::seed_from_u64(seed);
        let count = options.participants.unwrap_or_else(|| {
            rng.random_range(super::options::PARTICIPANTS_MIN..=super::options::PARTICIPANTS_MAX)
        });
        let drift = options.faults.clock_drift_ppm_max;
        let rate = |rng: &mut StdRng| rng.random_range(PPM - drift..=PPM + drift);
        let coordinator_node = |rng: &mut StdRng| CoordinatorNode {
            host: Host::new(rate(rng)),
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
                    host: Host::new(rate(&mut rng)),
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

    pub(super) fn schedule_node_timer(&mut self, node: NodeId) {
        if self.is_coordinator(node) {
            self.coordinator_schedule_timer(node);
        } else {
            self.participant_schedule_timer(node);
        }
    }
}
