//! What channels tell their node, in one bounded queue per node, and how the channels
//! learn from that queue whether the node's event loop is still taking input.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::channel::{Channel, Epoch};
use crate::lock;
use crate::msg::{NodeId, Request, RequestId, Response};
use crate::runtime::{self, Receiver, RecvError, Sender};

/// What channels tell their node, in one queue per node.
#[derive(Debug)]
pub enum ChannelEvent {
    /// Handshake done; send on it until `Down`.
    Up { channel: Channel },
    /// Delivered in sequence order; answer with `Channel::respond(id, ..)`.
    Request {
        peer: NodeId,
        epoch: Epoch,
        id: RequestId,
        msg: Request,
    },
    Response {
        peer: NodeId,
        epoch: Epoch,
        id: RequestId,
        msg: Response,
    },
    /// Closed, reset, broken stream, or peer silent `dead_after_heartbeats` intervals.
    Down {
        peer: NodeId,
        epoch: Epoch,
        reason: String,
    },
}

/// A node's single bounded update queue: a full queue stalls the channels' readers
/// (backpressure), never grows.
pub fn event_queue(capacity: usize) -> (EventSender, EventReceiver) {
    let (sender, receiver) = runtime::bounded(capacity.max(1));
    let progress = Arc::new(Progress::default());
    (
        EventSender {
            inner: sender,
            progress: progress.clone(),
        },
        EventReceiver {
            inner: receiver,
            progress,
        },
    )
}

/// Whether the node's event loop keeps taking input: the proof of progress behind our
/// heartbeats. A loop that is stuck (or stopped taking input) leaves events waiting; once
/// they have waited `dead_after`, the channels stop heartbeating and the peers declare the
/// node dead. A loop that is merely busy takes input now and then, and keeps its peers.
#[derive(Debug, Default)]
struct Progress {
    state: Mutex<ProgressState>,
}

#[derive(Debug, Default)]
struct ProgressState {
    /// Since when input has waited without the loop taking any: the later of the first
    /// event queued into an empty queue and the loop's last take. `None` when empty.
    waiting_since: Option<Instant>,
    /// The node stopped taking input on purpose, while other work of its own proceeds
    /// (`EventReceiver::pause`): busy, not stuck.
    paused: bool,
}

/// The channels' end of a node's event queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventSender {
    inner: Sender<ChannelEvent>,
    progress: Arc<Progress>,
}

/// The node's end of its event queue.
#[derive(Debug)]
pub struct EventReceiver {
    inner: Receiver<ChannelEvent>,
    progress: Arc<Progress>,
}

/// The node's event queue is closed: the node is gone.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[error("node event queue closed")]
pub struct QueueClosed;

impl EventSender {
    /// Waits for room (backpressure), then queues `event`.
    pub async fn send(&self, event: ChannelEvent) -> Result<(), QueueClosed> {
        self.inner.send(event).await.map_err(|_| QueueClosed)?;
        let mut progress = lock(&self.progress.state);
        // Checked under the lock the receiver takes after each take, so a take that
        // emptied the queue either came first (then this sees it empty) or resets this.
        if progress.waiting_since.is_none() && !self.inner.is_empty() {
            progress.waiting_since = Some(Instant::now());
        }
        Ok(())
    }

    /// How long input has waited with the node's loop taking none, if any waits and the
    /// node has not paused its input on purpose.
    pub fn stalled_for(&self, now: Instant) -> Option<Duration> {
        if self.inner.is_empty() {
            return None;
        }
        let progress = lock(&self.progress.state);
        if progress.paused {
            return None;
        }
        Some(now.saturating_duration_since(progress.waiting_since?))
    }

    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }
}

impl EventReceiver {
    /// The next event; `Err` once every sender is gone and the queue is empty.
    pub async fn recv(&self) -> Result<ChannelEvent, RecvError> {
        let event = self.inner.recv().await?;
        self.progressed();
        Ok(event)
    }

    /// Taking input is progress: what still waits, waits from now.
    fn progressed(&self) {
        lock(&self.progress.state).waiting_since = (!self.inner.is_empty()).then(Instant::now);
    }

    /// The node stops (`true`) or resumes (`false`) taking input on purpose, because work
    /// of its own is under way (e.g. waiting for a group commit to catch up): while
    /// paused, waiting input does not count as a stuck loop, so heartbeats go on. A pause
    /// without end is the node's own bug; its peers' request deadlines still expire.
    pub fn pause(&self, paused: bool) {
        let mut progress = lock(&self.progress.state);
        if progress.paused && !paused {
            // Resuming is progress too: what waits, waits from now.
            progress.waiting_since = (!self.inner.is_empty()).then(Instant::now);
        }
        progress.paused = paused;
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&self) -> Option<ChannelEvent> {
        let event = self.inner.try_recv().ok()?;
        self.progressed();
        Some(event)
    }

    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::block_on;

    fn down(epoch: u64) -> ChannelEvent {
        ChannelEvent::Down {
            peer: NodeId(1),
            epoch: Epoch(epoch),
            reason: String::new(),
        }
    }

    #[test]
    fn an_empty_queue_is_never_stalled() {
        let (sender, _receiver) = event_queue(4);
        assert_eq!(sender.stalled_for(Instant::now()), None);
    }

    #[test]
    fn input_left_waiting_counts_as_stalled_until_the_loop_takes_some() {
        block_on(async {
            let (sender, receiver) = event_queue(4);
            let before = Instant::now();
            sender.send(down(1)).await.unwrap();
            sender.send(down(2)).await.unwrap();
            let later = Instant::now() + Duration::from_secs(5);
            let stalled = sender.stalled_for(later).expect("input waits");
            assert!(stalled >= Duration::from_secs(5));
            assert!(stalled <= later - before);
            // A take is progress: the rest waits from then, not from the first send.
            receiver.recv().await.unwrap();
            let stalled = sender.stalled_for(Instant::now()).expect("one still waits");
            assert!(stalled < Duration::from_secs(1));
            receiver.recv().await.unwrap();
            assert_eq!(sender.stalled_for(later), None);
        });
    }

    #[test]
    fn a_paused_intake_is_busy_not_stalled_and_resuming_restarts_the_clock() {
        block_on(async {
            let (sender, receiver) = event_queue(4);
            sender.send(down(1)).await.unwrap();
            receiver.pause(true);
            let later = Instant::now() + Duration::from_secs(5);
            assert_eq!(sender.stalled_for(later), None);
            receiver.pause(false);
            let stalled = sender.stalled_for(Instant::now()).expect("input waits");
            assert!(stalled < Duration::from_secs(1));
        });
    }
}
