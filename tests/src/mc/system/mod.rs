//! One state of the model-checked cluster (1 coordinator, 2 participants with their mesh)
//! and its transitions: the real cores behind the shells' routing rules, FIFO links that
//! may lose their head message, disks whose records become durable one at a time, peer
//! up/down notices, timers, one crash and its restart.
//!
//! Time is global and moves only when a timer fires, and never past the deadline of
//! anything in flight (a message, a log write, a failure notice): delays are bounded,
//! and a timer fires only once everything due before it has happened. Between timer
//! firings, every interleaving of deliveries, losses, log writes and notices is explored.
//!
//! This file holds the state (`System` and the types in it); the transitions are in
//! `transitions.rs`, the channels and their notices in `network.rs`, crashes, restarts
//! and durable records in `nodes.rs`, the shells' routing around each core in
//! `coordinator_shell.rs` and `participant_shell.rs`, the properties judged in every
//! state in `properties.rs`, and the model's transactions in `txns.rs`.

use std::collections::{BTreeMap, VecDeque};

use coordinator::core::{self as coordinator_core, Coordinator};
use participant::core::{self as participant_core, Participant};
use wire::{NodeId, TxnId, TxnSpec};

use crate::sim::cores::CoordinatorCore;
use crate::sim::disk::{CoordinatorDisk, ParticipantDisk};
use crate::sim::net::Frame;
use crate::sim::planted::SecondDecider;
use crate::sim::trace::COORDINATOR;
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

mod coordinator_shell;
mod network;
mod nodes;
mod participant_shell;
mod properties;
mod transitions;
mod txns;

pub use transitions::Choice;
pub use txns::model_txns;

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
}

enum PeerEvent {
    Up(NodeId),
    Down(NodeId),
}
