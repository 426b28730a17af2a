//! Graceful stop (SIGTERM, Ctrl-C): new transactions are refused at once; those in flight
//! may finish for at most `SHUTDOWN_DRAIN_MAX` (their clients get their results); then the
//! listener and every connection close, the log writer writes what is queued (at most
//! `SHUTDOWN_WRITER_MAX`), the decision log is closed (WAL checkpointed), one line is
//! logged.
//!
//! Correctness never depends on it: what the drain cuts short is recovered on restart as
//! after a crash (a logged commit is re-sent, an undecided transaction is presumed
//! aborted and its participants learn so when they ask).

use std::time::{Duration, Instant};

use tracing::{info, warn};
use wire::runtime;
use wire::{Channel, ClientResponse, RequestId, TxnId, TxnResult};

use super::{Node, respond};
use crate::shell::config::ShellError;
use crate::shell::log_writer::LogEvent;

/// Longest wait for the transactions in flight at the stop to finish.
pub const SHUTDOWN_DRAIN_MAX: Duration = Duration::from_secs(3);
/// Longest wait for the log writer to write what is queued and close the log.
pub const SHUTDOWN_WRITER_MAX: Duration = Duration::from_secs(5);

/// How a requested stop ended (`Node::run_until`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Every queued record written, the decision log closed.
    Clean,
    /// The writer did not finish within `SHUTDOWN_WRITER_MAX`; restart recovers.
    WriterTimedOut,
}

impl Node {
    /// The stop was asked for: refuse new transactions from now on.
    pub(super) fn begin_shutdown(&mut self) {
        if self.stopping.is_none() {
            let in_flight = self.core.txns_in_flight();
            info!(in_flight, drain_max = ?SHUTDOWN_DRAIN_MAX, "stop requested: new transactions are refused, those in flight may finish");
            self.stopping = Some((Instant::now() + SHUTDOWN_DRAIN_MAX, in_flight));
        }
    }

    /// The deadline of the drain, while stopping.
    pub(super) fn drain_deadline(&self) -> Option<Instant> {
        self.stopping.map(|(deadline, _)| deadline)
    }

    /// Stopping, and nothing left in flight or the drain's time is up.
    pub(super) fn drained(&self) -> bool {
        self.stopping.is_some_and(|(deadline, _)| {
            self.core.txns_in_flight() == 0 || Instant::now() >= deadline
        })
    }

    /// A Submit while stopping: refused before it starts, so nothing happened (exit 1
    /// for `submit`, and a client may retry elsewhere or later).
    pub(super) fn refuse_while_stopping(
        &self,
        client: &Channel,
        id: RequestId,
        txn: TxnId,
    ) -> bool {
        if self.stopping.is_none() {
            return false;
        }
        let reason = "the coordinator is shutting down; nothing was done".to_string();
        let result = TxnResult::Rejected { reason };
        respond(client, id, ClientResponse::Result { txn, result }.into());
        true
    }

    /// Closes the connections and the decision log; `Err` if the last writes failed.
    pub(super) async fn shut_down(mut self) -> Result<Stopped, ShellError> {
        let (_, in_flight_at_stop) = self.stopping.unwrap_or((Instant::now(), 0));
        let left = self.core.txns_in_flight();
        self._serve.stop();
        for slot in self.peers.values_mut() {
            if let Some(channel) = slot.channel.take() {
                channel.close();
            }
        }
        // The writer drains what is queued, closes the store, and ends its report queue.
        self.log_records.close();
        let log_events = self.log_events.clone();
        let written = runtime::timeout(SHUTDOWN_WRITER_MAX, async move {
            while let Ok(event) = log_events.recv().await {
                if let LogEvent::Failed(error) = event {
                    return Err(ShellError::from(error));
                }
            }
            Ok(())
        })
        .await;
        match written {
            Some(Ok(())) => {
                info!(
                    in_flight_at_stop,
                    finished = in_flight_at_stop.saturating_sub(left),
                    left_to_recovery = left,
                    "coordinator stopped: transactions drained, decision log closed"
                );
                Ok(Stopped::Clean)
            }
            Some(Err(error)) => Err(error),
            None => {
                warn!(bound = ?SHUTDOWN_WRITER_MAX, "the decision log writer did not finish in time; restart recovers from the log");
                Ok(Stopped::WriterTimedOut)
            }
        }
    }
}
