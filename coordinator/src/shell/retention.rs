//! Retention in the coordinator's shell: the window's minimum and the figures the log
//! writer leaves for `status`, around the prune schedule and `Retention` both nodes share
//! (`wire::prune`, `wire::retention`).
//!
//! Unlike the participant's, the coordinator's window needs no horizon in the core and no
//! check against the protocol timeouts: it only deletes ended decisions, which the core
//! has forgotten already (see `store::retention`), so the window only says how long they
//! stay for inspection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wire::prune::{Schedule, horizon_now};
pub use wire::retention::Retention;
use wire::retention::{Horizon, RETAIN_MS_MIN};

use crate::store::RetentionFigures;

/// Ended decisions deleted per prune step at most (one SQLite transaction between two
/// group commits).
pub const PRUNE_DECISIONS_PER_STEP: u32 = 2_048;
/// Past `retain_txns` kept decisions the window shrinks to this: nothing the protocol
/// needs is in them any more.
const WINDOW_MIN: Duration = Duration::from_millis(RETAIN_MS_MIN);

/// The writer's side: its schedule and the figures it publishes.
#[derive(Debug)]
pub struct Pruner {
    pub retention: Retention,
    schedule: Schedule,
    over_cap: bool,
    /// The last figures read, shared with the event loop for `status`; `None` until the
    /// first step.
    pub figures: Arc<Mutex<Option<RetentionFigures>>>,
}

impl Pruner {
    pub fn new(retention: Retention) -> Pruner {
        Pruner {
            retention,
            schedule: Schedule::default(),
            over_cap: false,
            figures: Arc::new(Mutex::new(None)),
        }
    }

    pub fn due(&self) -> bool {
        self.schedule.due()
    }

    /// The window in force: `retain`, or its minimum while over `retain_txns`.
    pub fn window(&self) -> Duration {
        self.retention.window(self.over_cap, WINDOW_MIN)
    }

    pub fn horizon(&self) -> Horizon {
        horizon_now(self.window())
    }

    /// After a step: again right after the next batch if it was full, else later; the
    /// figures (and the cap) are refreshed only once caught up (they cost a count).
    pub fn stepped(&mut self, full: bool, figures: Option<RetentionFigures>) {
        self.schedule.stepped(full);
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
