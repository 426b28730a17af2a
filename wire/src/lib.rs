//! The wire protocol: messages, the frame codec, the handshake and the single
//! long-lived socket channel per peer (request pipelining, heartbeats, reconnect), its
//! phi-accrual failure detector, and the participant mesh. No protocol decisions live here.
//!
//! Modules only import downward: pure pieces (`msg` with `admin`, `frame`, `quote`,
//! `pipeline`, `addr` (which resolves host names, at start-up), `auth`, `slots`,
//! `detector`, `refusals`, `read_buf`, `memory`, `retention`, `fill`), then `config`,
//! `runtime` and `prune`, then `channel`, `registry`, `handshake` and `events`,
//! `connection`, then `dial` and `listen`, and on top `client` and `mesh`.

pub mod addr;
pub mod admin;
pub mod auth;
pub mod channel;
pub mod client;
pub mod config;
mod connection;
pub mod crash;
pub mod detector;
mod dial;
pub mod events;
pub mod fill;
pub mod frame;
pub mod handshake;
pub mod limits;
mod listen;
pub mod memory;
pub mod mesh;
pub mod msg;
pub mod pipeline;
pub mod prune;
pub mod quote;
pub mod read_buf;
mod refusals;
pub mod registry;
pub mod retention;
pub mod runtime;
mod slots;
#[cfg(test)]
mod tests;
pub mod traffic;
pub mod units;

use std::sync::{Mutex, MutexGuard};

pub use auth::{Auth, CLIENT_TOKEN_ENV, CLUSTER_SECRET_ENV, Secret};
pub use channel::{Channel, Epoch, Liveness, SendError, supersedes};
pub use client::{Client, ClientError};
pub use config::{
    ChannelConfig, ConnectionLimits, HELLO_LEN_MAX, MAX_FRAME_LEN_LIMIT, MIN_MAX_FRAME_LEN,
};
pub use connection::{IDLE_CONNECTION_BYTES_MAX, WRITE_BUF_IDLE_LEN, WRITE_COALESCE_LEN};
pub use dial::{DialHandle, dial};
pub use events::{ChannelEvent, EventReceiver, EventSender, QueueClosed, event_queue};
pub use frame::{DEFAULT_MAX_FRAME_LEN, FrameError};
pub use limits::OpLimits;
pub use listen::{Listener, ServeHandle};
pub use memory::MemoryGauge;
pub use mesh::{MeshHandle, mesh};
pub use msg::*;
pub use traffic::{Traffic, TrafficCounts};
pub use units::{Lsn, Millis};

/// Locks, ignoring poisoning: the guarded data is updated in single steps that a panic
/// elsewhere cannot leave half done.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
