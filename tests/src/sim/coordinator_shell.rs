//! The coordinator's shell, as `coordinator::shell::node` does it, over the simulated
//! network and disk: recovery at start, channel bookkeeping, the output flush loop
//! (sends that cannot reach a channel come back as `SendFailed`), client results.

use coordinator::core::{ClientRef, Config, Coordinator, Input, Millis, Output, SendFailure};
use wire::{
    FromParticipant, NodeId, Request, Response, ToParticipant, TxnId, TxnResult, TxnSpec, Vote,
};

use super::cores::CoordinatorCore;
use super::history::{ClientView, txn_name};
use super::net::Frame;
use super::options::Planted;
use super::planted::CommitBeforeDurable;
use super::trace::{self, node_name};
use super::world::World;

impl World {
    /// A fresh core, recovered from the decision log (what `Node::start` does).
    pub(super) fn start_coordinator(&mut self, node: NodeId) {
        let mut config = Config::new(self.participant_ids());
        config.heartbeat_interval_ms = self.options.network.heartbeat_interval_ms;
        if let Err(error) = config.validate() {
            self.violation("setup", error.to_string());
            self.stopped = true;
            return;
        }
        let core = Coordinator::new(config);
        let core: Box<dyn CoordinatorCore> = match self.options.planted {
            Planted::CommitBeforeDurable => Box::new(CommitBeforeDurable::new(core)),
            _ => Box::new(core),
        };
        self.coord_mut(node).core = Some(core);
        let txns = self.coord_mut(node).disk.recover();
        note!(self, "c recovers {} unfinished commits", txns.len());
        self.coordinator_input(node, Input::Recovered { txns });
        self.coordinator_settle(node);
    }

    pub(super) fn coordinator_submit(
        &mut self,
        node: NodeId,
        number: u64,
        txn: TxnId,
        spec: TxnSpec,
    ) {
        let client = ClientRef {
            channel: self.coord_mut(node).host.incarnation,
            request: number,
        };
        self.coord_mut(node).clients.insert(number, txn);
        self.coordinator_input(node, Input::Submit { client, txn, spec });
        self.coordinator_settle(node);
    }

    pub(super) fn coordinator_receive(
        &mut self,
        node: NodeId,
        from: NodeId,
        epoch: u64,
        frame: Frame,
    ) {
        match frame {
            Frame::Request { id, msg } => {
                self.begin(
                    &node_name(node),
                    format!("<- {} {}", node_name(from), trace::request(&msg)),
                );
                if self.coord_mut(node).host.channels.get(&from) != Some(&epoch) {
                    note!(self, "stale channel: dropped");
                } else {
                    match msg {
                        Request::Coordinator(msg) => {
                            self.coordinator_input(node, Input::Request { from, id, msg });
                        }
                        Request::Participant(_) | Request::Client(_) => {
                            let refusal = msg.refused("not served from a participant".into());
                            let frame = Frame::Response { id, msg: refusal };
                            self.transmit(node, from, epoch, frame);
                        }
                    }
                }
            }
            Frame::Response { msg, .. } => {
                self.begin(
                    &node_name(node),
                    format!("<- {} {}", node_name(from), trace::response(&msg)),
                );
                let msg = match msg {
                    Response::Participant(msg) => msg,
                    Response::Coordinator(_) | Response::Client(_) => {
                        note!(self, "answer outside the participant family: dropped");
                        self.coordinator_settle(node);
                        return;
                    }
                };
                // Votes and acks are facts whichever connection carried them (the shell
                // accepts responses from any epoch of a configured participant).
                if let FromParticipant::Vote {
                    txn,
                    vote: Vote::No { .. },
                    ..
                } = &msg
                {
                    self.history.no_delivered.insert(*txn);
                }
                self.coordinator_input(node, Input::Response { from, msg });
            }
        }
        self.coordinator_settle(node);
    }

    pub(super) fn coordinator_up(&mut self, node: NodeId, peer: NodeId, epoch: u64) {
        self.begin(&node_name(node), format!("up {} e{epoch}", node_name(peer)));
        if let Some(old) = self.coord_mut(node).host.channels.insert(peer, epoch)
            && old != epoch
        {
            self.close_replaced(old);
        }
        self.coordinator_input(node, Input::PeerUp { peer });
        self.coordinator_settle(node);
    }

    pub(super) fn coordinator_down(&mut self, node: NodeId, peer: NodeId, epoch: u64) {
        self.begin(
            &node_name(node),
            format!("down {} e{epoch}", node_name(peer)),
        );
        if self.coord_mut(node).host.channels.get(&peer) == Some(&epoch) {
            self.coord_mut(node).host.channels.remove(&peer);
            self.coordinator_input(node, Input::PeerDown { peer });
        } else {
            note!(self, "stale");
        }
        self.coordinator_settle(node);
    }

    /// One group commit: a prefix of the write queue becomes durable, then each record
    /// is reported `Persisted`.
    pub(super) fn coordinator_flush_disk(&mut self, node: NodeId) {
        let len = self.coord_mut(node).disk.queue.len();
        if len == 0 {
            return;
        }
        let count = self.batch_len(len);
        self.begin(&node_name(node), format!("durable {count} of {len}"));
        let mut lsns = Vec::with_capacity(count);
        for _ in 0..count {
            let Some((lsn, record)) = self.coord_mut(node).disk.queue.pop_front() else {
                break;
            };
            if let Err(reason) = self.coord_mut(node).disk.apply(&record) {
                self.violation("store", reason);
                self.stopped = true;
                return;
            }
            lsns.push(lsn);
        }
        for lsn in lsns {
            self.coordinator_input(node, Input::Persisted { lsn });
        }
        self.coordinator_settle(node);
        self.coordinator_prune(node);
        if !self.coord_mut(node).disk.queue.is_empty() {
            self.schedule_flush(node);
        }
    }

    /// How many queued records one group commit makes durable: usually all of them.
    pub(super) fn batch_len(&mut self, len: usize) -> usize {
        use rand::Rng;
        if self.rng.random_bool(0.75) {
            len
        } else {
            self.rng.random_range(1..=len)
        }
    }

    /// After every wake the shell runs due timers, then carries out the outputs.
    pub(super) fn coordinator_settle(&mut self, node: NodeId) {
        if !self.coord_mut(node).host.alive || self.stopped {
            return;
        }
        let now = Millis(self.local_ms(node));
        let due = self
            .coord_mut(node)
            .core
            .as_ref()
            .and_then(|core| core.poll_timeout())
            .is_some_and(|at| at <= now);
        if due {
            let Some(mut core) = self.coord_mut(node).core.take() else {
                return;
            };
            let checked = self.guarded("coordinator panic", || {
                core.handle_timeout(now);
                core.check_invariants()
            });
            self.coord_mut(node).core = Some(core);
            if let Some(Err(text)) = checked {
                self.violation("coordinator invariant", text);
            }
        }
        self.coordinator_outputs(node);
        self.coordinator_schedule_timer(node);
    }

    pub(super) fn coordinator_schedule_timer(&mut self, node: NodeId) {
        let deadline = self
            .coord_mut(node)
            .core
            .as_ref()
            .and_then(|core| core.poll_timeout())
            .map(|at| at.0);
        self.schedule_timer(node, deadline);
    }

    fn coordinator_input(&mut self, node: NodeId, input: Input) {
        if self.stopped {
            return;
        }
        let now = Millis(self.local_ms(node));
        let Some(mut core) = self.coord_mut(node).core.take() else {
            return;
        };
        let checked = self.guarded("coordinator panic", || {
            core.handle(now, input);
            core.check_invariants()
        });
        self.coord_mut(node).core = Some(core);
        if let Some(Err(text)) = checked {
            self.violation("coordinator invariant", text);
        }
    }

    /// `Node::flush`: every output, then the sends that failed fed back as inputs.
    fn coordinator_outputs(&mut self, node: NodeId) {
        loop {
            let mut outputs = Vec::new();
            if let Some(core) = self.coord_mut(node).core.as_mut() {
                while let Some(output) = core.poll_output() {
                    outputs.push(output);
                }
            }
            let mut failed = Vec::new();
            for output in outputs {
                match output {
                    Output::Send { to, msg } => {
                        let txn = msg.txn();
                        let precommit = matches!(msg, ToParticipant::PreCommit { .. });
                        match self.coord_mut(node).host.channels.get(&to).copied() {
                            Some(epoch) => {
                                self.request(node, to, epoch, msg);
                                if precommit {
                                    self.maybe_crash_on_precommit(node);
                                }
                            }
                            None => {
                                note!(
                                    self,
                                    "-> {} {} failed: down",
                                    node_name(to),
                                    trace::request(&msg.into())
                                );
                                failed.push(Input::SendFailed {
                                    to,
                                    txn,
                                    failure: SendFailure::Closed,
                                });
                            }
                        }
                    }
                    Output::Reply { to, id, msg } => {
                        match self.coord_mut(node).host.channels.get(&to).copied() {
                            Some(epoch) => {
                                let msg = msg.into();
                                self.transmit(node, to, epoch, Frame::Response { id, msg });
                            }
                            None => note!(self, "reply to {} dropped: down", node_name(to)),
                        }
                    }
                    Output::Persist { lsn, record } => {
                        note!(
                            self,
                            "persist {} {}",
                            lsn.0,
                            trace::coordinator_record(&record)
                        );
                        self.coord_mut(node).disk.queue.push_back((lsn, record));
                        self.schedule_flush(node);
                        self.maybe_crash_on_persist(node);
                    }
                    Output::ClientResult {
                        client,
                        txn,
                        result,
                    } => {
                        note!(
                            self,
                            "client {}: {}",
                            txn_name(txn),
                            trace::result_text(&result)
                        );
                        self.coord_mut(node).clients.remove(&client.request);
                        if let Some(info) = self.history.txns.get_mut(&txn) {
                            info.client = match result {
                                TxnResult::Committed { reads } => {
                                    info.reads = reads;
                                    ClientView::Committed
                                }
                                TxnResult::Aborted { reason } => ClientView::Aborted(reason),
                                TxnResult::Rejected { reason } => ClientView::Rejected(reason),
                            };
                        }
                    }
                }
            }
            if failed.is_empty() {
                return;
            }
            for input in failed {
                self.coordinator_input(node, input);
            }
        }
    }
}
