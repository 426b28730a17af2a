//! The prune schedule both nodes' log writers follow between group commits, and the
//! horizon a window puts on the wall clock; the pure rules are in `retention`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::retention::Horizon;

/// Pause between prune steps once pruning has caught up.
pub const PRUNE_INTERVAL: Duration = Duration::from_millis(500);

/// A log writer's prune schedule: a step after a group commit when the last one was full
/// (catching up), else every `PRUNE_INTERVAL`.
#[derive(Debug)]
pub struct Schedule {
    next_at: Instant,
}

impl Default for Schedule {
    /// A step is due at once.
    fn default() -> Self {
        Schedule {
            next_at: Instant::now(),
        }
    }
}

impl Schedule {
    pub fn due(&self) -> bool {
        Instant::now() >= self.next_at
    }

    /// After a step: due again at once if it was full, else after `PRUNE_INTERVAL`.
    pub fn stepped(&mut self, full: bool) {
        self.next_at = if full {
            Instant::now()
        } else {
            Instant::now() + PRUNE_INTERVAL
        };
    }
}

/// The horizon `window` before now, on the wall clock (which is what v7 ids carry).
pub fn horizon_now(window: Duration) -> Horizon {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    Horizon::at_unix_ms(now_ms.saturating_sub(window_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_step_is_followed_at_once_and_a_partial_one_after_the_interval() {
        let mut schedule = Schedule::default();
        assert!(schedule.due());
        schedule.stepped(true);
        assert!(schedule.due());
        let before = Instant::now();
        schedule.stepped(false);
        assert!(schedule.next_at >= before + PRUNE_INTERVAL);
    }

    #[test]
    fn the_horizon_now_stands_the_window_before_the_wall_clock() {
        // 2020-01-01: any clock this runs on is past it.
        let past_ms = 1_577_836_800_000;
        assert!(horizon_now(Duration::ZERO).unix_ms() > past_ms);
        assert!(horizon_now(Duration::from_secs(3_600)) < horizon_now(Duration::ZERO));
        assert_eq!(horizon_now(Duration::MAX), Horizon::at_unix_ms(0));
    }
}
