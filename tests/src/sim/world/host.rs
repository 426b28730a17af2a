//! A node's process as the simulator sees it: alive or not, its incarnation, its own
//! drifting clock, and what its shell keeps besides the core (channels, pending timer).

use std::collections::BTreeMap;

use wire::NodeId;

/// A node's local clock: starts at 0 when the process starts (as `Instant` does in the
/// shells), runs at a slightly wrong rate, and may jump forward.
#[derive(Clone, Copy, Debug)]
pub(in crate::sim) struct Clock {
    pub(super) started_ms: u64,
    pub(super) jumps_ms: u64,
    pub(super) rate_ppm: u64,
}

pub(super) const PPM: u64 = 1_000_000;

impl Clock {
    pub(super) fn now_ms(&self, vt_ms: u64) -> u64 {
        let elapsed = u128::from(vt_ms.saturating_sub(self.started_ms));
        (elapsed * u128::from(self.rate_ppm) / u128::from(PPM)) as u64 + self.jumps_ms
    }

    /// The first virtual time at which this clock reads at least `local_ms`.
    pub(super) fn vt_at(&self, local_ms: u64) -> u64 {
        let local = u128::from(local_ms.saturating_sub(self.jumps_ms));
        let rate = u128::from(self.rate_ppm);
        self.started_ms + (local * u128::from(PPM)).div_ceil(rate) as u64
    }
}

/// A node's process: whether it runs, and what its shell keeps besides the core.
#[derive(Debug)]
pub(in crate::sim) struct Host {
    pub alive: bool,
    /// Bumped at every restart; events of an older incarnation are ignored.
    pub incarnation: u64,
    pub clock: Clock,
    /// The current channel (epoch) to each peer, from its `Up` until its `Down`.
    pub channels: BTreeMap<NodeId, u64>,
    /// When the pending timer event fires, if one is pending.
    pub timer_ms: Option<u64>,
    pub flush_scheduled: bool,
}

impl Host {
    /// A process just started, its clock at 0 and running at `clock_rate_ppm`.
    pub(super) fn new(clock_rate_ppm: u64) -> Host {
        Host {
            alive: true,
            incarnation: 1,
            clock: Clock {
                started_ms: 0,
                jumps_ms: 0,
                rate_ppm: clock_rate_ppm,
            },
            channels: BTreeMap::new(),
            timer_ms: None,
            flush_scheduled: false,
        }
    }
}
