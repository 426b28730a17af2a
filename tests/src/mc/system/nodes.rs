//! What happens to a node's process and disk: a crash (the queued log records lost, its
//! peers told down within the detector's bound), a restart (recovery from the durable
//! records, channels up again), and the next queued record becoming durable.

use std::fmt::Write as _;

use coordinator::core as coordinator_core;
use participant::core::{self as participant_core, Participant};
use wire::NodeId;

use crate::sim::history::txn_name;
use crate::sim::trace::{self, COORDINATOR};

use super::{
    CoordinatorUnderTest, DETECT_MAX_MS, Limits, Line, Notice, RECONNECT_MAX_MS, Step, System,
    all_nodes, pair,
};

impl System {
    pub(super) fn crash(&mut self, node: NodeId) {
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

    pub(super) fn restart(&mut self, node: NodeId, limits: &Limits, line: &mut Line) {
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
                stored_max: disk.max_txn_id(),
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

    pub(super) fn durable(&mut self, node: NodeId, line: &mut Line) {
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
}
