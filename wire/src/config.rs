//! The settings of every channel a node opens or accepts, their defaults and limits, and
//! the node's memory gauge that its connections report to.

use std::time::Duration;

use crate::auth::Auth;
use crate::frame::{DEFAULT_MAX_FRAME_LEN, HEADER_LEN};
use crate::memory::MemoryGauge;
use crate::msg::{NodeId, Role};
use crate::registry::Registry;
use crate::traffic::Traffic;

pub const DEFAULT_IN_FLIGHT_MAX: usize = 1024;
pub const DEFAULT_SEND_QUEUE_MAX: usize = 65_536;
/// Two largest frames: one being written while the next is queued.
pub const DEFAULT_SEND_QUEUE_BYTES_MAX: usize = 2 * (DEFAULT_MAX_FRAME_LEN + HEADER_LEN);
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration =
    Duration::from_millis(crate::limits::HEARTBEAT_INTERVAL_MS_DEFAULT);
pub const DEFAULT_DEAD_AFTER_HEARTBEATS: u32 = 10;
pub const DEFAULT_RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
pub const DEFAULT_RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Generous: a request unanswered this long is lost (the peer dropped it or is stuck), and
/// every protocol request is retried by its sender's core anyway.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest `request_timeout` a config may set (a deadline must stay representable).
pub const REQUEST_TIMEOUT_MAX: Duration = Duration::from_secs(24 * 60 * 60);
/// Connections one listener holds before their handshake is done; past that new ones are
/// closed at accept. Each holds at most a `HELLO_LEN_MAX` buffer for `handshake_timeout`.
pub const DEFAULT_HANDSHAKES_MAX: usize = 256;
/// Handshaken client connections one listener serves at once; past that a new client
/// gets a `Reject`.
pub const DEFAULT_CLIENT_CONNECTIONS_MAX: usize = 1024;
/// Handshaken coordinator and participant connections one listener serves at once. A
/// pool of their own: clients, however many, cannot take these slots.
pub const DEFAULT_PEER_CONNECTIONS_MAX: usize = 256;
/// Smallest `max_frame_len` a config may set: a `Hello` must always fit.
pub const MIN_MAX_FRAME_LEN: usize = 1024;
/// Largest `max_frame_len` a config may set (`--frame-bytes-max`): a connection's worst
/// case memory is a few such frames (see README, "Memory per connection").
pub const MAX_FRAME_LEN_LIMIT: usize = 256 * 1024 * 1024;
const _: () = assert!(MAX_FRAME_LEN_LIMIT <= u32::MAX as usize);
/// Largest first frame (a `Hello`, or the `Reject` answering ours) read from a peer, in
/// body bytes: a peer that has not shown it belongs to the cluster can make us hold no
/// more than this (our own Hello is about 100 bytes).
pub const HELLO_LEN_MAX: usize = 4096;
/// Longest cluster id a config may set, so our own Hello stays far under `HELLO_LEN_MAX`.
pub const CLUSTER_ID_LEN_MAX: usize = 1024;
const _: () = assert!(CLUSTER_ID_LEN_MAX + 256 <= HELLO_LEN_MAX);
const _: () = assert!(HELLO_LEN_MAX <= MIN_MAX_FRAME_LEN * 4);

/// How many connections of each kind one listener holds at once (see the defaults).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConnectionLimits {
    pub handshakes_max: usize,
    pub client_connections_max: usize,
    pub peer_connections_max: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            handshakes_max: DEFAULT_HANDSHAKES_MAX,
            client_connections_max: DEFAULT_CLIENT_CONNECTIONS_MAX,
            peer_connections_max: DEFAULT_PEER_CONNECTIONS_MAX,
        }
    }
}

/// Settings of every channel a node opens or accepts.
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    pub node_id: NodeId,
    pub role: Role,
    pub cluster_id: String,
    /// Largest frame body sent or accepted after the handshake, in bytes.
    pub max_frame_len: usize,
    /// Requests awaiting a response, per channel.
    pub in_flight_max: usize,
    /// Requests waiting for an in-flight slot, per channel (also bounds queued responses).
    pub send_queue_max: usize,
    /// Bytes of encoded frames queued and not yet written, per channel: requests waiting
    /// for a slot, frames waiting for the writer and the batch being written.
    pub send_queue_bytes_max: usize,
    pub heartbeat_interval: Duration,
    /// A peer silent this many heartbeat intervals is declared dead: channel closed, Down.
    /// A node whose event loop has left input waiting this long stops sending
    /// heartbeats, so its peers declare it dead in turn (see `EventSender`).
    pub dead_after_heartbeats: u32,
    pub reconnect_backoff_min: Duration,
    pub reconnect_backoff_max: Duration,
    pub handshake_timeout: Duration,
    /// A request in flight this long without a response expires: its slot is freed and a
    /// late response is dropped. Checked once per heartbeat interval.
    pub request_timeout: Duration,
    /// Where every connection opened with this config (or a clone) counts its buffers.
    pub memory: MemoryGauge,
    /// The secrets this node proves and asks for in handshakes.
    pub auth: Auth,
    /// Connection limits of a listener served with this config.
    pub connections: ConnectionLimits,
    /// Random per config (so per node process; clones share it): sent in our Hello so
    /// that peers tell our reconnects from a second process with our id.
    pub instance: u64,
    /// The cluster members our connections run to (clones share it).
    pub registry: Registry,
    /// Where every connection opened with this config counts its frames and bytes.
    pub traffic: Traffic,
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
            send_queue_bytes_max: DEFAULT_SEND_QUEUE_BYTES_MAX,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            dead_after_heartbeats: DEFAULT_DEAD_AFTER_HEARTBEATS,
            reconnect_backoff_min: DEFAULT_RECONNECT_BACKOFF_MIN,
            reconnect_backoff_max: DEFAULT_RECONNECT_BACKOFF_MAX,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            memory: MemoryGauge::new(),
            auth: Auth::default(),
            connections: ConnectionLimits::default(),
            instance: rand::random(),
            registry: Registry::default(),
            traffic: Traffic::default(),
        }
    }

    /// Checks the values a user may have set (call it on configs built from flags).
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_MAX_FRAME_LEN..=MAX_FRAME_LEN_LIMIT).contains(&self.max_frame_len) {
            return Err(format!(
                "max_frame_len {} outside {MIN_MAX_FRAME_LEN}..={MAX_FRAME_LEN_LIMIT}",
                self.max_frame_len
            ));
        }
        if self.cluster_id.len() > CLUSTER_ID_LEN_MAX {
            return Err(format!(
                "cluster id of {} bytes is over {CLUSTER_ID_LEN_MAX}",
                self.cluster_id.len()
            ));
        }
        if self.in_flight_max == 0 || self.send_queue_max == 0 {
            return Err("in_flight_max and send_queue_max must be at least 1".into());
        }
        // An empty queue must take any frame we may send.
        if self.send_queue_bytes_max < self.max_frame_len + HEADER_LEN {
            return Err(format!(
                "send_queue_bytes_max {} is under one largest frame ({} bytes)",
                self.send_queue_bytes_max,
                self.max_frame_len + HEADER_LEN
            ));
        }
        if self.heartbeat_interval.is_zero() || self.dead_after_heartbeats == 0 {
            return Err("heartbeat_interval and dead_after_heartbeats must be non-zero".into());
        }
        if self.reconnect_backoff_min.is_zero()
            || self.reconnect_backoff_min > self.reconnect_backoff_max
        {
            return Err("reconnect backoff must satisfy 0 < min <= max".into());
        }
        let limits = &self.connections;
        if limits.handshakes_max == 0
            || limits.client_connections_max == 0
            || limits.peer_connections_max == 0
        {
            return Err("connection limits must be at least 1".into());
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

    /// Sets the largest frame body we accept (announced in our Hello) and send, and keeps
    /// room for two such frames in the send queue (one written while the next waits).
    pub fn set_max_frame_len(&mut self, max_frame_len: usize) {
        self.max_frame_len = max_frame_len;
        let two_frames = max_frame_len.saturating_add(HEADER_LEN).saturating_mul(2);
        self.send_queue_bytes_max = self.send_queue_bytes_max.max(two_frames);
    }

    /// Silence after which a peer is declared dead; also how long our event loop may
    /// leave input waiting before we stop heartbeating.
    pub fn dead_after(&self) -> Duration {
        self.heartbeat_interval * self.dead_after_heartbeats
    }

    /// Within this of our event loop getting stuck (input waiting, none taken), every
    /// peer has declared us dead: we heartbeat for up to `dead_after` more, the peer then
    /// waits `dead_after` of silence, checked once per heartbeat interval.
    pub fn stuck_dead_within(&self) -> Duration {
        self.dead_after() * 2 + self.heartbeat_interval
    }
}
