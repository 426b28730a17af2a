//! Fault injection: random faults (crashes, partitions both ways or one way, connection
//! resets, clock jumps) and crashes aimed at a log write, a PreCommit or a leader's
//! decision; partitions healed, crashed nodes restarted, the healing phase; and the
//! breaches of 3PC's model that excuse a split.

use rand::Rng;
use wire::NodeId;

use super::super::history::{Breach, ClientView};
use super::super::net::Side;
use super::super::options::Planted;
use super::super::trace::node_name;
use super::host::{Clock, PPM};
use super::{Event, World};

impl World {
    pub(super) fn fault(&mut self) {
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

    pub(super) fn heal(&mut self, x: NodeId, y: NodeId) {
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

    pub(super) fn crash(&mut self, node: NodeId) {
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

    pub(super) fn restart(&mut self, node: NodeId) {
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

    pub(super) fn start_healing(&mut self) {
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

    /// After a `Persist`, sometimes crash the node around the time the record becomes
    /// durable: the windows "durable before visible" is about.
    pub(in crate::sim) fn maybe_crash_on_persist(&mut self, node: NodeId) {
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
    pub(in crate::sim) fn maybe_crash_on_precommit(&mut self, node: NodeId) {
        let pct = self.options.faults.coordinator_crash_on_precommit_pct;
        if self.healing || pct == 0 || self.rng.random_range(0..100) >= pct {
            return;
        }
        let at = self.after(0..=*self.options.network.delay_ms.end());
        self.schedule(at, Event::Crash { node });
    }

    /// After a termination leader sends its decision, sometimes crash it before the
    /// others arrive: decided and durable at the leader, unknown to some of its peers.
    pub(in crate::sim) fn maybe_crash_leader_on_decide(&mut self, node: NodeId) {
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
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FaultKind {
    Crash,
    Partition,
    OneWay,
    Reset,
    ClockJump,
}
