//! The network events of the simulation: requests and frames sent on a connection,
//! their delivery, connections made, reported up and down, broken and replaced.

use std::ops::RangeInclusive;

use rand::Rng;
use wire::{NodeId, Request};

use super::super::net::{Frame, Side};
use super::super::trace::{self, node_name};
use super::{Event, World};

impl World {
    /// Sends a request on `epoch` (the sender's current channel to `to`).
    pub(in crate::sim) fn request(
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

    pub(in crate::sim) fn transmit(&mut self, from: NodeId, to: NodeId, epoch: u64, frame: Frame) {
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

    pub(super) fn deliver(&mut self, from: NodeId, to: NodeId, epoch: u64, frame: Frame) {
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

    pub(super) fn connect(&mut self, x: NodeId, y: NodeId) {
        if !self.host(x).alive || !self.host(y).alive || !self.net.may_connect(x, y) {
            return;
        }
        let epoch = self.net.connect(x, y);
        for node in [x, y] {
            let at = self.after(self.options.network.handshake_ms.clone());
            self.schedule(at, Event::SideUp { node, epoch });
        }
    }

    pub(super) fn side_up(&mut self, node: NodeId, epoch: u64) {
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

    pub(super) fn side_down(&mut self, node: NodeId, epoch: u64) {
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
    pub(in crate::sim) fn break_conn(
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
    pub(in crate::sim) fn close_replaced(&mut self, old_epoch: u64) {
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
}
