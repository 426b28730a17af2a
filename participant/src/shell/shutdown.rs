//! Graceful stop (SIGTERM, Ctrl-C): stop accepting and close every connection, let the
//! writer make durable what the core has already queued (at most `SHUTDOWN_WRITER_MAX`),
//! close the database (WAL checkpointed), log one line.
//!
//! Correctness never depends on it: every reply waits for its record, so a stop at any
//! instant (this one, a crash, SIGKILL) leaves the log as the truth, and restart recovers
//! the in-doubt transactions from it. Nothing is sent after the stop, so a record that
//! becomes durable here is announced by no one: its transaction is simply in doubt.

use std::future::Future;
use std::time::Duration;

use tracing::{info, warn};
use wire::runtime;

use super::{EventLoop, Node};

/// Longest wait for the writer to finish the records queued at the stop.
pub const SHUTDOWN_WRITER_MAX: Duration = Duration::from_secs(5);

/// How `Node::run_until` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Asked to stop, and stopped cleanly (database closed).
    Clean,
    /// Asked to stop; the writer did not finish within `SHUTDOWN_WRITER_MAX` (what it had
    /// not written is recovered as after a crash).
    WriterTimedOut,
    /// The event queues closed under the loop: not a requested stop.
    Failed,
}

impl Node {
    /// Serves until `stop` resolves, then stops gracefully.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> Stopped {
        let Node {
            event_loop,
            _serve: serve,
            _mesh: mesh,
            ..
        } = self;
        let mut event_loop = event_loop;
        if !event_loop.run(stop).await {
            return Stopped::Failed;
        }
        // No new connection, no input from the old ones: the core hears nothing more.
        serve.stop();
        drop(mesh);
        event_loop.shut_down().await
    }
}

impl EventLoop {
    async fn shut_down(mut self) -> Stopped {
        let counts = self.core.counts();
        self.writer_queue.0.close();
        let queued = self.outstanding;
        let finished = match self.writer_task.take() {
            Some(task) => runtime::timeout(SHUTDOWN_WRITER_MAX, task).await.is_some(),
            None => true,
        };
        if !finished {
            warn!(
                queued,
                bound = ?SHUTDOWN_WRITER_MAX,
                "the log writer did not finish in time; restart recovers from the log"
            );
            return Stopped::WriterTimedOut;
        }
        self.store.close().await;
        info!(
            records_flushed = queued,
            in_doubt = counts.in_doubt,
            preparing = counts.preparing,
            "participant stopped: connections closed, log flushed, database closed; \
             in-doubt transactions resume on restart"
        );
        Stopped::Clean
    }
}
