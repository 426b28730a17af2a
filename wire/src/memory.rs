//! Byte accounting of what a node's connections hold: handshake buffers, read buffers,
//! send queues and write buffers. Tests read it to show the bounds the README states;
//! operators can read it to see where memory goes.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes held by every connection opened with one `ChannelConfig` (clones of a config
/// share its gauge), now and at most so far.
#[derive(Clone, Default)]
pub struct MemoryGauge {
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    held: AtomicUsize,
    peak: AtomicUsize,
}

impl MemoryGauge {
    pub fn new() -> MemoryGauge {
        MemoryGauge::default()
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.counts.held.load(Ordering::Acquire)
    }

    /// The most bytes held at once since the gauge was made.
    pub fn peak(&self) -> usize {
        self.counts.peak.load(Ordering::Acquire)
    }

    fn add(&self, bytes: usize) {
        let held = self.counts.held.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.counts.peak.fetch_max(held, Ordering::AcqRel);
    }

    fn sub(&self, bytes: usize) {
        self.counts.held.fetch_sub(bytes, Ordering::AcqRel);
    }
}

impl fmt::Debug for MemoryGauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryGauge")
            .field("held", &self.held())
            .field("peak", &self.peak())
            .finish()
    }
}

/// One buffer's share of a gauge: set it when the buffer's size changes; dropping it
/// gives the bytes back.
pub(crate) struct Held {
    gauge: MemoryGauge,
    bytes: usize,
}

impl Held {
    pub(crate) fn new(gauge: &MemoryGauge) -> Held {
        Held {
            gauge: gauge.clone(),
            bytes: 0,
        }
    }

    pub(crate) fn set(&mut self, bytes: usize) {
        if bytes > self.bytes {
            self.gauge.add(bytes - self.bytes);
        } else {
            self.gauge.sub(self.bytes - bytes);
        }
        self.bytes = bytes;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gauge.sub(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_bytes_are_counted_until_dropped_and_the_peak_stays() {
        let gauge = MemoryGauge::new();
        let mut first = Held::new(&gauge);
        first.set(100);
        let mut second = Held::new(&gauge);
        second.set(50);
        assert_eq!((gauge.held(), gauge.peak()), (150, 150));
        first.set(10);
        assert_eq!((gauge.held(), gauge.peak()), (60, 150));
        drop(second);
        drop(first);
        assert_eq!((gauge.held(), gauge.peak()), (0, 150));
    }
}
