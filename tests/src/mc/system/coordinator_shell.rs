//! The coordinator's shell in the model: routing what arrives to the core (stale
//! channels dropped), running the core with its invariants checked, and carrying out its
//! outputs (a send with no channel comes back as `SendFailed`).

use std::fmt::Write as _;

use coordinator::core::{self as coordinator_core, SendFailure};
use wire::{NodeId, Request, RequestId, Response, TxnResult};

use crate::sim::net::Frame;
use crate::sim::panics::guarded;
use crate::sim::trace::{self, COORDINATOR};

use super::{FSYNC_MAX_MS, InFlight, Line, Step, System, Told};

impl System {
    pub(super) fn coordinator_receive(&mut self, from: NodeId, message: InFlight, line: &mut Line) {
        match message.frame {
            Frame::Request { id, msg } => {
                if self.coordinator.channels.get(&from) != Some(&message.epoch) {
                    note!(line, " | stale");
                    return;
                }
                match msg {
                    Request::Coordinator(msg) => {
                        let input = coordinator_core::Input::Request { from, id, msg };
                        self.coordinator_step(Step::Input(input), line);
                    }
                    // Participants in the model send the coordinator only decision queries.
                    Request::Participant(_) | Request::Client(_) => note!(line, " | not served"),
                }
            }
            Frame::Response { msg, .. } => match msg {
                Response::Participant(msg) => {
                    let input = coordinator_core::Input::Response { from, msg };
                    self.coordinator_step(Step::Input(input), line);
                }
                Response::Coordinator(_) | Response::Client(_) => note!(line, " | not an answer"),
            },
        }
    }

    pub(super) fn coordinator_step(
        &mut self,
        step: Step<coordinator_core::Input>,
        line: &mut Line,
    ) {
        let mut pending = vec![step];
        while !pending.is_empty() {
            let mut failed = Vec::new();
            for step in pending {
                let Some(core) = self.coordinator.core.as_mut() else {
                    return;
                };
                let now = coordinator_core::Millis(self.now_ms);
                let outcome = guarded(|| {
                    let core = core.get_mut();
                    match step {
                        Step::Input(input) => core.handle(now, input),
                        Step::Timeout => core.handle_timeout(now),
                    }
                    let outputs: Vec<_> = std::iter::from_fn(|| core.poll_output()).collect();
                    core.check_invariants().map(|()| outputs)
                })
                .and_then(|checked| checked);
                let outputs = match outcome {
                    Ok(outputs) => outputs,
                    Err(error) => {
                        self.error = Some(error);
                        return;
                    }
                };
                for output in outputs {
                    if let Some(input) = self.coordinator_output(output, line) {
                        failed.push(Step::Input(input));
                    }
                }
            }
            pending = failed;
        }
    }

    /// Carries out one output; a send that found no channel comes back as `SendFailed`.
    fn coordinator_output(
        &mut self,
        output: coordinator_core::Output,
        line: &mut Line,
    ) -> Option<coordinator_core::Input> {
        match output {
            coordinator_core::Output::Send { to, msg } => {
                let txn = msg.txn();
                match self.coordinator.channels.get(&to).copied() {
                    Some(epoch) => {
                        let frame = Frame::Request {
                            id: RequestId(1),
                            msg: msg.into(),
                        };
                        self.send(COORDINATOR, to, epoch, frame, line);
                        None
                    }
                    None => Some(coordinator_core::Input::SendFailed {
                        to,
                        txn,
                        failure: SendFailure::Closed,
                    }),
                }
            }
            coordinator_core::Output::Reply { to, id, msg } => {
                if let Some(epoch) = self.coordinator.channels.get(&to).copied() {
                    let msg = msg.into();
                    self.send(COORDINATOR, to, epoch, Frame::Response { id, msg }, line);
                }
                None
            }
            coordinator_core::Output::Persist { lsn, record } => {
                note!(line, " | persist {}", trace::coordinator_record(&record));
                self.coordinator_disk.queue.push_back((lsn, record));
                self.coordinator
                    .write_deadlines
                    .push_back(self.now_ms + FSYNC_MAX_MS);
                None
            }
            coordinator_core::Output::ClientResult { client, result, .. } => {
                note!(line, " | client {}", trace::result_text(&result));
                let index = client.request as usize;
                self.told[index] = match result {
                    TxnResult::Committed { .. } => Told::Committed,
                    TxnResult::Aborted { .. } | TxnResult::Rejected { .. } => Told::Aborted,
                };
                None
            }
        }
    }
}
