//! `coordinator serve`'s settings, their validation, and the shell's errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use wire::NodeId;

use crate::core::{Config, Limits};
use crate::store::StoreError;

/// Upper bound for `--txns-in-flight-max`.
pub const TXNS_IN_FLIGHT_MAX_LIMIT: usize = 1_000_000;

/// `coordinator serve` settings.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub node_id: NodeId,
    pub listen: SocketAddr,
    pub db: PathBuf,
    pub cluster_id: String,
    pub participants: Vec<(NodeId, SocketAddr)>,
    pub heartbeat_interval: Duration,
    pub txns_in_flight_max: usize,
    /// Operations per transaction, key and text value sizes a Submit may carry.
    pub ops_per_txn_max: usize,
    pub key_bytes_max: usize,
    pub value_bytes_max: usize,
    /// Requests in flight on each participant channel before later ones queue (1: stop
    /// and wait, for comparison with pipelining); the wire's default when `None`.
    pub channel_in_flight_max: Option<usize>,
    /// Largest frame body our channels send and accept (`--frame-bytes-max`).
    pub frame_bytes_max: usize,
    /// The core's timing settings (validated with the heartbeat by `Config::validate`).
    pub timing: Timing,
    /// Cluster secret and client token (none: nobody is authenticated).
    pub auth: wire::Auth,
    /// Connection limits of the client listener.
    pub connections: wire::ConnectionLimits,
    /// How long ended decisions are kept (`--retain`, `--retain-txns`).
    pub retention: super::retention::Retention,
}

/// Timeouts of the protocols, in milliseconds (see `core::Config` for each one's role).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    pub timeout_ms_min: u64,
    pub timeout_ms_max: u64,
    pub decide_resend_ms: u64,
    pub precommit_margin_ms: u64,
    pub precommit_ack_timeout_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        let limits = Limits::default();
        Timing {
            timeout_ms_min: limits.timeout_ms_min,
            timeout_ms_max: limits.timeout_ms_max,
            decide_resend_ms: crate::core::DECIDE_RESEND_MS_DEFAULT,
            precommit_margin_ms: crate::core::PRECOMMIT_MARGIN_MS_DEFAULT,
            precommit_ack_timeout_ms: crate::core::PRECOMMIT_ACK_TIMEOUT_MS_DEFAULT,
        }
    }
}

impl ServeConfig {
    /// The core's configuration; `Err` says which setting to change.
    pub fn core_config(&self) -> Result<Config, ShellError> {
        let mut config = Config::new(self.participants.iter().map(|(id, _)| *id));
        config.limits.txns_in_flight_max = self.txns_in_flight_max;
        config.limits.ops_per_txn_max = self.ops_per_txn_max;
        config.limits.key_bytes_max = self.key_bytes_max;
        config.limits.value_bytes_max = self.value_bytes_max;
        config.limits.timeout_ms_min = self.timing.timeout_ms_min;
        config.limits.timeout_ms_max = self.timing.timeout_ms_max;
        config.decide_resend_ms = self.timing.decide_resend_ms;
        config.precommit_margin_ms = self.timing.precommit_margin_ms;
        config.precommit_ack_timeout_ms = self.timing.precommit_ack_timeout_ms;
        config.frame_bytes_max = self.frame_bytes_max;
        config.heartbeat_interval_ms =
            u64::try_from(self.heartbeat_interval.as_millis()).unwrap_or(u64::MAX);
        config
            .validate()
            .map_err(|error| ShellError::Config(error.0))?;
        Ok(config)
    }
}

#[derive(thiserror::Error, Debug)]
pub enum ShellError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// `--db` names a file in a directory that does not exist (SQLite creates the file,
    /// not its directory, and says only "unable to open database file").
    #[error("cannot create decision log {}: directory {} does not exist", db.display(), dir.display())]
    NoDbDir { db: PathBuf, dir: PathBuf },
    /// `--db` holds migrations that are not the coordinator's: a participant's database,
    /// say (the store's own text is sqlx's "migration 1 was previously applied but has
    /// been modified").
    #[error("{} is not a coordinator database: {source}", db.display())]
    ForeignDb { db: PathBuf, source: StoreError },
    #[error("the decision log writer stopped")]
    WriterGone,
    #[error("the wire event queue closed")]
    EventsGone,
}

/// Checks the settings the core does not: the participant list and the in-flight bound.
pub(super) fn validate(config: &ServeConfig) -> Result<(), ShellError> {
    if config.participants.is_empty() {
        return Err(ShellError::Config(
            "at least one --participant ID=ADDR is required".to_string(),
        ));
    }
    let mut ids: Vec<NodeId> = config.participants.iter().map(|(id, _)| *id).collect();
    ids.sort();
    if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(ShellError::Config(format!(
            "participant {} is given twice",
            pair[0]
        )));
    }
    if ids.contains(&config.node_id) {
        return Err(ShellError::Config(format!(
            "participant id {} is the coordinator's own id",
            config.node_id
        )));
    }
    if config.txns_in_flight_max == 0 || config.txns_in_flight_max > TXNS_IN_FLIGHT_MAX_LIMIT {
        return Err(ShellError::Config(format!(
            "txns in flight max {} outside 1..={TXNS_IN_FLIGHT_MAX_LIMIT}",
            config.txns_in_flight_max
        )));
    }
    Ok(())
}
