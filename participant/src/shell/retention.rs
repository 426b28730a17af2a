//! Retention in the shell: the window (`--retain`, `--retain-txns`), the horizon the event
//! loop hands the core before the writer may prune below it, and the writer's prune
//! schedule between group commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wire::retention::{Horizon, RETAIN_DEFAULT, RETAIN_TIMEOUT_FACTOR, check_retain};

use super::EventLoop;
use crate::core::Config;

/// Txns (and, separately, read-only votes) deleted per prune step at most: a step is one
/// SQLite transaction of a few ms, taken between two group commits.
pub const PRUNE_TXNS_PER_STEP: u32 = 1_024;
/// Pause between prune steps once pruning has caught up.
pub const PRUNE_INTERVAL: Duration = Duration::from_millis(500);
/// How often the event loop moves the horizon on.
pub const HORIZON_TICK: Duration = Duration::from_millis(250);

/// What `participant serve` was asked to keep.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Retention {
    /// Decided txns are kept at least this long (by their id's time and their outcome's).
    pub retain: Duration,
    /// Past this many kept txns the window shrinks to its safe minimum
    /// ([`Retention::window_min`]): a bound on the table under any load.
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

impl Retention {
    /// The participant's protocol timeouts, by the flag that sets each.
    fn timeouts(config: &Config) -> [(&'static str, u64); 4] {
        [
            ("--waiting-timeout-max-ms", config.waiting_timeout_max_ms),
            ("--precommitted-timeout-ms", config.precommitted_timeout_ms),
            ("--termination-round-ms", config.termination_round_ms),
            (
                "--decision-query-backoff-max-ms",
                config.decision_query_backoff_max_ms,
            ),
        ]
    }

    /// The window must be `RETAIN_TIMEOUT_FACTOR` times every protocol timeout.
    pub fn validate(&self, config: &Config) -> Result<(), String> {
        check_retain(self.retain, &Self::timeouts(config))
    }

    /// The shortest window the timeouts allow: what `retain_txns` shrinks it to.
    pub fn window_min(config: &Config) -> Duration {
        let longest = Self::timeouts(config)
            .iter()
            .map(|(_, ms)| *ms)
            .max()
            .unwrap_or(0);
        Duration::from_millis(longest.saturating_mul(RETAIN_TIMEOUT_FACTOR))
            .max(Duration::from_millis(wire::retention::RETAIN_MS_MIN))
    }
}

/// Shared by the event loop (which moves the horizon, core first) and the writer (which
/// prunes below it).
#[derive(Debug)]
pub struct Shared {
    /// The horizon (Unix ms) the core already has; the writer never prunes above it.
    horizon_ms: AtomicU64,
    /// Set by the writer when more than `retain_txns` txns are kept.
    over_cap: AtomicBool,
    pub retention: Retention,
    pub window_min: Duration,
}

impl Shared {
    pub fn new(retention: Retention, config: &Config, stored: Horizon) -> Arc<Shared> {
        Arc::new(Shared {
            horizon_ms: AtomicU64::new(stored.unix_ms()),
            over_cap: AtomicBool::new(false),
            retention,
            window_min: Retention::window_min(config),
        })
    }

    /// The window in force: `retain`, or its minimum while over `retain_txns`.
    pub fn window(&self) -> Duration {
        if self.over_cap.load(Ordering::Relaxed) {
            self.window_min.min(self.retention.retain)
        } else {
            self.retention.retain
        }
    }

    /// The horizon for now (wall clock, which is what v7 ids carry).
    pub fn horizon_now(&self) -> Horizon {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let window_ms = u64::try_from(self.window().as_millis()).unwrap_or(u64::MAX);
        Horizon::at_unix_ms(now_ms.saturating_sub(window_ms))
    }

    /// Published after the core has it (`Participant::set_horizon`).
    pub fn publish(&self, core_horizon: Horizon) {
        self.horizon_ms
            .fetch_max(core_horizon.unix_ms(), Ordering::Release);
    }

    pub fn published(&self) -> Horizon {
        Horizon::at_unix_ms(self.horizon_ms.load(Ordering::Acquire))
    }

    pub fn set_over_cap(&self, over: bool) {
        self.over_cap.store(over, Ordering::Relaxed);
    }
}

/// The writer's prune schedule: a step after a group commit when the last one was full
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

    pub fn stepped(&mut self, full: bool) {
        self.next_at = if full {
            Instant::now()
        } else {
            Instant::now() + PRUNE_INTERVAL
        };
    }
}

impl EventLoop {
    /// Every `HORIZON_TICK`: the core gets the new horizon first, then the writer may
    /// prune below it (see `store::retention`'s `# Correctness`).
    pub(super) fn advance_horizon(&mut self) {
        if Instant::now() < self.horizon_at {
            return;
        }
        self.horizon_at = Instant::now() + HORIZON_TICK;
        self.core.set_horizon(self.retention.horizon_now());
        self.retention.publish(self.core.horizon());
    }
}
