//! `Traffic`: frames and bytes in and out, and refused frames and handshakes, of every
//! connection opened with one `ChannelConfig` (clones share it), for a node's metrics.
//! Relaxed counters: each is read alone, for a report, never to decide anything.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Default)]
pub struct Traffic {
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    frames_rejected: AtomicU64,
    handshakes_rejected: AtomicU64,
}

/// One reading of every counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Frames that closed their connection (undecodable, too large, out of sequence).
    pub frames_rejected: u64,
    /// Handshakes that failed: accepted connections refused, malformed or timed out, and
    /// our dials that the peer rejected or whose Hello or proof we refused.
    pub handshakes_rejected: u64,
}

impl Traffic {
    pub fn counts(&self) -> TrafficCounts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let counts = &self.counts;
        TrafficCounts {
            frames_in: load(&counts.frames_in),
            frames_out: load(&counts.frames_out),
            bytes_in: load(&counts.bytes_in),
            bytes_out: load(&counts.bytes_out),
            frames_rejected: load(&counts.frames_rejected),
            handshakes_rejected: load(&counts.handshakes_rejected),
        }
    }

    pub(crate) fn read(&self, bytes: usize) {
        self.counts
            .bytes_in
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn frame_in(&self) {
        self.counts.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn written(&self, frames: usize, bytes: usize) {
        self.counts
            .frames_out
            .fetch_add(frames as u64, Ordering::Relaxed);
        self.counts
            .bytes_out
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn frame_rejected(&self) {
        self.counts.frames_rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn handshake_rejected(&self) {
        self.counts
            .handshakes_rejected
            .fetch_add(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Traffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.counts().fmt(f)
    }
}
