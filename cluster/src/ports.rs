//! Free loopback ports for nodes that must know each other's addresses before they start.

use std::io;
use std::net::{SocketAddr, TcpListener};

/// A 127.0.0.1 address whose port was free a moment ago.
pub fn free_loopback_addr() -> io::Result<SocketAddr> {
    TcpListener::bind(("127.0.0.1", 0))?.local_addr()
}

/// `count` distinct free 127.0.0.1 addresses: all bound at once (so they differ), then
/// released for the nodes to bind. Another process could take one in between; that node
/// then fails to start with a clear error (acceptable on a developer machine).
///
/// The participant mesh needs this: every participant is told the others' addresses
/// (`--peer`) when it starts, so the ports are chosen first.
pub fn reserve_loopback_addrs(count: usize) -> io::Result<Vec<SocketAddr>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<io::Result<Vec<_>>>()?;
    listeners.iter().map(TcpListener::local_addr).collect()
}
