//! Exhaustive exploration (model checking) of small configurations over the real cores:
//! 1 coordinator, 2 participants, 1-2 transactions, at most one crash, FIFO links that
//! may lose messages, either protocol. Breadth-first over every interleaving, with states
//! deduplicated by a fingerprint of their full content (the cores' `Debug` included), so
//! each distinct state is expanded once. Checks atomicity and the cores' invariants in
//! every state, and records whether "all committed" and "all aborted" are reachable.
//!
//! Hand-written rather than stateright: its actor states must be `Clone + Hash + Eq`,
//! and the cores are none of these; `replay.rs` copies a core by replaying its inputs.

mod replay;
mod system;

use std::collections::BTreeSet;
use std::rc::Rc;

use coordinator::core::Config;
use wire::Protocol;

use system::System;
pub use system::{
    Choice, DELAY_MAX_MS, DETECT_MAX_MS, FSYNC_MAX_MS, Limits, PARTICIPANTS, RECONNECT_MAX_MS,
    model_txns,
};

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
    /// Transitions in one execution.
    pub depth_max: usize,
    /// Distinct states before the exploration stops (reported as not exhausted).
    pub states_max: usize,
}

#[derive(Clone, Debug)]
pub struct McReport {
    /// Distinct states reached (the initial one included).
    pub states: usize,
    pub transitions: u64,
    /// The deepest level explored.
    pub depth: usize,
    /// Every state within the bounds was explored (no state left at the depth bound,
    /// the state bound not hit).
    pub exhausted: bool,
    pub all_committed_reachable: bool,
    pub all_aborted_reachable: bool,
    /// The first violation found, with the transitions that lead to it.
    pub violation: Option<(String, Vec<String>)>,
}

/// The path to a state, shared between states that extend it.
struct Path {
    choice: Choice,
    parent: Option<Rc<Path>>,
}

fn choices_of(path: &Option<Rc<Path>>) -> Vec<Choice> {
    let mut choices = Vec::new();
    let mut at = path.clone();
    while let Some(node) = at {
        choices.push(node.choice);
        at = node.parent.clone();
    }
    choices.reverse();
    choices
}

pub fn explore(options: &McOptions) -> McReport {
    let limits = Limits {
        txns: model_txns(options.protocol, options.txns),
        crashes_max: options.crashes_max,
        lossy: options.lossy,
        timer_firings_max: options.timer_firings_max,
    };
    let config = Config::new(PARTICIPANTS);
    let initial = System::initial(&limits, config.clone());
    let mut visited = BTreeSet::new();
    visited.insert(initial.fingerprint());
    let mut report = McReport {
        states: 1,
        transitions: 0,
        depth: 0,
        exhausted: false,
        all_committed_reachable: false,
        all_aborted_reachable: false,
        violation: None,
    };
    let mut frontier: Vec<(System, Option<Rc<Path>>)> = vec![(initial, None)];
    while !frontier.is_empty() {
        if report.depth >= options.depth_max {
            return report;
        }
        report.depth += 1;
        let mut next = Vec::new();
        for (state, path) in frontier {
            for choice in state.choices(&limits) {
                let mut successor = state.clone();
                successor.apply(choice, &limits);
                report.transitions += 1;
                let child = Some(Rc::new(Path {
                    choice,
                    parent: path.clone(),
                }));
                let broken = successor
                    .error
                    .clone()
                    .or_else(|| successor.atomicity_violation(&limits));
                if let Some(detail) = broken {
                    let lines = replay_lines(&limits, &config, &choices_of(&child));
                    report.violation = Some((detail, lines));
                    return report;
                }
                if !visited.insert(successor.fingerprint()) {
                    continue;
                }
                report.states += 1;
                report.all_committed_reachable |= successor.all_committed(&limits);
                report.all_aborted_reachable |= successor.all_aborted(&limits);
                if report.states >= options.states_max {
                    return report;
                }
                next.push((successor, child));
            }
        }
        frontier = next;
    }
    report.exhausted = true;
    report
}

/// The trace of one execution, re-run from the start.
fn replay_lines(limits: &Limits, config: &Config, choices: &[Choice]) -> Vec<String> {
    let mut state = System::initial(limits, config.clone());
    choices
        .iter()
        .map(|choice| state.apply(*choice, limits))
        .collect()
}
