//! Socket tests of the wire crate over loopback: handshake refusals, the channel
//! (pipelining, bad peers, heartbeats, reconnect) and the client. One binary for all.

mod channel;
mod client;
mod handshake;
mod support;
