//! The participant core's limits and timings, validated once at startup.

/// Upper bound for `ops_per_txn_max`: log entries number their op with a `u32`, and a
/// transaction this large would not fit a frame anyway.
pub const OPS_PER_TXN_LIMIT: usize = 1_000_000;
/// Upper bound for the decision query backoff: an in-doubt participant asks at least hourly.
pub const DECISION_QUERY_BACKOFF_LIMIT_MS: u64 = 60 * 60 * 1000;
/// Every 3PC timing is bounded by `TIMEOUT_LIMIT_MS`; the 3PC timeouts and the
/// termination round must each span `TIMEOUT_HEARTBEATS_MIN` heartbeat intervals, so that
/// a live peer is never taken for silent (a heartbeat lost or late is not yet a failure)
/// and a dead one is usually reported down before they fire.
pub use wire::limits::{TIMEOUT_HEARTBEATS_MIN, TIMEOUT_LIMIT_MS};

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Config {
    /// Transactions holding locks (voting, in doubt or committing); beyond it a Prepare
    /// gets NO "participant overloaded".
    pub active_txns_max: usize,
    /// Finished transactions remembered in memory to answer duplicates without the store.
    pub finished_txns_max: usize,
    pub ops_per_txn_max: usize,
    pub key_bytes_max: usize,
    /// For text values (integers are 8 bytes).
    pub value_bytes_max: usize,
    /// First `DecisionQuery` this long after voting YES (or after recovery)...
    pub decision_query_backoff_min_ms: u64,
    /// ...then doubling up to this.
    pub decision_query_backoff_max_ms: u64,
    /// 3PC: the `waiting` timeout is the Prepare's `timeout_ms` (the coordinator's view of
    /// it), raised to at least `waiting_timeout_min_ms` (waiting longer is safe). Past it
    /// without a PreCommit the termination protocol starts.
    pub waiting_timeout_min_ms: u64,
    /// A Prepare asking for more gets a NO vote: clamping it down would make this
    /// participant give up before the coordinator's PreCommit deadline.
    pub waiting_timeout_max_ms: u64,
    /// 3PC: `precommitted` this long without DoCommit starts the termination protocol.
    pub precommitted_timeout_ms: u64,
    /// 3PC termination protocol: how long the leader waits for states (and PreCommit
    /// Acks), and how long a follower waits for the leader before electing again.
    pub termination_round_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            active_txns_max: 10_000,
            finished_txns_max: 100_000,
            ops_per_txn_max: wire::limits::OPS_PER_TXN_MAX_DEFAULT,
            key_bytes_max: wire::limits::KEY_BYTES_MAX_DEFAULT,
            value_bytes_max: wire::limits::VALUE_BYTES_MAX_DEFAULT,
            decision_query_backoff_min_ms: 200,
            decision_query_backoff_max_ms: 5_000,
            waiting_timeout_min_ms: 500,
            waiting_timeout_max_ms: 10 * 60 * 1000,
            precommitted_timeout_ms: 2_000,
            termination_round_ms: 500,
        }
    }
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("invalid participant configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Checks the fields on their own and against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("active_txns_max", self.active_txns_max as u64),
            ("finished_txns_max", self.finished_txns_max as u64),
            ("ops_per_txn_max", self.ops_per_txn_max as u64),
            ("key_bytes_max", self.key_bytes_max as u64),
            ("value_bytes_max", self.value_bytes_max as u64),
            (
                "decision_query_backoff_min_ms",
                self.decision_query_backoff_min_ms,
            ),
            ("waiting_timeout_min_ms", self.waiting_timeout_min_ms),
            ("precommitted_timeout_ms", self.precommitted_timeout_ms),
            ("termination_round_ms", self.termination_round_ms),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError(format!("{name} must be at least 1")));
        }
        if self.ops_per_txn_max > OPS_PER_TXN_LIMIT {
            return Err(ConfigError(format!(
                "ops_per_txn_max {} exceeds {OPS_PER_TXN_LIMIT}",
                self.ops_per_txn_max
            )));
        }
        if self.decision_query_backoff_min_ms > self.decision_query_backoff_max_ms {
            return Err(ConfigError(format!(
                "decision_query_backoff_min_ms {} exceeds decision_query_backoff_max_ms {}",
                self.decision_query_backoff_min_ms, self.decision_query_backoff_max_ms
            )));
        }
        if self.decision_query_backoff_max_ms > DECISION_QUERY_BACKOFF_LIMIT_MS {
            return Err(ConfigError(format!(
                "decision_query_backoff_max_ms {} exceeds {DECISION_QUERY_BACKOFF_LIMIT_MS}",
                self.decision_query_backoff_max_ms
            )));
        }
        if self.waiting_timeout_min_ms > self.waiting_timeout_max_ms {
            return Err(ConfigError(format!(
                "waiting_timeout_min_ms {} exceeds waiting_timeout_max_ms {}",
                self.waiting_timeout_min_ms, self.waiting_timeout_max_ms
            )));
        }
        let bounded = [
            ("waiting_timeout_max_ms", self.waiting_timeout_max_ms),
            ("precommitted_timeout_ms", self.precommitted_timeout_ms),
            ("termination_round_ms", self.termination_round_ms),
        ];
        if let Some((name, value)) = bounded.iter().find(|(_, value)| *value > TIMEOUT_LIMIT_MS) {
            return Err(ConfigError(format!(
                "{name} {value} exceeds {TIMEOUT_LIMIT_MS}"
            )));
        }
        Ok(())
    }

    /// [`Config::validate`], and the 3PC timings against the heartbeat interval the
    /// shell runs with: each must span `TIMEOUT_HEARTBEATS_MIN` heartbeats.
    pub fn validate_for_heartbeat(&self, heartbeat_interval_ms: u64) -> Result<(), ConfigError> {
        self.validate()?;
        let floor_ms = heartbeat_interval_ms.saturating_mul(TIMEOUT_HEARTBEATS_MIN);
        let timings = [
            ("waiting_timeout_min_ms", self.waiting_timeout_min_ms),
            ("precommitted_timeout_ms", self.precommitted_timeout_ms),
            ("termination_round_ms", self.termination_round_ms),
        ];
        if let Some((name, value)) = timings.iter().find(|(_, value)| *value < floor_ms) {
            return Err(ConfigError(format!(
                "{name} {value} is shorter than {TIMEOUT_HEARTBEATS_MIN} heartbeat intervals \
                 ({floor_ms} ms at {heartbeat_interval_ms} ms per heartbeat)"
            )));
        }
        Ok(())
    }

    /// The `waiting` timeout for a 3PC Prepare that asked for `requested_ms`.
    pub fn waiting_timeout_ms(&self, requested_ms: u64) -> u64 {
        requested_ms.clamp(self.waiting_timeout_min_ms, self.waiting_timeout_max_ms)
    }
}
