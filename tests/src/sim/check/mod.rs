//! The run's judges, one per file: each reads the end-of-run `View` (the history of what
//! was observed, the durable state of every node, what the cores still hold) and returns
//! what it found wrong.

pub mod atomicity;
mod conservation;
mod durability;
mod liveness;
mod locks;
mod read_all;
mod serializability;
mod termination;
mod validity;

use participant::core::TxnCounts;
use std::collections::BTreeSet;

use wire::{NodeId, TxnId};

use super::disk::{CoordinatorDisk, ParticipantDisk};
use super::history::History;

/// Something a run did that the protocol forbids.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Violation {
    /// Which checker (or which runtime check) found it.
    pub checker: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.checker, self.detail)
    }
}

/// A participant at the end of the run.
pub struct ParticipantEnd<'a> {
    pub id: NodeId,
    pub disk: &'a ParticipantDisk,
    pub locks_held: usize,
    pub counts: TxnCounts,
}

impl ParticipantEnd<'_> {
    /// Transactions the core still holds (voting, in doubt or committing).
    pub fn active(&self) -> usize {
        self.counts.preparing + self.counts.in_doubt + self.counts.committing
    }

    pub fn in_doubt_on_disk(&self) -> usize {
        self.disk
            .txns
            .values()
            .filter(|row| row.state.is_in_doubt())
            .count()
    }
}

/// A coordinator at the end of the run.
pub struct CoordinatorEnd<'a> {
    pub id: NodeId,
    pub disk: &'a CoordinatorDisk,
    pub txns_in_flight: usize,
}

/// Everything the checkers may look at.
pub struct View<'a> {
    pub history: &'a History,
    pub participants: Vec<ParticipantEnd<'a>>,
    /// Every coordinator (each with its own decision log).
    pub coordinators: Vec<CoordinatorEnd<'a>>,
    /// The bank's total, as it was before the run.
    pub bank_total: i64,
    /// 3PC transactions whose split a fault outside the model excuses (see
    /// `atomicity`): the other checkers do not count their effects against the run.
    pub excused: BTreeSet<TxnId>,
    /// 3PC's liveness bound: an operational participant decides within this long of its
    /// YES vote (`Options::three_phase_decision_bound_ms`).
    pub decision_bound_ms: u64,
    /// Virtual time at the end of the run.
    pub end_ms: u64,
}

/// A checker: a name and a function of the view.
pub type Checker = (&'static str, fn(&View<'_>) -> Vec<String>);

pub const CHECKERS: [Checker; 9] = [
    ("atomicity", atomicity::check),
    ("validity", validity::check),
    ("durability", durability::check),
    ("conservation", conservation::check),
    ("termination", termination::check),
    ("liveness", liveness::check),
    ("locks", locks::check),
    ("serializability", serializability::check),
    ("read-all", read_all::check),
];

pub fn check_all(view: &View<'_>) -> Vec<Violation> {
    CHECKERS
        .iter()
        .flat_map(|(checker, check)| {
            check(view)
                .into_iter()
                .map(|detail| Violation { checker, detail })
        })
        .collect()
}
