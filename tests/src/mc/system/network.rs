//! The model's network: messages queued on a FIFO link with a delivery deadline, and
//! the channel notices (a peer up or down) that the shells turn into core inputs.

use std::fmt::Write as _;

use coordinator::core as coordinator_core;
use participant::core as participant_core;
use wire::NodeId;

use crate::sim::net::Frame;
use crate::sim::trace::{self, COORDINATOR, node_name};

use super::{DELAY_MAX_MS, InFlight, Line, Notice, PeerEvent, Step, System};

impl System {
    pub(super) fn send(
        &mut self,
        from: NodeId,
        to: NodeId,
        epoch: u64,
        frame: Frame,
        line: &mut Line,
    ) {
        note!(line, " | -> {} {}", node_name(to), trace::frame(&frame));
        self.links
            .entry((from, to))
            .or_default()
            .push_back(InFlight {
                deadline_ms: self.now_ms + DELAY_MAX_MS,
                epoch,
                frame,
            });
    }

    pub(super) fn up(&mut self, node: NodeId, peer: NodeId, epoch: u64) {
        self.channels_mut(node).insert(peer, epoch);
    }

    pub(super) fn notice(&mut self, node: NodeId, notice: Notice, line: &mut Line) {
        if notice.up {
            self.up(node, notice.peer, notice.epoch);
            let input = PeerEvent::Up(notice.peer);
            self.peer_event(node, input, line);
        } else if self.channels(node).get(&notice.peer) == Some(&notice.epoch) {
            self.channels_mut(node).remove(&notice.peer);
            self.peer_event(node, PeerEvent::Down(notice.peer), line);
        } else {
            note!(line, " | stale");
        }
    }

    pub(super) fn peer_event(&mut self, node: NodeId, event: PeerEvent, line: &mut Line) {
        if node == COORDINATOR {
            let input = match event {
                PeerEvent::Up(peer) => coordinator_core::Input::PeerUp { peer },
                PeerEvent::Down(peer) => coordinator_core::Input::PeerDown { peer },
            };
            self.coordinator_step(Step::Input(input), line);
        } else {
            let input = match event {
                PeerEvent::Up(peer) => participant_core::Input::PeerUp { peer },
                PeerEvent::Down(peer) => participant_core::Input::PeerDown { peer },
            };
            self.participant_step(node, Step::Input(input), line);
        }
    }
}
