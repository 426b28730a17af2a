//! Socket tests of the wire crate over loopback: handshake refusals, the channel
//! (pipelining, bad peers, heartbeats, reconnect), liveness, the participant mesh and
//! the client. One binary for all.

mod channel;
mod client;
mod fuzz;
mod handshake;
mod liveness;
mod mesh;
mod robust;
mod security;
mod support;
