//! Each participant's frame limit: the largest frame body its channel sends, which the
//! shell reports on every Up (`Input::PeerFrameLimit`), and the submit-time check that
//! every Prepare of a transaction fits its own participant's limit, so an oversized
//! transaction is refused with a reason instead of failing at the channel.
//!
//! Per participant rather than the smallest limit known: a Prepare goes only to its own
//! participant, so one participant configured with a small `--frame-bytes-max` should not
//! shrink the transactions that never touch it. A limit is remembered across a Down (a
//! restarted participant reports its new one on its next Up); one never reported (the
//! model checker and the simulator do not) is taken to be our own `frame_bytes_max`, which
//! bounds every channel we open anyway.

use wire::{NodeId, Request, TxnId, TxnSpec};

use super::Coordinator;
use super::submit::prepare;

impl Coordinator {
    pub(super) fn on_peer_frame_limit(&mut self, peer: NodeId, bytes: usize) {
        if self.config.participants.contains(&peer) {
            self.frame_limits.insert(peer, bytes);
        }
    }

    /// The largest frame body we may send to `peer`.
    fn frame_limit(&self, peer: NodeId) -> usize {
        let reported = self.frame_limits.get(&peer).copied();
        reported.map_or(self.config.frame_bytes_max, |bytes| {
            bytes.min(self.config.frame_bytes_max)
        })
    }

    /// `Err` names the first participant whose Prepare would exceed its frame limit. Free
    /// while every participant of `spec` takes the largest message the limits allow (the
    /// usual case: `Config::validate` checks that against our own limit); otherwise each
    /// Prepare's frame is measured exactly.
    pub(super) fn check_frame_limits(&self, id: TxnId, spec: &TxnSpec) -> Result<(), String> {
        let largest = self.config.limits.largest_message_bytes();
        if spec
            .parts
            .iter()
            .all(|(node, _)| largest < self.frame_limit(*node))
        {
            return Ok(());
        }
        let nodes: Vec<NodeId> = spec.parts.iter().map(|(node, _)| *node).collect();
        for (node, ops) in &spec.parts {
            let max = self.frame_limit(*node);
            let msg = prepare(id, spec.protocol, spec.timeout_ms, ops, &nodes);
            let len =
                wire::frame::request_body_len(&Request::Participant(msg)).map_err(|error| {
                    format!("cannot encode the Prepare for participant {node}: {error}")
                })?;
            if len > max {
                return Err(format!(
                    "too large for participant {node}: its Prepare would be a {len}-byte frame, \
                     over that participant's frame limit of {max} bytes (--frame-bytes-max)"
                ));
            }
        }
        Ok(())
    }
}
