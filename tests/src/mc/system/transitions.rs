//! The transitions of a state: which are enabled (`choices`), and `apply`, which carries
//! one out. Time moves only with a timer, up to the earliest deadline in flight.

use std::collections::VecDeque;
use std::fmt::Write as _;

use coordinator::core::{self as coordinator_core, ClientRef};
use participant::core::StoredState;
use wire::retention::Horizon;
use wire::{NodeId, TxnId};

use crate::sim::history::txn_name;
use crate::sim::trace::{self, COORDINATOR, node_name};

use super::{Limits, Line, Step, System, all_nodes, txn_id};

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

impl System {
    /// No time may pass beyond this: something in flight is due by then.
    pub(super) fn time_bound_ms(&self) -> u64 {
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

    pub(super) fn timer_deadline(&self, node: NodeId) -> Option<u64> {
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
}
