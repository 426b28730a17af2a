//! The coordinator node: one event loop feeding the core from the wire, the log writer
//! and a timer, and carrying out the core's outputs (sends, replies, log writes, results).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foldhash::HashMap;
use futures::FutureExt;
use tracing::{debug, info, info_span, warn};
use wire::{
    Channel, ChannelEvent, ClientRequest, ClientResponse, Decision, DialHandle, Epoch,
    EventReceiver, FromParticipant, NodeId, Outcome, Request, RequestId, Response, Role, SendError,
    ServeHandle, ToParticipant, TxnId, TxnResult,
};

mod shutdown;
mod start;
mod status;

pub use shutdown::{SHUTDOWN_DRAIN_MAX, SHUTDOWN_WRITER_MAX, Stopped};

use super::config::{ServeConfig, ShellError};
use super::log_writer::LogEvent;
use super::metrics::{Metrics, Recorder};
use super::outstanding::Outstanding;
use crate::core::{ClientRef, Coordinator, Input, Lsn, Millis, Output, Record, SendFailure};
use crate::store::RetentionFigures;
use wire::runtime::{self, Receiver, Sender};

use wire::crash::{
    COORDINATOR_AFTER_COMMIT_LOGGED, COORDINATOR_AFTER_FIRST_COMMIT_SENT,
    COORDINATOR_AFTER_FIRST_PRECOMMIT_ACKED, COORDINATOR_AFTER_FIRST_PRECOMMIT_SENT,
    COORDINATOR_BEFORE_COMMIT_LOGGED, COORDINATOR_BEFORE_END_LOGGED,
};

/// Events the wire may queue for the loop before its readers wait (backpressure).
pub const EVENT_QUEUE_MAX: usize = 4_096;
/// Transaction ids a status report lists per category (the counts are always complete).
pub const STATUS_TXNS_LISTED_MAX: usize = 10;
/// A participant whose phi-accrual suspicion reaches this is shown as SUSPECT (Akka's
/// default threshold); it is declared down only by the wire's hard rule (silent 10
/// heartbeats).
pub const PHI_SUSPECT: f64 = 8.0;

/// One configured participant: where it is, and its channel while it is up.
struct PeerSlot {
    addr: SocketAddr,
    channel: Option<Channel>,
    /// When and why the last channel went down (`None`: never connected, or up).
    down: Option<(Instant, String)>,
    /// Requests queued or in flight on `channel`, so a re-send does not queue a copy.
    outstanding: Outstanding,
    /// Keeps the reconnect loop alive for the node's lifetime.
    _dial: DialHandle,
}

/// A started coordinator: store open and recovered, participants being dialled,
/// listener bound. `run` serves until a fatal error.
pub struct Node {
    config: ServeConfig,
    core: Coordinator,
    start: Instant,
    events: EventReceiver,
    log_records: Sender<(Lsn, Record)>,
    log_events: Receiver<LogEvent>,
    peers: BTreeMap<NodeId, PeerSlot>,
    /// Client connections by epoch (clients all have node id 0).
    clients: HashMap<Epoch, Channel>,
    local_addr: SocketAddr,
    io: IoCounts,
    /// The log writer's last retention figures, for `status`.
    retention: Arc<Mutex<Option<RetentionFigures>>>,
    /// Set by a requested stop: the drain's deadline, and the txns in flight at the stop.
    stopping: Option<(Instant, usize)>,
    metrics: Recorder,
    /// Wakes `wait` for the core's next deadline or a skipped metrics refresh.
    alarm: runtime::Alarm,
    _serve: ServeHandle,
}

/// What the node has done since it started, for `status` and the benchmark's
/// per-transaction figures.
#[derive(Clone, Copy, Debug, Default)]
struct IoCounts {
    /// SQLite transactions the log writer committed (each one fsync of the WAL).
    sqlite_txns: u64,
    records: u64,
    /// Protocol messages (requests and responses, clients' included; heartbeats and
    /// handshakes are not counted) received and sent.
    messages_in: u64,
    messages_out: u64,
}

enum Wake {
    Log(Option<LogEvent>),
    Wire(Option<ChannelEvent>),
    Timer,
    Stop,
}

impl Node {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The node's metrics, for `--metrics` (`Metrics::encode`).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.metrics().clone()
    }

    /// Serves until a fatal error (a failed log write); never returns `Ok`.
    pub async fn run(self) -> Result<(), ShellError> {
        self.run_until(futures::future::pending()).await.map(drop)
    }

    /// Serves until `stop` resolves, then stops gracefully (`shutdown`), or until a fatal
    /// error (a failed log write).
    pub async fn run_until(
        mut self,
        stop: impl Future<Output = ()>,
    ) -> Result<Stopped, ShellError> {
        info!(addr = %self.local_addr, participants = self.peers.len(), "coordinator serving");
        let stop = stop.fuse();
        futures::pin_mut!(stop);
        loop {
            let deadline = self.drain_deadline();
            // Polled before the loop's input, so a steady stream of it cannot hide a stop;
            // once stopping, the drain's deadline wakes the loop instead.
            let stop_or_deadline = async {
                match deadline {
                    None => {
                        (&mut stop).await;
                        Wake::Stop
                    }
                    Some(at) => {
                        runtime::sleep(at.saturating_duration_since(Instant::now())).await;
                        Wake::Timer
                    }
                }
            };
            let wake = {
                let wait = self.wait();
                futures::pin_mut!(stop_or_deadline, wait);
                match futures::future::select(stop_or_deadline, wait).await {
                    futures::future::Either::Left((wake, _))
                    | futures::future::Either::Right((wake, _)) => wake,
                }
            };
            match wake {
                Wake::Log(Some(LogEvent::Persisted(batch))) => {
                    // The writer reports one batch per SQLite transaction.
                    self.io.sqlite_txns += 1;
                    self.io.records += batch.len() as u64;
                    self.metrics.log_batch(batch.len());
                    let now = self.now();
                    for (lsn, record) in batch {
                        if let Some(txn) = commit_decision_txn(&record) {
                            wire::crash::point(COORDINATOR_AFTER_COMMIT_LOGGED, txn);
                        }
                        self.core.handle(now, Input::Persisted { lsn });
                    }
                }
                Wake::Log(Some(LogEvent::Failed(error))) => return Err(error.into()),
                Wake::Log(None) => return Err(ShellError::WriterGone),
                Wake::Wire(Some(event)) => self.on_wire(event),
                Wake::Wire(None) => return Err(ShellError::EventsGone),
                Wake::Timer => {}
                Wake::Stop => self.begin_shutdown(),
            }
            // Checked on every wake, so a steady stream of events cannot starve the timers.
            let now = self.now();
            if self.core.poll_timeout().is_some_and(|at| at <= now) {
                self.core.handle_timeout(now);
            }
            self.flush().await?;
            let peers = self
                .peers
                .iter()
                .map(|(id, slot)| (*id, slot.channel.as_ref()));
            self.metrics.refresh(&self.core, peers);
            if self.drained() {
                return self.shut_down().await;
            }
        }
    }

    /// Waits for the next thing to do: durable records first (they release commits),
    /// then wire events, then the core's next deadline or a skipped metrics refresh (an
    /// idle loop still wakes for it, so the gauges catch up with the last work).
    async fn wait(&mut self) -> Wake {
        // What is queued already is taken without a timer or a select: under load that is
        // most wakes, and arming a timer costs syscalls and a hand-off to the reactor.
        if let Ok(event) = self.log_events.try_recv() {
            return Wake::Log(Some(event));
        }
        if let Some(event) = self.events.try_recv() {
            return Wake::Wire(Some(event));
        }
        let timeout = self
            .core
            .poll_timeout()
            .map(|at| self.start + Duration::from_millis(at.0));
        let refresh = self
            .metrics
            .refresh_pending()
            .map(|after| Instant::now() + after);
        if let Some(at) = timeout.into_iter().chain(refresh).min() {
            self.alarm.ring_by(at);
        }
        let log = self.log_events.recv().fuse();
        let wire = self.events.recv().fuse();
        let timer = self.alarm.rung().fuse();
        futures::pin_mut!(log, wire, timer);
        futures::select_biased! {
            event = log => Wake::Log(event.ok()),
            event = wire => Wake::Wire(event.ok()),
            () = timer => Wake::Timer,
        }
    }

    fn now(&self) -> Millis {
        Millis(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn on_wire(&mut self, event: ChannelEvent) {
        let now = self.now();
        match event {
            ChannelEvent::Up { channel } => self.on_up(now, channel),
            ChannelEvent::Down {
                peer,
                epoch,
                reason,
            } => {
                if self.clients.remove(&epoch).is_some() {
                    debug!(epoch = %epoch, %reason, "client disconnected");
                } else if let Some(slot) = self.current_slot(peer, epoch) {
                    slot.channel = None;
                    slot.outstanding.clear();
                    slot.down = Some((Instant::now(), reason.clone()));
                    warn!(peer = %peer, epoch = %epoch, %reason, "participant down");
                    self.core.handle(now, Input::PeerDown { peer });
                } else {
                    debug!(peer = %peer, epoch = %epoch, "stale Down ignored");
                }
            }
            ChannelEvent::Request {
                peer,
                epoch,
                id,
                msg,
            } => {
                self.io.messages_in += 1;
                let txn = msg.txn().map(tracing::field::display);
                let _span = info_span!("request", %peer, txn).entered();
                if let Some(client) = self.clients.get(&epoch).cloned() {
                    match msg {
                        Request::Client(msg) => self.on_client_request(now, &client, id, msg),
                        Request::Participant(_) | Request::Coordinator(_) => {
                            let reason = format!(
                                "the coordinator serves Submit and Status from clients, got {}",
                                msg.kind()
                            );
                            respond(&client, id, msg.refused(reason));
                        }
                    }
                } else if let Some(slot) = self.current_slot(peer, epoch) {
                    match msg {
                        Request::Coordinator(msg) => self.core.handle(
                            now,
                            Input::Request {
                                from: peer,
                                id,
                                msg,
                            },
                        ),
                        Request::Participant(_) | Request::Client(_) => {
                            let reason = format!(
                                "the coordinator serves only DecisionQuery from participants, got {}",
                                msg.kind()
                            );
                            if let Some(channel) = &slot.channel {
                                respond(channel, id, msg.refused(reason));
                            }
                        }
                    }
                } else {
                    debug!(peer = %peer, epoch = %epoch, "request on a stale channel ignored");
                }
            }
            ChannelEvent::Response {
                peer,
                epoch,
                id,
                msg,
            } => {
                self.io.messages_in += 1;
                let txn = msg.txn().map(tracing::field::display);
                let _span = info_span!("response", %peer, txn).entered();
                if let Some(slot) = self.current_slot(peer, epoch) {
                    slot.outstanding.answered(id);
                }
                // Votes and acks are facts about a transaction, whichever connection
                // carried them: one from an older epoch is as true as a current one.
                if self.peers.contains_key(&peer) && !self.clients.contains_key(&epoch) {
                    let msg = match msg {
                        Response::Participant(msg) => msg,
                        Response::Coordinator(_) | Response::Client(_) => {
                            warn!(peer = %peer, kind = msg.kind(), "participant answered outside its family; ignored");
                            return;
                        }
                    };
                    if let FromParticipant::Ack {
                        txn,
                        outcome: Outcome::PreCommitted,
                    } = &msg
                    {
                        wire::crash::point(COORDINATOR_AFTER_FIRST_PRECOMMIT_ACKED, *txn);
                    }
                    self.core.handle(now, Input::Response { from: peer, msg });
                }
            }
        }
    }

    fn on_up(&mut self, now: Millis, channel: Channel) {
        let peer = channel.peer();
        match channel.peer_role() {
            Role::Client => {
                debug!(epoch = %channel.epoch(), addr = %channel.peer_addr(), "client connected");
                self.clients.insert(channel.epoch(), channel);
            }
            Role::Participant if self.peers.contains_key(&peer) => {
                let Some(slot) = self.peers.get_mut(&peer) else {
                    return;
                };
                // Ups of two connections can arrive in either order: the newer one
                // stays, whichever came last.
                if !wire::supersedes(&channel, slot.channel.as_ref()) {
                    debug!(peer = %peer, epoch = %channel.epoch(), "stale connection up; closed");
                    channel.close();
                    return;
                }
                info!(peer = %peer, epoch = %channel.epoch(), addr = %channel.peer_addr(), "participant up");
                slot.down = None;
                slot.outstanding.clear();
                let bytes = channel.send_frame_len_max();
                if let Some(old) = slot.channel.replace(channel) {
                    old.close();
                }
                self.core.handle(now, Input::PeerFrameLimit { peer, bytes });
                self.core.handle(now, Input::PeerUp { peer });
            }
            role => {
                warn!(peer = %peer, ?role, "unexpected connection; closed");
                channel.close();
            }
        }
    }

    fn current_slot(&mut self, peer: NodeId, epoch: Epoch) -> Option<&mut PeerSlot> {
        self.peers
            .get_mut(&peer)
            .filter(|slot| slot.channel.as_ref().is_some_and(|c| c.epoch() == epoch))
    }

    fn on_client_request(
        &mut self,
        now: Millis,
        client: &Channel,
        id: RequestId,
        msg: ClientRequest,
    ) {
        match msg {
            ClientRequest::Submit { txn, spec } => {
                if self.refuse_while_stopping(client, id, txn) {
                    return;
                }
                debug!(txn = %txn, epoch = %client.epoch(), "submitted");
                self.metrics.submitted(txn, spec.protocol);
                let client = ClientRef {
                    channel: client.epoch().0,
                    request: id.0,
                };
                self.core.handle(now, Input::Submit { client, txn, spec });
            }
            ClientRequest::Status => {
                let text = self.status_text();
                self.io.messages_out += 1;
                respond(client, id, ClientResponse::StatusReport { text }.into());
            }
            // A participant's operator requests: asked of the wrong node.
            ClientRequest::InDoubt | ClientRequest::Txn { .. } | ClientRequest::Resolve { .. } => {
                let reason = format!(
                    "{} is a participant request; the coordinator's own txn lookup is \
                     `coordinator txn ID --db FILE`",
                    msg.kind()
                );
                respond(client, id, ClientResponse::Refused { reason }.into());
            }
        }
    }

    /// Carries out every output of the core, feeding back sends that could not be queued.
    async fn flush(&mut self) -> Result<(), ShellError> {
        loop {
            let mut failed = Vec::new();
            while let Some(output) = self.core.poll_output() {
                match output {
                    Output::Send { to, msg } => match self.send(to, msg) {
                        Ok(Some((point, txn))) => wire::crash::die_after_send(point, txn).await,
                        Ok(None) => {}
                        Err((txn, failure)) => failed.push(Input::SendFailed { to, txn, failure }),
                    },
                    Output::Reply { to, id, msg } => {
                        match self.peers.get(&to).and_then(|slot| slot.channel.as_ref()) {
                            Some(channel) => {
                                self.io.messages_out += 1;
                                respond(channel, id, msg.into());
                            }
                            None => debug!(peer = %to, "reply dropped: participant down"),
                        }
                    }
                    Output::Persist { lsn, record } => {
                        if let Record::Decided { txn, .. } = &record {
                            self.metrics.decided(*txn);
                        }
                        if let Some(txn) = commit_decision_txn(&record) {
                            wire::crash::point(COORDINATOR_BEFORE_COMMIT_LOGGED, txn);
                        }
                        if let Record::Ended { txn } = &record {
                            wire::crash::point(COORDINATOR_BEFORE_END_LOGGED, *txn);
                        }
                        self.log_records
                            .send((lsn, record))
                            .await
                            .map_err(|_| ShellError::WriterGone)?;
                    }
                    Output::ClientResult {
                        client,
                        txn,
                        result,
                    } => self.send_result(client, txn, result),
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            let now = self.now();
            for input in failed {
                self.core.handle(now, input);
            }
        }
    }

    /// Queues a request to a participant, unless an identical one is still queued or in
    /// flight on the current connection (that one will be answered, or expire and be
    /// re-sent); `Err` says which transaction it was for and why not. `Ok(Some(..))`: an
    /// armed crash point to die at once the frame is on the wire (`flush` awaits it).
    fn send(
        &mut self,
        to: NodeId,
        msg: ToParticipant,
    ) -> Result<Option<(&'static str, TxnId)>, (TxnId, SendFailure)> {
        // Every request to a participant names its transaction (`ToParticipant::txn` is
        // exhaustive): no list here to keep in step (a list here once dropped `Release`).
        let txn = msg.txn();
        let Some(slot) = self.peers.get_mut(&to) else {
            return Err((txn, SendFailure::Closed));
        };
        let Some(channel) = slot.channel.as_ref() else {
            return Err((txn, SendFailure::Closed));
        };
        if let Some(earlier) = slot
            .outstanding
            .duplicate_of(&msg, |id| channel.is_pending(id))
        {
            debug!(txn = %txn, peer = %to, kind = msg.kind(), earlier = earlier.0,
                "identical request still outstanding; not queued again");
            return Ok(None);
        }
        if let ToParticipant::Decide {
            decision: Decision::Commit,
            ..
        } = &msg
        {
            debug!(txn = %txn, peer = %to, "commit sent");
        }
        let crash_point = match &msg {
            ToParticipant::PreCommit { .. } => Some(COORDINATOR_AFTER_FIRST_PRECOMMIT_SENT),
            ToParticipant::Decide {
                decision: Decision::Commit,
                ..
            } => Some(COORDINATOR_AFTER_FIRST_COMMIT_SENT),
            ToParticipant::Prepare { .. }
            | ToParticipant::Decide {
                decision: Decision::Abort,
                ..
            }
            | ToParticipant::StateQuery { .. }
            | ToParticipant::Release { .. } => None,
        };
        match channel.request(msg.clone()) {
            Ok(id) => {
                self.io.messages_out += 1;
                if !slot.outstanding.sent(msg, id, |id| channel.is_pending(id)) {
                    warn!(txn = %txn, peer = %to, "outstanding request table full; re-sends of this request are not deduplicated");
                }
                // An armed "after ... sent" point dies once this frame is on the wire.
                Ok(crash_point
                    .filter(|name| wire::crash::due_after_send(name, txn))
                    .map(|name| (name, txn)))
            }
            Err(SendError::QueueFull) => {
                warn!(txn = %txn, peer = %to, "participant send queue full");
                Err((txn, SendFailure::Overloaded))
            }
            Err(SendError::Closed) => Err((txn, SendFailure::Closed)),
            Err(SendError::TooLarge { len, max }) => {
                warn!(txn = %txn, peer = %to, len, max, "request over the participant's frame limit; not sent");
                Err((txn, SendFailure::TooLarge { len, max }))
            }
        }
    }

    fn send_result(&mut self, client: ClientRef, txn: TxnId, result: TxnResult) {
        self.metrics.finished(txn, &result);
        match &result {
            TxnResult::Committed { .. } => debug!(txn = %txn, "committed"),
            TxnResult::Aborted { reason } => debug!(txn = %txn, %reason, "aborted"),
            TxnResult::Rejected { reason } => debug!(txn = %txn, %reason, "rejected"),
        }
        match self.clients.get(&Epoch(client.channel)) {
            Some(channel) => {
                self.io.messages_out += 1;
                respond(
                    channel,
                    RequestId(client.request),
                    ClientResponse::Result { txn, result }.into(),
                );
            }
            None => debug!(txn = %txn, "client gone before its result"),
        }
    }
}

fn respond(channel: &Channel, id: RequestId, msg: Response) {
    match channel.respond(id, msg) {
        Ok(()) => {}
        // Not a passing state like a full queue: say so where an operator looks.
        Err(error @ SendError::TooLarge { .. }) => {
            warn!(peer = %channel.peer(), epoch = %channel.epoch(), %error, "response not sent")
        }
        Err(error) => {
            debug!(peer = %channel.peer(), epoch = %channel.epoch(), %error, "response not sent")
        }
    }
}

/// The txn of a commit (3PC: precommit) decision record, the crash points' "decision".
fn commit_decision_txn(record: &Record) -> Option<TxnId> {
    match record {
        Record::Decided {
            txn,
            decision: Decision::Commit,
            ..
        } => Some(*txn),
        _ => None,
    }
}
