//! The participant's shell: one event loop task that feeds the core from the network, the
//! store writer and a timer, and carries out the core's outputs.
//!
//! The network is one listener (coordinators, clients, and peer participants) and the
//! participant mesh (`wire::mesh`: one channel per pair of participants, dialled by the
//! larger id). Coordinators and peers are both "peers" to the core: their Up/Down become
//! `PeerUp`/`PeerDown`, and the protocol messages they send (PreCommit, Decide,
//! StateQuery; Prepare only from a coordinator) are handled alike.
//!
//! Reads the core needs (committed values, a txn's stored state) are done inline before the
//! input is handled. That is safe because the loop handles one input at a time: a key not
//! locked when the Prepare is handled has no commit in flight, and every commit that
//! touched it was reported durable before (so the read, from a committed SQLite
//! transaction, sees it). A key whose commit is decided but not yet durable reads older
//! here; the core reads it as that commit leaves it (`core/locks.rs`). Committed values
//! come from `values::ValueCache` when it has them (kept exact by the writer's reports,
//! see there), from SQLite otherwise.

mod admin;
pub mod metrics;
pub mod retention;
mod shutdown;
mod start;
mod start_checks;
mod status;
mod values;
pub mod writer;

use std::collections::BTreeMap;
use std::future::{Future, pending};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::HashMap;
use futures::future::{Either, select};
use tracing::{Instrument, debug, debug_span, error, info, info_span, warn};
use wire::{
    Channel, ChannelEvent, ClientResponse, Epoch, EventReceiver, FromParticipant, MeshHandle,
    NodeId, Request, RequestId, Response, Role, ServeHandle, TxnId,
};
use wire::{crash, runtime};

use crate::core::inbound::{self, Needs, Plan, Reads};
use crate::core::{Config, Input, Millis, Output, Participant, ReplyTo};
use crate::store::admin::{DbLock, LockError};
use crate::store::{Store, StoreError};
pub use shutdown::{SHUTDOWN_WRITER_MAX, Stopped};
use values::ValueCache;
use writer::{DurableBatch, Pending, WRITER_QUEUE_MAX};

/// The node's single queue of channel events.
pub const EVENT_QUEUE_MAX: usize = 4096;

#[derive(Clone, Debug)]
pub struct Options {
    pub node_id: NodeId,
    pub listen: SocketAddr,
    pub db: PathBuf,
    pub cluster_id: String,
    pub heartbeat_interval: Duration,
    pub core: Config,
    /// The other participants of the cluster and their listen addresses (the mesh).
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Cluster secret and client token (none: nobody is authenticated).
    pub auth: wire::Auth,
    /// Connection limits of the listener.
    pub connections: wire::ConnectionLimits,
    /// Largest frame body our channels send and accept (`--frame-bytes-max`).
    pub frame_bytes_max: usize,
    /// Requests in flight on each channel before later ones queue (`--channel-in-flight-max`);
    /// the wire's default when `None`.
    pub channel_in_flight_max: Option<usize>,
    /// How long decided txns are kept (`--retain`, `--retain-txns`).
    pub retention: retention::Retention,
}

#[derive(thiserror::Error, Debug)]
pub enum ShellError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// `--db` names a file in a directory that does not exist (SQLite creates the file,
    /// not its directory, and says only "unable to open database file").
    #[error("cannot create participant database {}: directory {} does not exist", db.display(), dir.display())]
    NoDbDir { db: PathBuf, dir: PathBuf },
    /// Another process owns the database: a second node on one file, or an operator's
    /// `participant resolve` writing to it.
    #[error(transparent)]
    DbInUse(#[from] LockError),
}

/// A participant that has opened its store, recovered and bound its listener.
#[derive(Debug)]
pub struct Node {
    local_addr: SocketAddr,
    event_loop: EventLoop,
    _serve: ServeHandle,
    _mesh: MeshHandle,
    /// Held while the node runs: `participant resolve` refuses a database in use.
    _db_lock: DbLock,
}

impl Node {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The node's metrics, for `--metrics` (`Metrics::encode`).
    pub fn metrics(&self) -> Arc<metrics::Metrics> {
        self.event_loop.metrics.metrics().clone()
    }

    /// Serves until the process ends.
    pub async fn run(self) {
        self.run_until(pending()).await;
    }
}

#[derive(Debug)]
struct EventLoop {
    node_id: NodeId,
    core: Participant,
    store: Store,
    clock: Instant,
    events: (wire::EventSender, EventReceiver),
    /// Coordinator and peer participant channels, by node id (the current epoch only).
    peers: HashMap<NodeId, Channel>,
    /// The mesh as configured (`--peer`), for status.
    mesh_peers: BTreeMap<NodeId, SocketAddr>,
    /// Client channels, by epoch (bounded by the listener's connection limit).
    clients: HashMap<Epoch, Channel>,
    /// Committed values of `kv` keys, exact as of the last durable batch handled.
    values: ValueCache,
    writer_queue: (runtime::Sender<Pending>, runtime::Receiver<Pending>),
    durable: (
        runtime::Sender<DurableBatch>,
        runtime::Receiver<DurableBatch>,
    ),
    /// Records sent to the writer and not yet reported durable to the core. The core emits
    /// at most one record per input, so pausing network input at `WRITER_QUEUE_MAX` keeps
    /// both writer channels (capacity `WRITER_QUEUE_MAX + 1`) from ever filling: neither
    /// side can block the other.
    outstanding: usize,
    local_addr: SocketAddr,
    io: status::IoCounts,
    retention: Arc<retention::Shared>,
    /// When the horizon moves on next.
    horizon_at: Instant,
    /// The group-commit writer, awaited by a graceful stop.
    writer_task: Option<runtime::JoinHandle<()>>,
    metrics: metrics::Recorder,
    /// Wakes `next_wake` (see there).
    alarm: runtime::Alarm,
}

enum Wake {
    Durable(DurableBatch),
    Event(ChannelEvent),
    Timer,
    Closed,
    Stop,
}

impl EventLoop {
    fn now(&self) -> Millis {
        Millis(u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Serves until `stop` resolves (`true`) or the event queues close (`false`).
    async fn run(&mut self, stop: impl Future<Output = ()>) -> bool {
        let mut stop = pin!(stop);
        loop {
            let stop = async {
                stop.as_mut().await;
                Wake::Stop
            };
            // `stop` first: a steady stream of input must not hide it.
            match race(stop, self.next_wake()).await {
                Wake::Durable(batch) => self.on_durable(batch).await,
                Wake::Event(event) => self.on_event(event).await,
                Wake::Timer => {}
                Wake::Closed => {
                    error!("event queues closed; stopping");
                    return false;
                }
                Wake::Stop => return true,
            }
            if self.metrics.refresh_due() {
                let counts = self.core.counts();
                let (peers, mesh) = (&self.peers, &self.mesh_peers);
                self.metrics.refresh(&counts, peers, mesh);
            }
            self.advance_horizon();
            // Checked on every wake, so a steady stream of queued input (taken without
            // arming the timer) cannot starve the timers.
            let now = self.now();
            if self.core.poll_timeout().is_some_and(|at| at <= now) {
                self.core.handle_timeout(now);
                self.drain().await;
            }
        }
    }

    /// Durable notifications first (they release votes and locks), then network input
    /// (paused while the writer is `WRITER_QUEUE_MAX` records behind), then the alarm: the
    /// core's next deadline, the horizon's tick (so it moves on when the node is idle) or
    /// a skipped metrics refresh (so the gauges catch up with the last work).
    async fn next_wake(&mut self) -> Wake {
        let accept_events = self.outstanding < WRITER_QUEUE_MAX;
        // Paused for the writer is busy, not stuck: our channels keep heartbeating.
        self.events.1.pause(!accept_events);
        // What is queued already is taken without a timer or a select: under load that is
        // most wakes, and arming a timer costs syscalls and a hand-off to the reactor.
        if let Ok(batch) = self.durable.1.try_recv() {
            return Wake::Durable(batch);
        }
        if accept_events && let Some(event) = self.events.1.try_recv() {
            return Wake::Event(event);
        }
        let durable = async {
            match self.durable.1.recv().await {
                Ok(batch) => Wake::Durable(batch),
                Err(_) => Wake::Closed,
            }
        };
        let event = async {
            if !accept_events {
                return pending().await;
            }
            match self.events.1.recv().await {
                Ok(event) => Wake::Event(event),
                Err(_) => Wake::Closed,
            }
        };
        let timeout = self
            .core
            .poll_timeout()
            .map(|at| self.clock + Duration::from_millis(at.0));
        let refresh = self
            .metrics
            .refresh_pending()
            .map(|after| Instant::now() + after);
        let deadline = [timeout, refresh]
            .into_iter()
            .flatten()
            .fold(self.horizon_at, Instant::min);
        self.alarm.ring_by(deadline);
        let alarm = async {
            self.alarm.rung().await;
            Wake::Timer
        };
        race(durable, race(event, alarm)).await
    }

    async fn on_durable(&mut self, batch: DurableBatch) {
        // The writer sends one batch per SQLite transaction.
        self.io.sqlite_txns += 1;
        self.io.records += batch.records.len() as u64;
        self.metrics.log_batch(batch.records.len());
        // Before any of the batch's commits releases its locks.
        for (key, value) in batch.kv {
            self.values.insert(key, value);
        }
        for durable in batch.records {
            let point = match durable.kind {
                "prepared" | "waiting" => Some(crash::PARTICIPANT_AFTER_PREPARE_LOGGED),
                "precommitted" => Some(crash::PARTICIPANT_AFTER_PRECOMMIT_LOGGED),
                "committed" => Some(crash::PARTICIPANT_AFTER_COMMIT_APPLIED),
                _ => None,
            };
            if let Some(point) = point {
                crash::point(point, durable.txn);
            }
            // A termination leader's decision is held until durable; its peers hear it on
            // `Persisted` below.
            if self.core.holds_decision(durable.lsn) {
                crash::point(crash::LEADER_AFTER_DECISION_LOGGED, durable.txn);
            }
            self.outstanding = self.outstanding.saturating_sub(1);
            self.metrics.durable(durable.lsn, durable.kind);
            let now = self.now();
            self.core.handle(now, Input::Persisted { lsn: durable.lsn });
            self.drain().await;
        }
    }

    async fn on_event(&mut self, event: ChannelEvent) {
        match event {
            ChannelEvent::Up { channel } => self.on_up(channel),
            ChannelEvent::Down {
                peer,
                epoch,
                reason,
            } => {
                if self.clients.remove(&epoch).is_some() {
                    debug!(%peer, %epoch, %reason, "client disconnected");
                } else if self.peers.get(&peer).map(Channel::epoch) == Some(epoch) {
                    if let Some(channel) = self.peers.remove(&peer) {
                        warn!(%peer, %epoch, role = ?channel.peer_role(), %reason, "peer down");
                    }
                    let now = self.now();
                    self.core.handle(now, Input::PeerDown { peer });
                } else {
                    debug!(%peer, %epoch, %reason, "stale connection down");
                }
            }
            ChannelEvent::Request {
                peer,
                epoch,
                id,
                msg,
            } => {
                self.io.messages_in += 1;
                let Some(channel) = self.channel(peer, epoch) else {
                    debug!(%peer, %epoch, "request on a stale connection dropped");
                    return;
                };
                let span =
                    info_span!("request", %peer, txn = msg.txn().map(tracing::field::display));
                self.on_request(channel, id, msg).instrument(span).await;
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
                self.on_response(peer, epoch, id, msg);
            }
        }
        self.drain().await;
    }

    fn on_up(&mut self, channel: Channel) {
        let (peer, epoch) = (channel.peer(), channel.epoch());
        match channel.peer_role() {
            Role::Client => {
                debug!(%peer, %epoch, addr = %channel.peer_addr(), "client connected");
                self.clients.insert(epoch, channel);
            }
            role => {
                // Ups of two connections can arrive in either order: the newer one
                // stays, whichever came last.
                if !wire::supersedes(&channel, self.peers.get(&peer)) {
                    debug!(%peer, %epoch, "stale connection up; closed");
                    channel.close();
                    return;
                }
                info!(%peer, %epoch, ?role, addr = %channel.peer_addr(), "peer up");
                if let Some(old) = self.peers.insert(peer, channel) {
                    old.close();
                }
                let now = self.now();
                self.core.handle(now, Input::PeerUp { peer });
            }
        }
    }

    /// The current channel of this (peer, epoch), if it is current.
    fn channel(&self, peer: NodeId, epoch: Epoch) -> Option<Channel> {
        match self.peers.get(&peer) {
            Some(channel) if channel.epoch() == epoch => Some(channel.clone()),
            _ => self.clients.get(&epoch).cloned(),
        }
    }

    async fn on_request(&mut self, channel: Channel, id: RequestId, msg: Request) {
        let from = ReplyTo {
            peer: channel.peer(),
            conn: channel.epoch().0,
        };
        debug!(kind = msg.kind(), "request");
        let (msg, needs) = match inbound::plan(&self.core, channel.peer_role(), msg) {
            Plan::Protocol { msg, needs } => (msg, needs),
            Plan::Status => {
                let text = self.status_report().await;
                respond(&channel, id, ClientResponse::StatusReport { text }.into());
                return;
            }
            Plan::Lookup(lookup) => return self.on_lookup(&channel, id, lookup).await,
            Plan::Resolve {
                txn,
                decision,
                note,
                needs,
            } => {
                let resolve = (txn, decision, note);
                return self.on_resolve(&channel, id, resolve, needs).await;
            }
            Plan::Refuse { reason, reply } => {
                warn!(peer = %channel.peer(), %reason, "unexpected request");
                respond(&channel, id, reply);
                return;
            }
        };
        let reads = match self.read(&needs).await {
            Ok(reads) => reads,
            Err(error) => return self.store_failed(&channel, id, msg.txn(), error),
        };
        let input = inbound::request_input(from, id, msg, reads);
        let now = self.now();
        self.core.handle(now, input);
    }

    /// Reads what a request needs: committed values from the cache, or the store.
    async fn read(&mut self, needs: &Needs) -> Result<Reads, StoreError> {
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for key in &needs.keys {
            match self.values.get(key) {
                Some(value) => {
                    values.insert(key.clone(), value.clone());
                }
                None => missing.push(key.as_str()),
            }
        }
        if !missing.is_empty() {
            for (key, value) in self.store.values(missing).await? {
                self.values.insert(key.clone(), value.clone());
                values.insert(key, value);
            }
        }
        let stored = match needs.stored {
            Some(txn) => self.store.txn(txn).await?,
            None => None,
        };
        Ok(Reads { values, stored })
    }

    /// A failed read changes nothing: answer with an error; the coordinator may retry.
    fn store_failed(&self, channel: &Channel, id: RequestId, txn: TxnId, error: StoreError) {
        error!(%txn, %error, "store read failed");
        let reason = format!(
            "participant {} cannot read its store: {error}",
            self.node_id
        );
        respond(channel, id, FromParticipant::Refused { reason }.into());
    }

    fn on_response(&mut self, peer: NodeId, epoch: Epoch, id: RequestId, msg: Response) {
        if self.peers.get(&peer).map(Channel::epoch) != Some(epoch) {
            debug!(%peer, %epoch, "response on a stale connection dropped");
            return;
        }
        let input = match inbound::response_input(peer, msg) {
            Ok(input) => input,
            Err(reason) => {
                warn!(%peer, ?id, %reason, "response not handled");
                return;
            }
        };
        let now = self.now();
        self.core.handle(now, input);
    }

    /// Carries out everything the core has to say.
    async fn drain(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Persist { lsn, record } => {
                    if matches!(record.kind(), "prepared" | "waiting") {
                        crash::point(crash::PARTICIPANT_BEFORE_PREPARE_LOGGED, record.txn());
                    }
                    let linger = self.core.may_linger(lsn, &record);
                    self.outstanding += 1;
                    self.metrics.queued(lsn);
                    // Never blocks (see `outstanding`); if it did, the writer would still
                    // make progress because the durable channel has room.
                    if self
                        .writer_queue
                        .0
                        .send(Pending {
                            lsn,
                            record,
                            linger,
                        })
                        .await
                        .is_err()
                    {
                        error!("the store writer stopped; exiting");
                        std::process::exit(writer::LOG_WRITE_FAILED_EXIT);
                    }
                }
                Output::Reply { to, id, msg } => {
                    match &msg {
                        FromParticipant::Vote { txn, .. } => {
                            crash::point(crash::PARTICIPANT_BEFORE_VOTE_SENT, *txn);
                        }
                        FromParticipant::Ack { txn, .. } => {
                            crash::point(crash::PARTICIPANT_BEFORE_ACK_SENT, *txn);
                        }
                        _ => {}
                    }
                    let txn = msg.txn().map(tracing::field::display);
                    let _span = debug_span!("reply", peer = %to.peer, txn).entered();
                    match self.channel(to.peer, Epoch(to.conn)) {
                        Some(channel) => {
                            self.io.messages_out += 1;
                            respond(&channel, id, msg.into());
                        }
                        // The coordinator re-sends on its new connection.
                        None => debug!(peer = %to.peer, "reply for a closed connection dropped"),
                    }
                }
                Output::ClientReply { to, id, msg } => self.client_reply(to, id, msg),
                Output::Send { to, msg } => match self.peers.get(&to) {
                    Some(channel) => {
                        self.io.messages_out += 1;
                        let txn = msg.txn().map(tracing::field::display);
                        if let Err(error) = channel.request(msg) {
                            warn!(peer = %to, txn, %error, "cannot send; the core retries later");
                        }
                    }
                    None => {
                        debug!(peer = %to, txn = msg.txn().map(tracing::field::display), "send to a peer that is down dropped")
                    }
                },
            }
        }
    }
}

/// A response that cannot be queued (the channel closed, or the peer stopped reading and
/// filled the send queue) is dropped: the requester's own request deadline frees its slot.
fn respond(channel: &Channel, id: RequestId, msg: Response) {
    match channel.respond(id, msg) {
        Ok(()) => {}
        // Over the frame limit agreed with the peer (a vote's reads, say): not a passing
        // state like a full queue, so say so where an operator looks.
        Err(error @ wire::SendError::TooLarge { .. }) => {
            warn!(peer = %channel.peer(), %error, "reply not sent")
        }
        Err(error) => debug!(peer = %channel.peer(), %error, "reply not sent"),
    }
}

/// The first of two futures to finish (`a` is polled first).
async fn race<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    match select(pin!(a), pin!(b)).await {
        Either::Left((output, _)) | Either::Right((output, _)) => output,
    }
}
