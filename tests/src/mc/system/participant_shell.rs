//! The participants' shell in the model: the product's inbound plan for what arrives
//! (`participant::core::inbound`), running the core with its invariants checked, and
//! carrying out its outputs.

use std::fmt::Write as _;

use participant::core::inbound::{self, Plan};
use participant::core::{self as participant_core, ReplyTo};
use wire::{NodeId, RequestId, Role};

use crate::sim::history::txn_name;
use crate::sim::net::Frame;
use crate::sim::panics::guarded;
use crate::sim::trace::COORDINATOR;

use super::{FSYNC_MAX_MS, InFlight, Line, Step, System};

impl System {
    pub(super) fn participant_receive(
        &mut self,
        node: NodeId,
        from: NodeId,
        message: InFlight,
        line: &mut Line,
    ) {
        if self.channels(node).get(&from) != Some(&message.epoch) {
            note!(line, " | stale");
            return;
        }
        let reply_to = ReplyTo {
            peer: from,
            conn: message.epoch,
        };
        let (state, disk) = &self.participants[&node];
        let Some(core) = state.core.as_ref() else {
            return;
        };
        // The only coordinator dials as one; everyone else is a peer participant.
        let role = if from == COORDINATOR {
            Role::Coordinator
        } else {
            Role::Participant
        };
        let input = match message.frame {
            Frame::Request { id, msg } => match inbound::plan(core, role, msg) {
                Plan::Protocol { msg, needs } => {
                    inbound::request_input(reply_to, id, msg, disk.read(&needs))
                }
                // Nothing in the model asks for a status or is an operator.
                Plan::Status | Plan::Lookup(_) | Plan::Resolve { .. } => return,
                Plan::Refuse { reply, .. } => {
                    let epoch = message.epoch;
                    self.send(node, from, epoch, Frame::Response { id, msg: reply }, line);
                    return;
                }
            },
            Frame::Response { msg, .. } => match inbound::response_input(from, msg) {
                Ok(input) => input,
                Err(_) => return,
            },
        };
        self.participant_step(node, Step::Input(input), line);
    }

    pub(super) fn participant_step(
        &mut self,
        node: NodeId,
        step: Step<participant_core::Input>,
        line: &mut Line,
    ) {
        let (state, _) = self.participants.get_mut(&node).expect("known");
        let Some(core) = state.core.as_mut() else {
            return;
        };
        let now = participant_core::Millis(self.now_ms);
        let outcome = guarded(|| {
            match step {
                Step::Input(input) => core.handle(now, input),
                Step::Timeout => core.handle_timeout(now),
            }
            let outputs: Vec<_> = std::iter::from_fn(|| core.poll_output()).collect();
            core.check_invariants()
                .map(|()| outputs)
                .map_err(|violation| violation.to_string())
        })
        .and_then(|checked| checked);
        let outputs = match outcome {
            Ok(outputs) => outputs,
            Err(error) => {
                self.error = Some(format!("participant {node}: {error}"));
                return;
            }
        };
        for output in outputs {
            match output {
                participant_core::Output::Persist { lsn, record } => {
                    note!(
                        line,
                        " | persist {} {}",
                        record.kind(),
                        txn_name(record.txn())
                    );
                    let deadline = self.now_ms + FSYNC_MAX_MS;
                    let (state, disk) = self.participants.get_mut(&node).expect("known");
                    disk.queue.push_back((lsn, record));
                    state.write_deadlines.push_back(deadline);
                }
                participant_core::Output::Reply { to, id, msg } => {
                    if self.channels(node).get(&to.peer) == Some(&to.conn) {
                        let msg = msg.into();
                        self.send(node, to.peer, to.conn, Frame::Response { id, msg }, line);
                    }
                }
                participant_core::Output::Send { to, msg } => {
                    if let Some(epoch) = self.channels(node).get(&to).copied() {
                        let frame = Frame::Request {
                            id: RequestId(1),
                            msg,
                        };
                        self.send(node, to, epoch, frame, line);
                    }
                }
                participant_core::Output::ClientReply { .. } => {}
            }
        }
    }
}
