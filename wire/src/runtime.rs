//! The only module of the workspace that names the async runtime (async-std): tasks,
//! timers, sockets and channels are re-exported from here, for `wire` and for every
//! other crate, so a runtime switch is a one-file change.

use std::future::Future;
use std::time::Duration;

pub use async_std::channel::{Receiver, RecvError, Sender, TrySendError, bounded};
pub use async_std::net::{TcpListener, TcpStream};
pub use async_std::task::{JoinHandle, block_on, sleep, spawn};

/// The future's output, or `None` if `duration` passed first.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Option<F::Output> {
    async_std::future::timeout(duration, future).await.ok()
}
