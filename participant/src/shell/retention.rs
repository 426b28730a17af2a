//! Retention in the shell: the window's minimum and check (`--retain`, `--retain-txns`,
//! against this node's timeouts) and the horizon the event loop hands the core before the
//! writer may prune below it. What both nodes share (`Retention`, the writer's prune
//! schedule) is `wire::retention`'s and `wire::prune`'s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use wire::retention::Retention;
use wire::retention::{Horizon, RETAIN_TIMEOUT_FACTOR, check_retain};

use super::EventLoop;
use crate::core::Config;

/// Txns (and, separately, read-only votes) deleted per prune step at most: a step is one
/// SQLite transaction of a few ms, taken between two group commits.
pub const PRUNE_TXNS_PER_STEP: u32 = 1_024;
/// How often the event loop moves the horizon on.
pub const HORIZON_TICK: Duration = Duration::from_millis(250);

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
pub fn validate(retention: &Retention, config: &Config) -> Result<(), String> {
    check_retain(retention.retain, &timeouts(config))
}

/// The shortest window the timeouts allow: what `retain_txns` shrinks it to.
pub fn window_min(config: &Config) -> Duration {
    let longest = timeouts(config)
        .iter()
        .map(|(_, ms)| *ms)
        .max()
        .unwrap_or(0);
    Duration::from_millis(longest.saturating_mul(RETAIN_TIMEOUT_FACTOR))
        .max(Duration::from_millis(wire::retention::RETAIN_MS_MIN))
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
            window_min: window_min(config),
        })
    }

    /// The window in force: `retain`, or its minimum while over `retain_txns`.
    pub fn window(&self) -> Duration {
        self.retention
            .window(self.over_cap.load(Ordering::Relaxed), self.window_min)
    }

    /// The horizon for now (wall clock, which is what v7 ids carry).
    pub fn horizon_now(&self) -> Horizon {
        wire::prune::horizon_now(self.window())
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
