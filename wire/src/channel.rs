//! One connection to a peer, as the node sees it: the `Channel` handle (send requests and
//! responses, close, liveness) over the state its reader, writer and heartbeat tasks
//! share (`connection` runs those tasks).
//!
//! One connection = one `Epoch`. A node sees `Up`, then messages, then exactly one `Down`
//! per epoch, so it can tell a stale event from a current one after a reconnect.

use std::collections::VecDeque;
use std::fmt;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::error;

use crate::config::ChannelConfig;
use crate::detector::PhiAccrual;
use crate::frame::{self, FrameError};
use crate::lock;
use crate::memory::Held;
use crate::msg::{Frame, NodeId, Request, RequestId, Response, Role};
use crate::pipeline::Outbound;
pub use crate::pipeline::SendError;
use crate::runtime::{Sender, TcpStream};

/// Unique per process for every connection ever made: tells a stale event from a current
/// one, and a newer connection to a peer from an older one (epochs only grow).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

fn next_epoch() -> Epoch {
    Epoch(NEXT_EPOCH.fetch_add(1, Ordering::Relaxed))
}

/// Whether `new` should become a node's channel to its peer in place of `current`: only a
/// newer connection replaces one. Ups of different connections can reach the node out
/// of order (each waits for room in the event queue on its own), so arrival order says
/// nothing; a stale connection that comes up late is closed instead.
pub fn supersedes(new: &Channel, current: Option<&Channel>) -> bool {
    current.is_none_or(|current| new.epoch() > current.epoch())
}

/// A handle to one live connection (one epoch). Cheap to clone.
#[derive(Clone)]
pub struct Channel {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    peer: NodeId,
    peer_role: Role,
    epoch: Epoch,
    peer_addr: SocketAddr,
    pub(crate) config: Arc<ChannelConfig>,
    /// Largest frame body we send here: our own limit or the peer's announced one,
    /// whichever is smaller.
    send_frame_len_max: usize,
    stream: TcpStream,
    local_addr: SocketAddr,
    state: Mutex<State>,
    heard: Mutex<Heard>,
    /// Capacity 1: a pending wake-up already covers everything queued since.
    wake_writer: Sender<()>,
    /// Never sent on: closing it is the close signal every task of the connection waits on.
    closing: Sender<()>,
}

/// What the channel knows about the peer's liveness. One lock for all of it, so the
/// silence check never sees a delivery's end without its new clock.
struct Heard {
    /// The hard rule's clock: the last bytes that arrived from the peer, or the end of a
    /// delivery that waited on the node's full event queue.
    last: Instant,
    /// True while the reader waits for room in the node's event queue: the node, not the
    /// peer, is slow then (its bytes wait in the socket), so silence is not held against it.
    delivering: bool,
    /// Fed once per read that completed a frame, timestamped when the bytes arrived, so
    /// its gaps are the peer's, not the node's.
    detector: PhiAccrual,
}

/// How recently a peer was heard from, and how suspicious its silence is.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Liveness {
    /// Since the last bytes heard (the channel closes at `dead_after()`).
    pub last_heard_ago: Duration,
    /// Phi-accrual suspicion level (see `detector`): about 0.3 at the usual gap between
    /// frames, 1 = 10% chance the peer is just slow, 3 = 0.1%, and growing while silent.
    pub phi: f64,
}

pub(crate) struct State {
    pub(crate) outbound: Outbound<Vec<u8>>,
    /// Encoded frames the writer has not taken yet.
    pub(crate) outgoing: VecDeque<Vec<u8>>,
    /// Bytes of every frame queued and not yet written: waiting requests, `outgoing`, and
    /// the batch the writer is writing. Bounded by `send_queue_bytes_max`.
    queued_bytes: usize,
    queued_held: Held,
    pub(crate) close_reason: Option<String>,
}

impl State {
    fn add_queued(&mut self, bytes: usize) {
        self.queued_bytes += bytes;
        self.queued_held.set(self.queued_bytes);
    }

    fn has_room(&self, bytes: usize, max: usize) -> bool {
        self.queued_bytes + bytes <= max
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("peer", &self.shared.peer)
            .field("peer_role", &self.shared.peer_role)
            .field("epoch", &self.shared.epoch)
            .field("peer_addr", &self.shared.peer_addr)
            .finish()
    }
}

/// What a channel is made of; the connection keeps the other ends.
pub(crate) struct Parts {
    pub(crate) peer: NodeId,
    /// Largest frame body to send (`handshake::send_frame_len_max`).
    pub(crate) send_frame_len_max: usize,
    pub(crate) peer_role: Role,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) local_addr: SocketAddr,
    pub(crate) stream: TcpStream,
    pub(crate) wake_writer: Sender<()>,
    pub(crate) closing: Sender<()>,
}

/// Floor of the phi detector's standard deviation, as a fraction of the heartbeat
/// interval: heartbeats a little late (or a burst of requests followed by heartbeats
/// alone) do not look like a failing peer.
const PHI_MIN_STD_DEV_PER_HEARTBEAT: f64 = 0.5;

impl Channel {
    /// A new connection's channel, under a fresh epoch; the handshake counts as heard.
    pub(crate) fn new(parts: Parts, config: Arc<ChannelConfig>) -> Channel {
        let now = Instant::now();
        // Until a gap is measured the detector expects one frame per heartbeat interval.
        let mut detector = PhiAccrual::new(
            config.heartbeat_interval,
            config
                .heartbeat_interval
                .mul_f64(PHI_MIN_STD_DEV_PER_HEARTBEAT),
        );
        detector.heartbeat(now);
        let state = State {
            outbound: Outbound::new(
                config.in_flight_max,
                config.send_queue_max,
                config.request_timeout,
            ),
            outgoing: VecDeque::new(),
            queued_bytes: 0,
            queued_held: Held::new(&config.memory),
            close_reason: None,
        };
        Channel {
            shared: Arc::new(Shared {
                peer: parts.peer,
                peer_role: parts.peer_role,
                epoch: next_epoch(),
                peer_addr: parts.peer_addr,
                send_frame_len_max: parts.send_frame_len_max,
                config,
                stream: parts.stream,
                local_addr: parts.local_addr,
                state: Mutex::new(state),
                heard: Mutex::new(Heard {
                    last: now,
                    delivering: false,
                    detector,
                }),
                wake_writer: parts.wake_writer,
                closing: parts.closing,
            }),
        }
    }

    pub fn peer(&self) -> NodeId {
        self.shared.peer
    }

    pub fn peer_role(&self) -> Role {
        self.shared.peer_role
    }

    pub fn epoch(&self) -> Epoch {
        self.shared.epoch
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.shared.peer_addr
    }

    /// Our end of the connection (with `peer_addr`, names the TCP connection).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Largest frame body this channel sends: the smaller of our `max_frame_len` and the
    /// one the peer announced; a larger message gets `SendError::TooLarge`.
    pub fn send_frame_len_max(&self) -> usize {
        self.shared.send_frame_len_max
    }

    /// When bytes last arrived from the peer.
    pub fn last_heard(&self) -> Instant {
        lock(&self.shared.heard).last
    }

    /// The peer's liveness now: time since last heard and the phi suspicion level.
    pub fn liveness(&self) -> Liveness {
        let now = Instant::now();
        let heard = lock(&self.shared.heard);
        Liveness {
            last_heard_ago: now.saturating_duration_since(heard.last),
            phi: heard.detector.phi(now),
        }
    }

    /// Non-blocking: queues the request (sent once an in-flight slot is free), returns its id.
    pub fn request(&self, msg: impl Into<Request>) -> Result<RequestId, SendError> {
        let msg = msg.into();
        let shared = &self.shared;
        let mut state = shared.state();
        if state.close_reason.is_some() {
            return Err(SendError::Closed);
        }
        if state.outbound.queued() >= shared.config.send_queue_max {
            return Err(SendError::QueueFull);
        }
        let id = state.outbound.next_id();
        let bytes = match frame::encode(&Frame::Request { id, msg }, shared.send_frame_len_max) {
            Ok(bytes) => bytes,
            Err(error) => {
                drop(state);
                return Err(self.unsendable(error));
            }
        };
        let len = bytes.len();
        if !state.has_room(len, shared.config.send_queue_bytes_max) {
            return Err(SendError::QueueFull);
        }
        let pushed = state.outbound.push(bytes);
        if pushed.is_ok() {
            state.add_queued(len);
        }
        release_ready(&mut state);
        drop(state);
        self.wake_writer();
        pushed
    }

    /// Non-blocking: responses are never held back by the in-flight limit.
    pub fn respond(&self, id: RequestId, msg: impl Into<Response>) -> Result<(), SendError> {
        self.push_frame(&Frame::Response {
            id,
            msg: msg.into(),
        })
    }

    /// Requests sent and awaiting their response.
    pub fn in_flight(&self) -> usize {
        self.shared.state().outbound.in_flight()
    }

    /// Requests waiting for an in-flight slot.
    pub fn queued(&self) -> usize {
        self.shared.state().outbound.queued()
    }

    /// Bytes queued on this channel and not yet written (bounded by `send_queue_bytes_max`).
    pub fn queued_bytes(&self) -> usize {
        self.shared.state().queued_bytes
    }

    /// The caller stopped waiting for request `id`: frees its slot now rather than at its
    /// deadline; a response that still comes is dropped. A request still queued is sent
    /// anyway (skipping it would leave a gap in the ids the peer checks).
    pub fn abandon(&self, id: RequestId) {
        let mut state = self.shared.state();
        if state.outbound.complete(id) {
            release_ready(&mut state);
            drop(state);
            self.wake_writer();
        }
    }

    /// True while request `id` of this connection is queued or in flight: not answered,
    /// not expired, and the channel not closed.
    pub fn is_pending(&self, id: RequestId) -> bool {
        let state = self.shared.state();
        state.close_reason.is_none() && state.outbound.is_pending(id)
    }

    pub fn is_closed(&self) -> bool {
        self.shared.state().close_reason.is_some()
    }

    /// Closes the connection; `Down` follows once. Idempotent.
    pub fn close(&self) {
        self.close_with("closed locally".into());
    }

    /// Closes with `reason` (the first reason given is the one `Down` reports). What is
    /// still queued is dropped: nobody will write it.
    pub(crate) fn close_with(&self, reason: String) {
        let shared = &self.shared;
        {
            let mut state = shared.state();
            if state.close_reason.is_some() {
                return;
            }
            state.close_reason = Some(reason);
            state.outgoing.clear();
            state.outbound.clear_waiting();
            state.queued_bytes = 0;
            state.queued_held.set(0);
        }
        shared.closing.close();
        shared.wake_writer.close();
        // Unblocks a reader waiting for bytes and a writer stuck on a full socket.
        let _ = shared.stream.shutdown(Shutdown::Both);
    }

    pub(crate) fn close_reason(&self) -> String {
        self.shared
            .state()
            .close_reason
            .clone()
            .unwrap_or_else(|| "closed".into())
    }

    /// A control frame or response: bypasses the in-flight limit, bounded by
    /// `send_queue_max` frames and `send_queue_bytes_max` bytes so a peer that stops
    /// reading cannot grow our memory.
    pub(crate) fn push_frame(&self, frame: &Frame) -> Result<(), SendError> {
        let shared = &self.shared;
        let mut state = shared.state();
        if state.close_reason.is_some() {
            return Err(SendError::Closed);
        }
        if state.outgoing.len() >= shared.config.send_queue_max {
            return Err(SendError::QueueFull);
        }
        let bytes = match frame::encode(frame, shared.send_frame_len_max) {
            Ok(bytes) => bytes,
            Err(error) => {
                drop(state);
                return Err(self.unsendable(error));
            }
        };
        if !state.has_room(bytes.len(), shared.config.send_queue_bytes_max) {
            return Err(SendError::QueueFull);
        }
        state.add_queued(bytes.len());
        state.outgoing.push_back(bytes);
        drop(state);
        self.wake_writer();
        Ok(())
    }

    /// Queues a heartbeat unless something is queued already (anything the peer receives
    /// counts as a heartbeat). Not held to the byte bound: at most one is queued, and a
    /// full queue is never empty. `false` once closed.
    pub(crate) fn push_heartbeat(&self, heartbeat: &[u8]) -> bool {
        let mut state = self.shared.state();
        if state.close_reason.is_some() {
            return false;
        }
        if state.outgoing.is_empty() {
            state.add_queued(heartbeat.len());
            state.outgoing.push_back(heartbeat.to_vec());
        }
        drop(state);
        self.wake_writer();
        true
    }

    /// The writer wrote `bytes` of what it took from the queue: room for more.
    pub(crate) fn written(&self, bytes: usize) {
        let mut state = self.shared.state();
        // A close in between already emptied the account.
        state.queued_bytes = state.queued_bytes.saturating_sub(bytes);
        let queued = state.queued_bytes;
        state.queued_held.set(queued);
    }

    /// A message over the frame limit is the caller's to handle (`TooLarge`; the channel
    /// stays up). One we cannot encode at all is a bug of this node: say so loudly and
    /// close, so the caller sees `Closed` and the node sees `Down`.
    fn unsendable(&self, error: FrameError) -> SendError {
        if let FrameError::TooLarge { len, max } = error {
            return SendError::TooLarge { len, max };
        }
        error!(peer = %self.peer(), addr = %self.peer_addr(), %error, "cannot send frame; closing channel");
        self.close_with(format!("cannot send frame: {error}"));
        SendError::Closed
    }

    pub(crate) fn wake_writer(&self) {
        // Full means a wake-up is already pending; closed means the writer is gone.
        let _ = self.shared.wake_writer.try_send(());
    }

    /// Bytes arrived from the peer at `at`; `frame_completed` if they finished a frame.
    pub(crate) fn heard(&self, at: Instant, frame_completed: bool) {
        let mut heard = lock(&self.shared.heard);
        heard.last = heard.last.max(at);
        if frame_completed {
            heard.detector.heartbeat(at);
        }
    }

    /// The reader (or the Up) waits on the node's full event queue from now.
    pub(crate) fn delivery_started(&self) {
        lock(&self.shared.heard).delivering = true;
    }

    /// That wait ended: the peer's silence is counted again, from now.
    pub(crate) fn delivery_ended(&self) {
        let mut heard = lock(&self.shared.heard);
        heard.delivering = false;
        heard.last = heard.last.max(Instant::now());
    }

    /// How long the peer has been silent, unless a delivery is under way (then the node,
    /// not the peer, is the slow one).
    pub(crate) fn silence(&self, now: Instant) -> Option<Duration> {
        let heard = lock(&self.shared.heard);
        (!heard.delivering).then(|| now.saturating_duration_since(heard.last))
    }
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// Moves requests that now have an in-flight slot onto the wire queue.
pub(crate) fn release_ready(state: &mut State) {
    let now = Instant::now();
    while let Some((_, bytes)) = state.outbound.pop_ready(now) {
        state.outgoing.push_back(bytes);
    }
}
