//! The participant core's limits and timings, validated once at startup.

/// Upper bound for `ops_per_txn_max`: log entries number their op with a `u32`, and a
/// transaction this large would not fit a frame anyway.
pub const OPS_PER_TXN_LIMIT: usize = 1_000_000;
/// Upper bound for the decision query backoff: an in-doubt participant asks at least hourly.
pub const DECISION_QUERY_BACKOFF_LIMIT_MS: u64 = 60 * 60 * 1000;

#[derive(Clone, PartialEq, Eq, Debug)]
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            active_txns_max: 10_000,
            finished_txns_max: 100_000,
            ops_per_txn_max: 1_000,
            key_bytes_max: 1_024,
            value_bytes_max: 64 * 1024,
            decision_query_backoff_min_ms: 200,
            decision_query_backoff_max_ms: 5_000,
        }
    }
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("invalid participant configuration: {0}")]
pub struct ConfigError(String);

impl Config {
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
        Ok(())
    }
}
