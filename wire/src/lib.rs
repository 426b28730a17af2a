//! The wire protocol: messages, the frame codec, the handshake and the single
//! long-lived socket channel per peer (request pipelining, heartbeats, reconnect).
//! No protocol decisions live here.

pub mod crash;
pub mod msg;

pub use msg::*;
