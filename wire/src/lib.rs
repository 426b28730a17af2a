//! The wire protocol: messages, the frame codec, the handshake and the single
//! long-lived socket channel per peer (request pipelining, heartbeats, reconnect), its
//! phi-accrual failure detector, and the participant mesh. No protocol decisions live here.

pub mod channel;
pub mod client;
pub mod crash;
pub mod detector;
pub mod frame;
pub mod handshake;
pub mod mesh;
pub mod msg;
pub mod pipeline;
pub mod runtime;
#[cfg(test)]
mod tests;

pub use channel::{
    Channel, ChannelConfig, ChannelEvent, DialHandle, Epoch, EventReceiver, EventSender, Listener,
    Liveness, SendError, ServeHandle, dial, event_queue,
};
pub use client::{Client, ClientError};
pub use frame::{DEFAULT_MAX_FRAME_LEN, FrameError};
pub use mesh::{MeshHandle, mesh};
pub use msg::*;
