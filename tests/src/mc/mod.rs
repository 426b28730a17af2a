//! Exhaustive exploration (model checking) of small configurations over the real cores:
//! 1 coordinator, 2 participants, 1-2 transactions, up to two crashes (any nodes), FIFO
//! links that may lose messages, either protocol. `system/` is one state and its
//! transitions; this module hands it to stateright's `Model` and runs its breadth-first
//! (or depth-first) checker. A successor is a clone of its parent with one transition
//! applied, and states are deduplicated by their derived `Hash` (the cores' included).
//! Checks atomicity and the cores' invariants in every state (an `always` property), and
//! that "all committed" and "all aborted" are reachable (`sometimes` properties).
//!
//! No symmetry reduction: the two participants are not interchangeable. The workload
//! debits one and credits the other (with a bound on the debit), and the lowest
//! operational id leads the 3PC termination protocol, so swapping their ids gives a state
//! that behaves differently, and a representative would merge states that are not
//! equivalent.

mod system;

use std::time::{Duration, Instant};

use stateright::{Checker, HasDiscoveries, Model, Property};
use wire::Protocol;

pub use system::{
    Choice, DELAY_MAX_MS, DETECT_MAX_MS, FSYNC_MAX_MS, Limits, PARTICIPANTS, RECONNECT_MAX_MS,
    model_txns,
};
use system::{Line, System};

/// One exploration's bounds.
#[derive(Clone, Debug)]
pub struct McOptions {
    pub protocol: Protocol,
    /// 1 or 2 transactions (see `model_txns`).
    pub txns: usize,
    pub crashes_max: u32,
    /// Links may drop the message at their head at any time.
    pub lossy: bool,
    /// Timer firings in one execution (retries and timeouts would otherwise never end).
    pub timer_firings_max: u32,
    /// Transitions in one execution; deeper states are not expanded (not exhausted).
    pub depth_max: usize,
    /// Transitions generated before the exploration stops (reported as not exhausted).
    pub transitions_max: usize,
    /// Depth-first instead of breadth-first (less memory; longer violation paths).
    pub depth_first: bool,
    pub threads: usize,
    /// Run the coordinator as `sim::planted::SecondDecider` (bug 1 of issue 7).
    pub planted_second_decider: bool,
    /// Participants may prune any decided txn at any time (retention with a window
    /// shorter than anything: the forgotten-txn answers are explored).
    pub prune: bool,
}

#[derive(Clone, Debug)]
pub struct McReport {
    /// Distinct states reached (the initial one included).
    pub states: usize,
    /// Successors generated, duplicates included.
    pub transitions: usize,
    /// The deepest level reached.
    pub depth: usize,
    /// Every state within the bounds was explored: no state left at the depth bound,
    /// the transition bound not hit, no violation stopped the search.
    pub exhausted: bool,
    pub all_committed_reachable: bool,
    pub all_aborted_reachable: bool,
    /// The first violation found, with the transitions that lead to it.
    pub violation: Option<(String, Vec<String>)>,
    pub elapsed: Duration,
}

const SAFE: &str = "atomic, invariants hold";
const ALL_COMMITTED: &str = "all committed";
const ALL_ABORTED: &str = "all aborted";

/// The cluster as a stateright model: one initial state, the enabled choices, and a
/// successor by cloning.
struct Cluster {
    limits: Limits,
}

impl Model for Cluster {
    type State = System;
    type Action = Choice;

    fn init_states(&self) -> Vec<System> {
        vec![System::initial(&self.limits)]
    }

    fn actions(&self, state: &System, actions: &mut Vec<Choice>) {
        // A state with a broken invariant is reported, not explored further.
        if state.error.is_none() {
            actions.extend(state.choices(&self.limits));
        }
    }

    fn next_state(&self, state: &System, choice: Choice) -> Option<System> {
        let mut next = state.clone();
        next.apply(choice, &self.limits, &mut Line::off());
        Some(next)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(SAFE, Cluster::safe),
            Property::sometimes(ALL_COMMITTED, |model: &Cluster, state: &System| {
                state.all_committed(&model.limits)
            }),
            Property::sometimes(ALL_ABORTED, |model: &Cluster, state: &System| {
                state.all_aborted(&model.limits)
            }),
        ]
    }
}

impl Cluster {
    fn safe(&self, state: &System) -> bool {
        state.error.is_none()
            && state.atomicity_violation(&self.limits).is_none()
            && state.value_violation(&self.limits).is_none()
    }
}

/// Timer firings per execution that keep a configuration exhaustive within minutes on two
/// cores. Four cover retries, timeouts and a termination round; with two 3PC crashes
/// there are none (17M states with none, 26M with one): every reaction to a crash, the
/// termination protocol and the coordinator's recovery included, starts from a channel's
/// Down or Up notice, not from a timer, and the timeout paths are explored with one crash.
pub fn default_timer_firings_max(protocol: Protocol, crashes_max: u32) -> u32 {
    match (protocol, crashes_max) {
        (Protocol::ThreePhase, 2..) => 0,
        _ => 4,
    }
}

pub fn explore(options: &McOptions) -> McReport {
    let limits = Limits {
        txns: model_txns(options.protocol, options.txns),
        crashes_max: options.crashes_max,
        lossy: options.lossy,
        timer_firings_max: options.timer_firings_max,
        planted_second_decider: options.planted_second_decider,
        prune: options.prune,
    };
    let started = Instant::now();
    let builder = Cluster {
        limits: limits.clone(),
    }
    .checker()
    .threads(options.threads)
    .target_max_depth(options.depth_max)
    .target_state_count(options.transitions_max)
    // Stop at the first violation; otherwise run until every state is explored.
    .finish_when(HasDiscoveries::AnyFailures);
    let (states, transitions, depth, mut discoveries) = if options.depth_first {
        let checker = builder.spawn_dfs().join();
        let counts = (
            checker.unique_state_count(),
            checker.state_count(),
            checker.max_depth(),
        );
        (counts.0, counts.1, counts.2, checker.discoveries())
    } else {
        let checker = builder.spawn_bfs().join();
        let counts = (
            checker.unique_state_count(),
            checker.state_count(),
            checker.max_depth(),
        );
        (counts.0, counts.1, counts.2, checker.discoveries())
    };
    let violation = discoveries.remove(SAFE).map(|path| {
        let choices = path.into_actions();
        let (last, lines) = replay(&limits, &choices);
        let detail = last
            .error
            .clone()
            .or_else(|| last.atomicity_violation(&limits))
            .or_else(|| last.value_violation(&limits))
            .unwrap_or_else(|| "the replayed path breaks nothing (a hash collision?)".into());
        (detail, lines)
    });
    McReport {
        states,
        transitions,
        depth,
        exhausted: violation.is_none()
            && transitions < options.transitions_max
            && depth < options.depth_max,
        all_committed_reachable: discoveries.contains_key(ALL_COMMITTED),
        all_aborted_reachable: discoveries.contains_key(ALL_ABORTED),
        violation,
        elapsed: started.elapsed(),
    }
}

/// Re-runs `choices` from the initial state: the last state, and one line per transition.
fn replay(limits: &Limits, choices: &[Choice]) -> (System, Vec<String>) {
    let mut state = System::initial(limits);
    let lines = choices
        .iter()
        .map(|choice| {
            let mut line = Line::on();
            state.apply(*choice, limits, &mut line);
            line.into_text()
        })
        .collect();
    (state, lines)
}
