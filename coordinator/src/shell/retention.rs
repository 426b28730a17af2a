//! Retention in the coordinator's shell: the window (`--retain`, `--retain-txns`), the
//! prune schedule the log writer follows between batches, and the figures it leaves for
//! `status`.
//!
//! Unlike the participant's, the coordinator's window needs no horizon in the core and no
//! check against the protocol timeouts: it only deletes ended decisions, which the core
//! has forgotten already (see `store::retention`), so the window only says how long they
//! stay for inspection.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wire::retention::{Horizon, RETAIN_DEFAULT, RETAIN_MS_MIN};

use crate::store::RetentionFigures;

/// Ended decisions deleted per prune step at most (one SQLite transaction between two
/// group commits).
pub const PRUNE_DECISIONS_PER_STEP: u32 = 2_048;
/// Pause between prune steps once pruning has caught up.
pub const PRUNE_INTERVAL: Duration = Duration::from_millis(500);

/// What `coordinator serve` was asked to keep.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Retention {
    pub retain: Duration,
    /// Past this many kept decisions, the window shrinks to `RETAIN_MS_MIN`.
    pub retain_txns: Option<u64>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            retain: RETAIN_DEFAULT,
            retain_txns: None,
        }
    }
}

/// The writer's side: its schedule and the figures it publishes.
#[derive(Debug)]
pub struct Pruner {
    pub retention: Retention,
    next_at: Instant,
    over_cap: bool,
    /// The last figures read, shared with the event loop for `status`; `None` until the
    /// first step.
    pub figures: Arc<Mutex<Option<RetentionFigures>>>,
}

impl Pruner {
    pub fn new(retention: Retention) -> Pruner {
        Pruner {
            retention,
            next_at: Instant::now(),
            over_cap: false,
            figures: Arc::new(Mutex::new(None)),
        }
    }

    pub fn due(&self) -> bool {
        Instant::now() >= self.next_at
    }

    /// The window in force: `retain`, or its minimum while over `retain_txns`.
    pub fn window(&self) -> Duration {
        if self.over_cap {
            Duration::from_millis(RETAIN_MS_MIN).min(self.retention.retain)
        } else {
            self.retention.retain
        }
    }

    pub fn horizon(&self) -> Horizon {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let window_ms = u64::try_from(self.window().as_millis()).unwrap_or(u64::MAX);
        Horizon::at_unix_ms(now_ms.saturating_sub(window_ms))
    }

    /// After a step: again right after the next batch if it was full, else later; the
    /// figures (and the cap) are refreshed only once caught up (they cost a count).
    pub fn stepped(&mut self, full: bool, figures: Option<RetentionFigures>) {
        self.next_at = if full {
            Instant::now()
        } else {
            Instant::now() + PRUNE_INTERVAL
        };
        if let Some(figures) = figures {
            if let Some(cap) = self.retention.retain_txns {
                self.over_cap = u64::try_from(figures.kept_decisions).unwrap_or(0) > cap;
            }
            if let Ok(mut slot) = self.figures.lock() {
                *slot = Some(figures);
            }
        }
    }
}
