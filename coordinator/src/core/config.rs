//! The coordinator's configuration: the participants, the limits on what one client may
//! ask for (every bound configurable: README, "Guarantees and limits"), the protocol
//! timings, and `Config::validate`, which checks them against each other.

use std::collections::BTreeSet;

use wire::NodeId;

/// Bounds on what one client may ask for.
#[derive(Clone, Hash, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Transactions the core tracks at once, including decided ones awaiting acks and
    /// `Ended` records not yet durable; past it a Submit is rejected as overload.
    pub txns_in_flight_max: usize,
    /// Operations in one transaction, over all its participants.
    pub ops_per_txn_max: usize,
    pub key_bytes_max: usize,
    pub value_bytes_max: usize,
    /// Bounds of a spec's `timeout_ms`. For 3PC the timeout is the participants' waiting
    /// timeout and votes are due `precommit_margin_ms` before it, so a 3PC timeout must
    /// be at least `timeout_ms_min + precommit_margin_ms`.
    pub timeout_ms_min: u64,
    pub timeout_ms_max: u64,
}

pub const TXNS_IN_FLIGHT_MAX_DEFAULT: usize = 10_000;
pub use wire::limits::{HEARTBEAT_INTERVAL_MS_DEFAULT, TIMEOUT_HEARTBEATS_MIN, TIMEOUT_LIMIT_MS};
pub use wire::limits::{KEY_BYTES_MAX_DEFAULT, OPS_PER_TXN_MAX_DEFAULT, VALUE_BYTES_MAX_DEFAULT};
pub const TIMEOUT_MS_MIN_DEFAULT: u64 = TIMEOUT_HEARTBEATS_MIN * HEARTBEAT_INTERVAL_MS_DEFAULT;
pub const TIMEOUT_MS_MAX_DEFAULT: u64 = 60_000;
pub const DECIDE_RESEND_MS_DEFAULT: u64 = 1_000;
/// 3PC: votes must all be in this long before the participants' waiting timeout, so a
/// PreCommit sent then still reaches them (log write + network) before it fires.
pub const PRECOMMIT_MARGIN_MS_DEFAULT: u64 = 2 * HEARTBEAT_INTERVAL_MS_DEFAULT;
/// 3PC: how long PreCommit acks are awaited before a silent participant is treated as
/// failed and DoCommit goes out anyway (the time the wire takes to declare it dead).
pub const PRECOMMIT_ACK_TIMEOUT_MS_DEFAULT: u64 = 10 * HEARTBEAT_INTERVAL_MS_DEFAULT;
/// Room for a message's framing, ids and per-op encoding beyond its keys and values.
const MSG_OVERHEAD_BYTES_MAX: usize = 64 * 1_024;
const OP_OVERHEAD_BYTES_MAX: usize = 64;

// The largest Prepare (or Vote carrying reads) a valid spec can produce must fit in a frame.
const _: () = assert!(
    OPS_PER_TXN_MAX_DEFAULT
        * (KEY_BYTES_MAX_DEFAULT + VALUE_BYTES_MAX_DEFAULT + OP_OVERHEAD_BYTES_MAX)
        + MSG_OVERHEAD_BYTES_MAX
        < wire::frame::DEFAULT_MAX_FRAME_LEN
);
// The defaults pass `Config::validate`.
const _: () = assert!(PRECOMMIT_MARGIN_MS_DEFAULT >= HEARTBEAT_INTERVAL_MS_DEFAULT);
const _: () = assert!(
    PRECOMMIT_ACK_TIMEOUT_MS_DEFAULT >= TIMEOUT_HEARTBEATS_MIN * HEARTBEAT_INTERVAL_MS_DEFAULT
);
const _: () =
    assert!(TIMEOUT_MS_MIN_DEFAULT + PRECOMMIT_MARGIN_MS_DEFAULT <= TIMEOUT_MS_MAX_DEFAULT);
const _: () = assert!(DECIDE_RESEND_MS_DEFAULT >= HEARTBEAT_INTERVAL_MS_DEFAULT);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            txns_in_flight_max: TXNS_IN_FLIGHT_MAX_DEFAULT,
            ops_per_txn_max: OPS_PER_TXN_MAX_DEFAULT,
            key_bytes_max: KEY_BYTES_MAX_DEFAULT,
            value_bytes_max: VALUE_BYTES_MAX_DEFAULT,
            timeout_ms_min: TIMEOUT_MS_MIN_DEFAULT,
            timeout_ms_max: TIMEOUT_MS_MAX_DEFAULT,
        }
    }
}

/// What the core needs to know about its cluster.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Config {
    /// Every participant a transaction may name.
    pub participants: BTreeSet<NodeId>,
    pub limits: Limits,
    /// How often `Decide{Commit}` (and, in 3PC, `PreCommit` / `StateQuery`) is re-sent
    /// to an up participant whose answer is missing (covers a request the channel could
    /// not queue, or a participant that lost it).
    pub decide_resend_ms: u64,
    /// The channels' heartbeat interval: every timeout must span several of them.
    pub heartbeat_interval_ms: u64,
    /// 3PC: votes are due this long before the participants' waiting timeout (the spec's
    /// `timeout_ms`, counted from CanCommit); all YES later than that aborts.
    pub precommit_margin_ms: u64,
    /// 3PC: PreCommit acks are awaited this long; then DoCommit goes to every YES voter.
    pub precommit_ack_timeout_ms: u64,
    /// The largest frame body our channels send and accept (`--frame-bytes-max`): the
    /// largest valid transaction's messages (a Vote carrying reads comes back to us)
    /// must fit in it. A participant may announce less; see `frame_limit.rs`.
    pub frame_bytes_max: usize,
}

impl Config {
    pub fn new(participants: impl IntoIterator<Item = NodeId>) -> Self {
        Config {
            participants: participants.into_iter().collect(),
            limits: Limits::default(),
            decide_resend_ms: DECIDE_RESEND_MS_DEFAULT,
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS_DEFAULT,
            precommit_margin_ms: PRECOMMIT_MARGIN_MS_DEFAULT,
            precommit_ack_timeout_ms: PRECOMMIT_ACK_TIMEOUT_MS_DEFAULT,
            frame_bytes_max: wire::frame::DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// Checks the timing settings against each other; `Err` names the setting to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |what: String| Err(ConfigError(what));
        let heartbeat = self.heartbeat_interval_ms;
        if heartbeat == 0 || heartbeat > TIMEOUT_LIMIT_MS {
            return fail(format!(
                "heartbeat interval {heartbeat} ms outside 1..={TIMEOUT_LIMIT_MS} ms"
            ));
        }
        let spans = TIMEOUT_HEARTBEATS_MIN * heartbeat;
        let spans_text = format!("{TIMEOUT_HEARTBEATS_MIN} heartbeats of {heartbeat} ms");
        let limits = &self.limits;
        let checks = [
            (
                "timeout_ms_min",
                limits.timeout_ms_min,
                spans,
                spans_text.clone(),
            ),
            (
                "timeout_ms_max",
                limits.timeout_ms_max,
                limits.timeout_ms_min,
                "timeout_ms_min".to_string(),
            ),
            (
                "precommit_ack_timeout_ms",
                self.precommit_ack_timeout_ms,
                spans,
                spans_text,
            ),
            (
                "precommit_margin_ms",
                self.precommit_margin_ms,
                heartbeat,
                "one heartbeat".to_string(),
            ),
            (
                "decide_resend_ms",
                self.decide_resend_ms,
                heartbeat,
                "one heartbeat".to_string(),
            ),
        ];
        for (name, value, min, min_text) in checks {
            if value < min {
                return fail(format!(
                    "{name} {value} ms must be at least {min_text} ({min} ms)"
                ));
            }
            if value > TIMEOUT_LIMIT_MS {
                return fail(format!(
                    "{name} {value} ms exceeds the limit of {TIMEOUT_LIMIT_MS} ms"
                ));
            }
        }
        if limits
            .timeout_ms_min
            .saturating_add(self.precommit_margin_ms)
            > limits.timeout_ms_max
        {
            return fail(format!(
                "timeout_ms_max {} ms leaves no valid 3pc timeout: it must be at least \
                 timeout_ms_min {} ms + precommit_margin_ms {} ms",
                limits.timeout_ms_max, limits.timeout_ms_min, self.precommit_margin_ms
            ));
        }
        if limits.txns_in_flight_max == 0 || limits.ops_per_txn_max == 0 {
            return fail("txns_in_flight_max and ops_per_txn_max must be at least 1".to_string());
        }
        if limits.key_bytes_max == 0 {
            return fail("key_bytes_max must be at least 1".to_string());
        }
        // The largest Prepare a valid spec can produce must fit in one frame.
        if limits.largest_message_bytes() >= self.frame_bytes_max {
            return fail(format!(
                "ops_per_txn_max {} x (key_bytes_max {} + value_bytes_max {}) does not fit \
                 in a {} byte frame (frame_bytes_max): lower one of them, or raise the frame limit",
                limits.ops_per_txn_max,
                limits.key_bytes_max,
                limits.value_bytes_max,
                self.frame_bytes_max
            ));
        }
        Ok(())
    }
}

impl Limits {
    /// An upper bound on the frame body of any message a spec within these limits
    /// produces (its Prepare, or a Vote carrying its reads).
    pub fn largest_message_bytes(&self) -> usize {
        self.ops_per_txn_max
            .saturating_mul(
                self.key_bytes_max
                    .saturating_add(self.value_bytes_max)
                    .saturating_add(OP_OVERHEAD_BYTES_MAX),
            )
            .saturating_add(MSG_OVERHEAD_BYTES_MAX)
    }
}

/// A configuration the core refuses, with what to change.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("invalid coordinator configuration: {0}")]
pub struct ConfigError(pub String);
