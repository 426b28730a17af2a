//! The single socket channel to a peer: handshake, a writer task that coalesces queued
//! frames into one write, a reader that checks the request sequence and feeds the node's
//! event queue, heartbeats with a read timeout, and the accept and reconnect loops.
//!
//! One connection = one `Epoch`. A node sees `Up`, then messages, then exactly one `Down`
//! per epoch, so it can tell a stale event from a current one after a reconnect.

use std::collections::VecDeque;
use std::fmt;
use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::{Either, select};
use futures::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, error, info, warn};

use crate::detector::PhiAccrual;
use crate::frame::{self, DEFAULT_MAX_FRAME_LEN, FrameError};
use crate::handshake;
use crate::mesh::{MeshHandle, MeshLink};
use crate::msg::{Frame, Hello, NodeId, Request, RequestId, Response, Role};
pub use crate::pipeline::SendError;
use crate::pipeline::{Inbound, Outbound};
use crate::runtime::{self, Receiver, Sender, TcpListener, TcpStream};

pub const DEFAULT_IN_FLIGHT_MAX: usize = 1024;
pub const DEFAULT_SEND_QUEUE_MAX: usize = 65_536;
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_DEAD_AFTER_HEARTBEATS: u32 = 10;
pub const DEFAULT_RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
pub const DEFAULT_RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Generous: a request unanswered this long is lost (the peer dropped it or is stuck), and
/// every protocol request is retried by its sender's core anyway.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest `request_timeout` a config may set (a deadline must stay representable).
pub const REQUEST_TIMEOUT_MAX: Duration = Duration::from_secs(24 * 60 * 60);
/// Connections one listener serves at once; past that new ones are closed at accept.
pub const CONNECTIONS_MAX: usize = 4096;
/// Smallest `max_frame_len` a config may set: a `Hello` must always fit.
pub const MIN_MAX_FRAME_LEN: usize = 1024;
/// Bytes asked of the socket per read.
const READ_CHUNK_LEN: usize = 64 * 1024;
/// Bytes asked per read during the handshake (a Hello is small).
const HANDSHAKE_CHUNK_LEN: usize = 1024;
/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop cannot spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Reconnect delays are the backoff times a random factor in this range (jitter keeps
/// many nodes from redialling in lockstep).
const JITTER_MIN: f64 = 0.75;
const JITTER_MAX: f64 = 1.25;
/// Floor of the phi detector's standard deviation, as a fraction of the heartbeat
/// interval: heartbeats a little late (or a burst of requests followed by heartbeats
/// alone) do not look like a failing peer.
const PHI_MIN_STD_DEV_PER_HEARTBEAT: f64 = 0.5;

/// Settings of every channel a node opens or accepts.
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    pub node_id: NodeId,
    pub role: Role,
    pub cluster_id: String,
    /// Largest frame body sent or accepted, in bytes.
    pub max_frame_len: usize,
    /// Requests awaiting a response, per channel.
    pub in_flight_max: usize,
    /// Requests waiting for an in-flight slot, per channel (also bounds queued responses).
    pub send_queue_max: usize,
    pub heartbeat_interval: Duration,
    /// A peer silent this many heartbeat intervals is declared dead: channel closed, Down.
    pub dead_after_heartbeats: u32,
    pub reconnect_backoff_min: Duration,
    pub reconnect_backoff_max: Duration,
    pub handshake_timeout: Duration,
    /// A request in flight this long without a response expires: its slot is freed and a
    /// late response is dropped. Checked once per heartbeat interval.
    pub request_timeout: Duration,
}

impl ChannelConfig {
    pub fn new(node_id: NodeId, role: Role, cluster_id: impl Into<String>) -> Self {
        ChannelConfig {
            node_id,
            role,
            cluster_id: cluster_id.into(),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            in_flight_max: DEFAULT_IN_FLIGHT_MAX,
            send_queue_max: DEFAULT_SEND_QUEUE_MAX,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            dead_after_heartbeats: DEFAULT_DEAD_AFTER_HEARTBEATS,
            reconnect_backoff_min: DEFAULT_RECONNECT_BACKOFF_MIN,
            reconnect_backoff_max: DEFAULT_RECONNECT_BACKOFF_MAX,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Checks the values a user may have set (call it on configs built from flags).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_frame_len < MIN_MAX_FRAME_LEN || self.max_frame_len > u32::MAX as usize {
            return Err(format!(
                "max_frame_len {} outside {MIN_MAX_FRAME_LEN}..={}",
                self.max_frame_len,
                u32::MAX
            ));
        }
        if self.in_flight_max == 0 || self.send_queue_max == 0 {
            return Err("in_flight_max and send_queue_max must be at least 1".into());
        }
        if self.heartbeat_interval.is_zero() || self.dead_after_heartbeats == 0 {
            return Err("heartbeat_interval and dead_after_heartbeats must be non-zero".into());
        }
        if self.reconnect_backoff_min.is_zero()
            || self.reconnect_backoff_min > self.reconnect_backoff_max
        {
            return Err("reconnect backoff must satisfy 0 < min <= max".into());
        }
        if self.handshake_timeout.is_zero() {
            return Err("handshake_timeout must be non-zero".into());
        }
        // Expiry runs on the heartbeat tick, so a shorter timeout could not be honoured.
        if self.request_timeout < self.heartbeat_interval
            || self.request_timeout > REQUEST_TIMEOUT_MAX
        {
            return Err(format!(
                "request_timeout {:?} outside heartbeat_interval ({:?})..={REQUEST_TIMEOUT_MAX:?}",
                self.request_timeout, self.heartbeat_interval
            ));
        }
        Ok(())
    }

    /// Silence after which a peer is declared dead.
    pub fn dead_after(&self) -> Duration {
        self.heartbeat_interval * self.dead_after_heartbeats
    }
}

/// Unique per process for every connection ever made: tells a stale event from a current one.
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

/// What channels tell their node, in one queue per node.
#[derive(Debug)]
pub enum ChannelEvent {
    /// Handshake done; send on it until `Down`.
    Up { channel: Channel },
    /// Delivered in sequence order; answer with `Channel::respond(id, ..)`.
    Request {
        peer: NodeId,
        epoch: Epoch,
        id: RequestId,
        msg: Request,
    },
    Response {
        peer: NodeId,
        epoch: Epoch,
        id: RequestId,
        msg: Response,
    },
    /// Closed, reset, broken stream, or peer silent `dead_after_heartbeats` intervals.
    Down {
        peer: NodeId,
        epoch: Epoch,
        reason: String,
    },
}

pub type EventSender = runtime::Sender<ChannelEvent>;
pub type EventReceiver = runtime::Receiver<ChannelEvent>;

/// A node's single bounded update queue: a full queue stalls the channels' readers
/// (backpressure), never grows.
pub fn event_queue(capacity: usize) -> (EventSender, EventReceiver) {
    runtime::bounded(capacity.max(1))
}

/// A handle to one live connection (one epoch). Cheap to clone.
#[derive(Clone)]
pub struct Channel {
    shared: Arc<Shared>,
}

struct Shared {
    peer: NodeId,
    peer_role: Role,
    epoch: Epoch,
    peer_addr: SocketAddr,
    config: Arc<ChannelConfig>,
    stream: TcpStream,
    local_addr: SocketAddr,
    state: Mutex<State>,
    heard: Mutex<Heard>,
    /// True while the reader waits for room in the node's event queue: the node, not
    /// the peer, is slow then, so silence is not held against the peer.
    delivering: AtomicBool,
    /// Capacity 1: a pending wake-up already covers everything queued since.
    wake_writer: Sender<()>,
    /// Never sent on: closing it is the close signal every task of the connection waits on.
    closing: Sender<()>,
}

/// What the channel knows about the peer's liveness.
struct Heard {
    /// The hard rule's clock: the last frame heard, or the end of a delivery that waited
    /// on the node's full event queue (the node's slowness is not held against the peer).
    last: Instant,
    /// Fed at each frame's arrival only, so its gaps are the peer's, not the node's.
    detector: PhiAccrual,
}

/// How recently a peer was heard from, and how suspicious its silence is.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Liveness {
    /// Since the last frame heard (the channel closes at `dead_after()`).
    pub last_heard_ago: Duration,
    /// Phi-accrual suspicion level (see `detector`): about 0.3 at the usual gap between
    /// frames, 1 = 10% chance the peer is just slow, 3 = 0.1%, and growing while silent.
    pub phi: f64,
}

struct State {
    outbound: Outbound<Vec<u8>>,
    /// Encoded frames the writer has not taken yet.
    outgoing: VecDeque<Vec<u8>>,
    close_reason: Option<String>,
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

impl Channel {
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

    /// When the last frame (of any kind) arrived from the peer.
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
        let bytes = match frame::encode(&Frame::Request { id, msg }, shared.config.max_frame_len) {
            Ok(bytes) => bytes,
            Err(error) => {
                drop(state);
                return Err(self.unsendable(error));
            }
        };
        let pushed = state.outbound.push(bytes);
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

    /// Closes with `reason` (the first reason given is the one `Down` reports).
    fn close_with(&self, reason: String) {
        let shared = &self.shared;
        {
            let mut state = shared.state();
            if state.close_reason.is_some() {
                return;
            }
            state.close_reason = Some(reason);
            state.outgoing.clear();
        }
        shared.closing.close();
        shared.wake_writer.close();
        // Unblocks a reader waiting for bytes and a writer stuck on a full socket.
        let _ = shared.stream.shutdown(Shutdown::Both);
    }

    fn close_reason(&self) -> String {
        self.shared
            .state()
            .close_reason
            .clone()
            .unwrap_or_else(|| "closed".into())
    }

    /// A control frame or response: bypasses the in-flight limit, bounded by
    /// `send_queue_max` so a peer that stops reading cannot grow our memory.
    fn push_frame(&self, frame: &Frame) -> Result<(), SendError> {
        let shared = &self.shared;
        let mut state = shared.state();
        if state.close_reason.is_some() {
            return Err(SendError::Closed);
        }
        if state.outgoing.len() >= shared.config.send_queue_max {
            return Err(SendError::QueueFull);
        }
        let bytes = match frame::encode(frame, shared.config.max_frame_len) {
            Ok(bytes) => bytes,
            Err(error) => {
                drop(state);
                return Err(self.unsendable(error));
            }
        };
        state.outgoing.push_back(bytes);
        drop(state);
        self.wake_writer();
        Ok(())
    }

    /// A message we cannot encode is a bug of this node (limits should stop it earlier):
    /// say so loudly and close, so the caller sees `Closed` and the node sees `Down`.
    fn unsendable(&self, error: FrameError) -> SendError {
        error!(peer = %self.peer(), addr = %self.peer_addr(), %error, "cannot send frame; closing channel");
        self.close_with(format!("cannot send frame: {error}"));
        SendError::Closed
    }

    fn wake_writer(&self) {
        // Full means a wake-up is already pending; closed means the writer is gone.
        let _ = self.shared.wake_writer.try_send(());
    }

    /// A frame arrived from the peer.
    fn heard(&self) {
        let now = Instant::now();
        let mut heard = lock(&self.shared.heard);
        heard.last = now;
        heard.detector.heartbeat(now);
    }

    /// A delivery to the node's event queue ended: restarts the hard rule's clock only.
    fn delivered(&self) {
        lock(&self.shared.heard).last = Instant::now();
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// Locks, ignoring poisoning: the guarded data is updated in single steps that a panic
/// elsewhere cannot leave half done.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Moves requests that now have an in-flight slot onto the wire queue.
fn release_ready(state: &mut State) {
    let now = Instant::now();
    while let Some((_, bytes)) = state.outbound.pop_ready(now) {
        state.outgoing.push_back(bytes);
    }
}

/// A connection whose handshake succeeded, with any bytes read past the peer's `Hello`.
struct Handshaken {
    stream: TcpStream,
    local_addr: SocketAddr,
    peer_addr: SocketAddr,
    peer: Hello,
    leftover: Vec<u8>,
}

/// Why a handshake failed.
#[derive(thiserror::Error, Debug)]
enum HandshakeError {
    #[error("{0}")]
    Io(String),
    #[error("protocol error: {0}")]
    Frame(FrameError),
    /// We refused the peer's Hello (and told it so with a Reject).
    #[error("refused peer: {0}")]
    Refused(String),
    /// The peer refused ours.
    #[error("rejected by peer: {0}")]
    Rejected(String),
}

async fn read_frame(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    max_frame_len: usize,
) -> Result<Frame, HandshakeError> {
    loop {
        match frame::decode(buf, max_frame_len) {
            Ok(Some((frame, used))) => {
                buf.drain(..used);
                return Ok(frame);
            }
            Ok(None) => {}
            Err(error) => return Err(HandshakeError::Frame(error)),
        }
        let mut chunk = [0u8; HANDSHAKE_CHUNK_LEN];
        match stream.read(&mut chunk).await {
            Ok(0) => {
                return Err(HandshakeError::Io(
                    "connection closed during handshake".into(),
                ));
            }
            Ok(read) => buf.extend_from_slice(&chunk[..read]),
            Err(error) => return Err(HandshakeError::Io(format!("read failed: {error}"))),
        }
    }
}

async fn write_frame(
    stream: &mut TcpStream,
    frame: &Frame,
    max_frame_len: usize,
) -> Result<(), HandshakeError> {
    let bytes = frame::encode(frame, max_frame_len).map_err(HandshakeError::Frame)?;
    stream
        .write_all(&bytes)
        .await
        .map_err(|error| HandshakeError::Io(format!("write failed: {error}")))?;
    stream
        .flush()
        .await
        .map_err(|error| HandshakeError::Io(format!("flush failed: {error}")))
}

/// Sends `Reject{reason}` (best effort: the peer may be gone) and reports the refusal.
async fn refuse(stream: &mut TcpStream, reason: String, max_frame_len: usize) -> HandshakeError {
    let _ = write_frame(
        stream,
        &Frame::Reject {
            reason: reason.clone(),
        },
        max_frame_len,
    )
    .await;
    let _ = stream.shutdown(Shutdown::Both);
    HandshakeError::Refused(reason)
}

/// Acceptor side: wait for the peer's Hello, check it, answer with ours or a Reject.
async fn accept_handshake(
    mut stream: TcpStream,
    peer_addr: SocketAddr,
    config: &ChannelConfig,
    accept_roles: &[Role],
) -> Result<Handshaken, HandshakeError> {
    let mut buf = Vec::new();
    let peer = match read_frame(&mut stream, &mut buf, config.max_frame_len).await? {
        Frame::Hello(hello) => hello,
        other => {
            let reason = format!("expected Hello, got {}", frame_kind(&other));
            return Err(refuse(&mut stream, reason, config.max_frame_len).await);
        }
    };
    if let Err(reason) = handshake::check(&peer, &config.cluster_id, accept_roles, None) {
        return Err(refuse(&mut stream, reason, config.max_frame_len).await);
    }
    if is_mesh_connection(config, &peer) && peer.node_id == config.node_id {
        let reason = format!("node id {} is our own", peer.node_id);
        return Err(refuse(&mut stream, reason, config.max_frame_len).await);
    }
    let ours = handshake::hello(config.node_id, config.role, &config.cluster_id);
    write_frame(&mut stream, &Frame::Hello(ours), config.max_frame_len).await?;
    Ok(Handshaken {
        local_addr: local_addr_of(&stream)?,
        stream,
        peer_addr,
        peer,
        leftover: buf,
    })
}

/// Dialler side: connect, send our Hello, check the answer.
async fn dial_handshake(
    addr: SocketAddr,
    accept_roles: &[Role],
    expected_node: Option<NodeId>,
    config: &ChannelConfig,
) -> Result<Handshaken, HandshakeError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|error| HandshakeError::Io(format!("connect failed: {error}")))?;
    if let Err(error) = stream.set_nodelay(true) {
        warn!(%addr, %error, "cannot set TCP_NODELAY");
    }
    let ours = handshake::hello(config.node_id, config.role, &config.cluster_id);
    write_frame(&mut stream, &Frame::Hello(ours), config.max_frame_len).await?;
    let mut buf = Vec::new();
    let peer = match read_frame(&mut stream, &mut buf, config.max_frame_len).await? {
        Frame::Hello(hello) => hello,
        Frame::Reject { reason } => return Err(HandshakeError::Rejected(reason)),
        other => {
            let reason = format!("expected Hello, got {}", frame_kind(&other));
            return Err(refuse(&mut stream, reason, config.max_frame_len).await);
        }
    };
    if let Err(reason) = handshake::check(&peer, &config.cluster_id, accept_roles, expected_node) {
        return Err(refuse(&mut stream, reason, config.max_frame_len).await);
    }
    Ok(Handshaken {
        local_addr: local_addr_of(&stream)?,
        stream,
        peer_addr: addr,
        peer,
        leftover: buf,
    })
}

fn local_addr_of(stream: &TcpStream) -> Result<SocketAddr, HandshakeError> {
    stream
        .local_addr()
        .map_err(|error| HandshakeError::Io(format!("no local address: {error}")))
}

fn frame_kind(frame: &Frame) -> &'static str {
    match frame {
        Frame::Hello(_) => "Hello",
        Frame::Reject { .. } => "Reject",
        Frame::Heartbeat => "Heartbeat",
        Frame::Request { .. } => "Request",
        Frame::Response { .. } => "Response",
        Frame::SequenceError { .. } => "SequenceError",
    }
}

/// Runs one handshaken connection to its end: emits `Up`, runs the writer and heartbeat
/// tasks and the reader, then emits `Down` once. Returns the close reason. `stop`
/// closing (its owner dropped or stopped) closes the connection.
async fn run_connection(
    conn: Handshaken,
    config: Arc<ChannelConfig>,
    events: EventSender,
    stop: Receiver<()>,
) -> String {
    let Handshaken {
        stream,
        local_addr,
        peer_addr,
        peer,
        leftover,
    } = conn;
    let now = Instant::now();
    // The handshake counts as the first arrival; until a gap is measured the detector
    // expects one frame per heartbeat interval.
    let mut detector = PhiAccrual::new(
        config.heartbeat_interval,
        config
            .heartbeat_interval
            .mul_f64(PHI_MIN_STD_DEV_PER_HEARTBEAT),
    );
    detector.heartbeat(now);
    let (wake_writer, wake_rx) = runtime::bounded(1);
    let (closing, closing_rx) = runtime::bounded(1);
    let channel = Channel {
        shared: Arc::new(Shared {
            peer: peer.node_id,
            peer_role: peer.role,
            epoch: next_epoch(),
            peer_addr,
            config: config.clone(),
            stream: stream.clone(),
            local_addr,
            state: Mutex::new(State {
                outbound: Outbound::new(
                    config.in_flight_max,
                    config.send_queue_max,
                    config.request_timeout,
                ),
                outgoing: VecDeque::new(),
                close_reason: None,
            }),
            heard: Mutex::new(Heard {
                last: now,
                detector,
            }),
            delivering: AtomicBool::new(false),
            wake_writer,
            closing,
        }),
    };
    let (peer_id, epoch) = (channel.peer(), channel.epoch());
    info!(peer = %peer_id, role = ?peer.role, addr = %peer_addr, %epoch, "channel up");
    if events
        .send(ChannelEvent::Up {
            channel: channel.clone(),
        })
        .await
        .is_err()
    {
        channel.close_with("node event queue closed".into());
        return channel.close_reason();
    }
    runtime::spawn(write_loop(channel.clone(), stream.clone(), wake_rx));
    runtime::spawn(heartbeat_loop(channel.clone(), closing_rx.clone()));

    let reader = pin!(read_loop(&channel, &events, stream, leftover));
    let closing_recv = pin!(closing_rx.recv());
    let stop_recv = pin!(stop.recv());
    let closed = select(closing_recv, stop_recv);
    let reason = match select(reader, closed).await {
        Either::Left((reason, _)) => reason,
        // Either `close()` was called (its reason is recorded) or our owner stopped.
        Either::Right(_) => "stopped by its owner".into(),
    };
    channel.close_with(reason);
    let reason = channel.close_reason();
    info!(peer = %peer_id, addr = %peer_addr, %epoch, %reason, "channel down");
    let _ = events
        .send(ChannelEvent::Down {
            peer: peer_id,
            epoch,
            reason: reason.clone(),
        })
        .await;
    reason
}

/// Drains the outgoing queue: everything queued goes out in one write and one flush,
/// so a burst of small frames costs few syscalls.
async fn write_loop(channel: Channel, mut stream: TcpStream, wake: Receiver<()>) {
    let mut buf = Vec::new();
    loop {
        {
            let mut state = channel.shared.state();
            if state.close_reason.is_some() {
                return;
            }
            for bytes in state.outgoing.drain(..) {
                buf.extend_from_slice(&bytes);
            }
        }
        if buf.is_empty() {
            if wake.recv().await.is_err() {
                return;
            }
            continue;
        }
        let written = match stream.write_all(&buf).await {
            Ok(()) => stream.flush().await,
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            channel.close_with(format!("write failed: {error}"));
            return;
        }
        buf.clear();
        // Do not keep a large frame's buffer for the connection's lifetime.
        buf.shrink_to(READ_CHUNK_LEN);
    }
}

/// Sends a heartbeat every interval and closes the channel when the peer has been
/// silent for `dead_after_heartbeats` intervals.
async fn heartbeat_loop(channel: Channel, closing: Receiver<()>) {
    let config = channel.shared.config.clone();
    let heartbeat = match frame::encode(&Frame::Heartbeat, config.max_frame_len) {
        Ok(bytes) => bytes,
        Err(error) => {
            channel.close_with(format!("cannot encode heartbeat: {error}"));
            return;
        }
    };
    let dead_after = config.dead_after();
    loop {
        if runtime::timeout(config.heartbeat_interval, closing.recv())
            .await
            .is_some()
        {
            return;
        }
        let silent = channel.last_heard().elapsed();
        if silent >= dead_after && !channel.shared.delivering.load(Ordering::Acquire) {
            warn!(peer = %channel.peer(), addr = %channel.peer_addr(), epoch = %channel.epoch(),
                ?silent, "peer silent; closing channel");
            channel.close_with(format!(
                "peer silent for {silent:?} (over {} heartbeats of {:?})",
                config.dead_after_heartbeats, config.heartbeat_interval
            ));
            return;
        }
        let mut state = channel.shared.state();
        if state.close_reason.is_some() {
            return;
        }
        let expired = state.outbound.expire(Instant::now());
        if let (Some(first), Some(last)) = (expired.first(), expired.last()) {
            warn!(peer = %channel.peer(), addr = %channel.peer_addr(), epoch = %channel.epoch(),
                count = expired.len(), first = first.0, last = last.0,
                timeout = ?config.request_timeout, "requests unanswered past their deadline; slots freed");
            release_ready(&mut state);
        }
        // Anything already queued counts as a heartbeat to the peer.
        if state.outgoing.is_empty() {
            state.outgoing.push_back(heartbeat.clone());
        }
        drop(state);
        channel.wake_writer();
    }
}

/// Reads and handles frames until the connection breaks; returns why.
async fn read_loop(
    channel: &Channel,
    events: &EventSender,
    mut stream: TcpStream,
    mut buf: Vec<u8>,
) -> String {
    let max_frame_len = channel.shared.config.max_frame_len;
    let mut inbound = Inbound::new();
    // Allocated and zeroed once; `buf` holds at most one partial frame past it.
    let mut chunk = vec![0u8; READ_CHUNK_LEN];
    loop {
        let mut start = 0;
        loop {
            match frame::decode(&buf[start..], max_frame_len) {
                Ok(Some((frame, used))) => {
                    start += used;
                    channel.heard();
                    if let Err(reason) = handle_frame(channel, events, &mut inbound, frame).await {
                        return reason;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    warn!(peer = %channel.peer(), addr = %channel.peer_addr(), epoch = %channel.epoch(),
                        %error, "bad frame from peer; closing its connection");
                    return format!("protocol error: {error}");
                }
            }
        }
        buf.drain(..start);
        match stream.read(&mut chunk).await {
            Ok(0) => return "connection closed by peer".into(),
            Ok(read) => buf.extend_from_slice(&chunk[..read]),
            Err(error) => return format!("read failed: {error}"),
        }
    }
}

/// Handles one frame after the handshake; `Err` closes the connection with that reason.
async fn handle_frame(
    channel: &Channel,
    events: &EventSender,
    inbound: &mut Inbound,
    frame: Frame,
) -> Result<(), String> {
    let (peer, epoch, addr) = (channel.peer(), channel.epoch(), channel.peer_addr());
    let event = match frame {
        Frame::Heartbeat => return Ok(()),
        Frame::Request { id, msg } => match inbound.accept(id) {
            Ok(()) => ChannelEvent::Request {
                peer,
                epoch,
                id,
                msg,
            },
            Err(gap) => {
                warn!(%peer, %addr, %epoch, id = gap.id.0, expected = gap.expected.0,
                    "request out of sequence; not delivered");
                let refused = Frame::SequenceError {
                    id: gap.id,
                    expected: gap.expected,
                };
                return match channel.push_frame(&refused) {
                    Ok(()) => Ok(()),
                    Err(error) => Err(format!("cannot answer out-of-sequence request: {error}")),
                };
            }
        },
        Frame::Response { id, msg } => {
            let known = {
                let mut state = channel.shared.state();
                let known = state.outbound.complete(id);
                release_ready(&mut state);
                known
            };
            if !known {
                warn!(%peer, %addr, %epoch, id = id.0, "response for a request not in flight (bogus, duplicate, or expired); dropped");
                return Ok(());
            }
            channel.wake_writer();
            ChannelEvent::Response {
                peer,
                epoch,
                id,
                msg,
            }
        }
        Frame::SequenceError { id, expected } => {
            error!(%peer, %addr, %epoch, id = id.0, expected = expected.0,
                "peer refused our request as out of sequence; closing the broken stream");
            return Err(format!(
                "peer reported sequence error: request {} but expected {}",
                id.0, expected.0
            ));
        }
        Frame::Reject { reason } => {
            warn!(%peer, %addr, %epoch, %reason, "peer rejected the connection");
            return Err(format!("rejected by peer: {reason}"));
        }
        Frame::Hello(_) => {
            warn!(%peer, %addr, %epoch, "Hello after the handshake; closing");
            return Err("protocol error: Hello after the handshake".into());
        }
    };
    channel.shared.delivering.store(true, Ordering::Release);
    let delivered = events.send(event).await;
    channel.delivered();
    channel.shared.delivering.store(false, Ordering::Release);
    delivered.map_err(|_| "node event queue closed".to_string())
}

/// Configs are validated where they are built (from flags); this catches the rest loudly.
fn warn_if_invalid(config: &ChannelConfig) {
    if let Err(problem) = config.validate() {
        error!(%problem, "invalid channel config; channels may misbehave");
    }
}

/// A bound listening socket, not yet serving.
pub struct Listener {
    inner: TcpListener,
    local_addr: SocketAddr,
}

impl Listener {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Listener> {
        let inner = TcpListener::bind(addr).await?;
        let local_addr = inner.local_addr()?;
        Ok(Listener { inner, local_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Spawns the accept loop: each connection does the handshake (checks magic, version,
    /// cluster, role in `accept_roles`; a mismatch gets a Reject frame and a log line) and emits Up.
    ///
    /// Between participants the mesh rule holds here too: when we are a participant, a
    /// participant with a smaller node id is closed right after the handshake (the
    /// larger id dials; see `mesh`).
    pub fn serve(
        self,
        config: Arc<ChannelConfig>,
        accept_roles: Vec<Role>,
        events: EventSender,
    ) -> ServeHandle {
        self.spawn_accept_loop(config, accept_roles, events, None)
    }

    /// `serve` for a participant in a mesh: accepts `accept_roles` plus `Participant`,
    /// and a connection from a smaller participant id makes `mesh` dial that peer back
    /// at once instead of at the end of its reconnect backoff.
    pub fn serve_mesh(
        self,
        config: Arc<ChannelConfig>,
        mut accept_roles: Vec<Role>,
        events: EventSender,
        mesh: &MeshHandle,
    ) -> ServeHandle {
        if !accept_roles.contains(&Role::Participant) {
            accept_roles.push(Role::Participant);
        }
        self.spawn_accept_loop(config, accept_roles, events, Some(mesh.link()))
    }

    fn spawn_accept_loop(
        self,
        config: Arc<ChannelConfig>,
        accept_roles: Vec<Role>,
        events: EventSender,
        mesh: Option<Arc<MeshLink>>,
    ) -> ServeHandle {
        warn_if_invalid(&config);
        let (stop, stop_rx) = runtime::bounded(1);
        // The loop holds a sender too, so dropping the handle detaches rather than stops.
        runtime::spawn(accept_loop(
            self,
            AcceptRules {
                config,
                accept_roles: accept_roles.into(),
                mesh,
            },
            events,
            stop_rx,
            stop.clone(),
        ));
        ServeHandle { stop }
    }
}

/// What an accept loop checks and whom it tells.
struct AcceptRules {
    config: Arc<ChannelConfig>,
    accept_roles: Arc<[Role]>,
    mesh: Option<Arc<MeshLink>>,
}

/// Between two participants (we and the peer), the mesh rule applies.
fn is_mesh_connection(config: &ChannelConfig, peer: &Hello) -> bool {
    config.role == Role::Participant && peer.role == Role::Participant
}

/// ZooKeeper's QuorumCnxManager rule: of the connections between two participants only
/// the one dialled by the larger id survives, so a pair dialling each other at once
/// still ends with exactly one channel.
fn dialled_by_smaller_id(config: &ChannelConfig, peer: &Hello) -> bool {
    is_mesh_connection(config, peer) && peer.node_id < config.node_id
}

/// The running accept loop. Dropping it leaves the loop running (detached);
/// `stop()` ends it and closes every connection it accepted.
#[derive(Debug)]
pub struct ServeHandle {
    stop: Sender<()>,
}

impl ServeHandle {
    pub fn stop(&self) {
        self.stop.close();
    }
}

async fn accept_loop(
    listener: Listener,
    rules: AcceptRules,
    events: EventSender,
    stop: Receiver<()>,
    _keep_open: Sender<()>,
) {
    let rules = Arc::new(rules);
    let live = Arc::new(AtomicUsize::new(0));
    let local = listener.local_addr;
    info!(addr = %local, "listening");
    loop {
        let accepted = match select(pin!(listener.inner.accept()), pin!(stop.recv())).await {
            Either::Left((accepted, _)) => accepted,
            Either::Right(_) => {
                info!(addr = %local, "listener stopped");
                return;
            }
        };
        let (stream, peer_addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(addr = %local, %error, "accept failed");
                runtime::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        if stop.is_closed() {
            // Accepted as we were being stopped (`select` polls `accept` first): a peer
            // that reacts to our stop by redialling must not be served by this listener.
            info!(addr = %local, "listener stopped");
            return;
        }
        if live.load(Ordering::Acquire) >= CONNECTIONS_MAX {
            warn!(addr = %peer_addr, max = CONNECTIONS_MAX, "too many connections; closing new one");
            continue;
        }
        live.fetch_add(1, Ordering::AcqRel);
        let (rules, events, stop, live) =
            (rules.clone(), events.clone(), stop.clone(), live.clone());
        runtime::spawn(async move {
            serve_connection(stream, peer_addr, &rules, events, stop).await;
            live.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer_addr: SocketAddr,
    rules: &AcceptRules,
    events: EventSender,
    stop: Receiver<()>,
) {
    let config = &rules.config;
    if let Err(error) = stream.set_nodelay(true) {
        warn!(addr = %peer_addr, %error, "cannot set TCP_NODELAY");
    }
    let handshake = accept_handshake(stream, peer_addr, config, &rules.accept_roles);
    match runtime::timeout(config.handshake_timeout, handshake).await {
        None => warn!(addr = %peer_addr, "handshake timed out; connection closed"),
        Some(Err(error)) => warn!(addr = %peer_addr, %error, "handshake failed; connection closed"),
        Some(Ok(conn)) if dialled_by_smaller_id(config, &conn.peer) => {
            drop_for_dial_back(conn, rules.mesh.as_deref());
        }
        Some(Ok(conn)) => {
            run_connection(conn, config.clone(), events, stop).await;
        }
    }
}

/// Closes a connection a smaller participant id dialled (the handshake is complete, so
/// the peer knows we are alive) and makes sure our dialler to it tries now.
fn drop_for_dial_back(conn: Handshaken, mesh: Option<&MeshLink>) {
    let (peer, addr) = (conn.peer.node_id, conn.peer_addr);
    let _ = conn.stream.shutdown(Shutdown::Both);
    match mesh.map(|mesh| mesh.dial_back(peer)) {
        Some(true) => {
            info!(%peer, %addr, "dropping connection from smaller id {peer}; dialling back")
        }
        Some(false) => warn!(%peer, %addr,
            "dropping connection from smaller id {peer}; it is not among our mesh peers, so nobody dials back"),
        None => warn!(%peer, %addr,
            "dropping connection from smaller id {peer}; this listener has no mesh, so nobody dials back"),
    }
}

/// Keeps the dial loop running; dropping it stops the loop and closes its connection.
#[derive(Debug)]
pub struct DialHandle {
    _stop: Sender<()>,
}

/// Spawns a task that keeps one connection to `peer` at `addr` up: connect, handshake
/// (the peer's Hello must carry node id `peer`), Up; on close Down, then reconnect with capped
/// exponential backoff and jitter. Stops when the handle is dropped.
pub fn dial(
    addr: SocketAddr,
    peer: NodeId,
    peer_role: Role,
    config: Arc<ChannelConfig>,
    events: EventSender,
) -> DialHandle {
    spawn_dial(addr, peer, peer_role, config, events, None)
}

/// `dial`, with `kick` cutting a reconnect delay short (the mesh's dial-back).
pub(crate) fn spawn_dial(
    addr: SocketAddr,
    peer: NodeId,
    peer_role: Role,
    config: Arc<ChannelConfig>,
    events: EventSender,
    kick: Option<Receiver<()>>,
) -> DialHandle {
    warn_if_invalid(&config);
    let (stop, stop_rx) = runtime::bounded(1);
    let target = DialTarget {
        addr,
        peer,
        peer_role,
    };
    runtime::spawn(dial_loop(target, config, events, stop_rx, kick));
    DialHandle { _stop: stop }
}

struct DialTarget {
    addr: SocketAddr,
    peer: NodeId,
    peer_role: Role,
}

/// Resolves when `kick` receives; never if there is none (or its senders are gone).
async fn kicked(kick: Option<&Receiver<()>>) {
    if let Some(kick) = kick
        && kick.recv().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

async fn dial_loop(
    target: DialTarget,
    config: Arc<ChannelConfig>,
    events: EventSender,
    stop: Receiver<()>,
    kick: Option<Receiver<()>>,
) {
    let DialTarget {
        addr,
        peer,
        peer_role,
    } = target;
    let mut backoff = config.reconnect_backoff_min;
    let peer_roles = [peer_role];
    loop {
        let attempt = runtime::timeout(
            config.handshake_timeout,
            dial_handshake(addr, &peer_roles, Some(peer), &config),
        );
        let attempt = match select(pin!(attempt), pin!(stop.recv())).await {
            Either::Left((attempt, _)) => attempt,
            Either::Right(_) => return,
        };
        match attempt {
            None => warn!(%peer, %addr, "handshake timed out; will retry"),
            Some(Err(HandshakeError::Rejected(reason))) => {
                warn!(%peer, %addr, %reason, "peer rejected our handshake; will retry")
            }
            Some(Err(error)) => warn!(%peer, %addr, %error, "cannot connect; will retry"),
            Some(Ok(conn)) => {
                backoff = config.reconnect_backoff_min;
                // A kick that comes while connected stays pending and makes the next
                // redial immediate: at worst one early attempt, never a lost dial-back.
                run_connection(conn, config.clone(), events.clone(), stop.clone()).await;
            }
        }
        if stop.is_closed() {
            return;
        }
        let delay = backoff.mul_f64(rand::random_range(JITTER_MIN..JITTER_MAX));
        backoff = (backoff * 2).min(config.reconnect_backoff_max);
        debug!(%peer, %addr, ?delay, "reconnecting after delay");
        let (sleep, kicked) = (pin!(runtime::sleep(delay)), pin!(kicked(kick.as_ref())));
        match select(select(sleep, kicked), pin!(stop.recv())).await {
            Either::Left((Either::Left(_), _)) => {}
            Either::Left((Either::Right(_), _)) => {
                debug!(%peer, %addr, "peer dialled us; dialling back now");
                backoff = config.reconnect_backoff_min;
            }
            Either::Right(_) => return,
        }
    }
}

/// For `mesh`: one handshake with a larger participant id, which closes the connection
/// and dials us back (the larger id dials). Returns once the handshake is done (or failed);
/// emits no events. Bounded by `handshake_timeout`.
pub(crate) async fn nudge(
    addr: SocketAddr,
    peer: NodeId,
    config: &ChannelConfig,
) -> Result<(), String> {
    let handshake = dial_handshake(addr, &[Role::Participant], Some(peer), config);
    match runtime::timeout(config.handshake_timeout, handshake).await {
        Some(Ok(conn)) => {
            let _ = conn.stream.shutdown(Shutdown::Both);
            Ok(())
        }
        Some(Err(error)) => Err(error.to_string()),
        None => Err("handshake timed out".into()),
    }
}

/// For `client`: a connection with role `Client` to any coordinator or participant.
pub(crate) async fn connect_client(
    addr: SocketAddr,
    config: Arc<ChannelConfig>,
    stop: Receiver<()>,
) -> Result<(Channel, EventReceiver), crate::client::ClientError> {
    use crate::client::ClientError;
    let conn =
        match dial_handshake(addr, &[Role::Coordinator, Role::Participant], None, &config).await {
            Ok(conn) => conn,
            Err(HandshakeError::Rejected(reason)) => return Err(ClientError::Rejected(reason)),
            Err(HandshakeError::Frame(error)) => return Err(ClientError::Frame(error)),
            Err(error) => return Err(ClientError::Connect(error.to_string())),
        };
    let (events, events_rx) = event_queue(CLIENT_EVENT_QUEUE_LEN);
    runtime::spawn(run_connection(conn, config, events, stop));
    match events_rx.recv().await {
        Ok(ChannelEvent::Up { channel }) => Ok((channel, events_rx)),
        _ => Err(ClientError::Closed),
    }
}

/// Events buffered between a client's connection and its response router.
const CLIENT_EVENT_QUEUE_LEN: usize = 1024;
