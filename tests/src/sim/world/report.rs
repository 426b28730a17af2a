//! The end of a run: the checkers over the final state and the history, and the
//! `Report` of what the run found.

use std::collections::BTreeMap;

use super::super::check::{self, CoordinatorEnd, ParticipantEnd, View, Violation};
use super::super::history::{ClientView, TxnKind};
use super::super::workload;
use super::World;

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

impl World {
    pub(super) fn finish(&mut self, timed_out: bool) {
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

    pub(super) fn report(self) -> Report {
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
