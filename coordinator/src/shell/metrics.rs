//! The coordinator's Prometheus metrics (`--metrics ADDR`), fed by the shell from what it
//! already sees (submits, decision records, results, log batches, channels); the core
//! stays pure. `Metrics` is the registry, shared with the HTTP responder; `Recorder` is
//! the event loop's side, which keeps the start times that latencies need. The channel
//! metrics and the refresh throttle are both nodes' (`cli::metrics`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cli::metrics::{NodeRegistry, PeerHelp, Refresh, gauge_count, seconds_histogram};
use foldhash::{HashMap, HashMapExt};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use wire::{Channel, NodeId, Protocol, Traffic, TxnId, TxnResult};

use crate::core::Coordinator;

/// Transactions whose start time is kept for their latency; past it (more in flight than
/// any limit allows) a transaction is counted but not timed.
pub const TIMED_TXNS_MAX: usize = 1 << 20;

/// A coordinator's peers are its participants.
const PEER_HELP: PeerHelp = PeerHelp {
    up: "1 while the participant's channel is up",
    phi: "Phi-accrual suspicion of the participant",
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TxnLabels {
    protocol: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    protocol: &'static str,
    /// `vote` (submit to decision record queued), `decide` (from there to the client's
    /// result), `total`.
    phase: &'static str,
}

/// The registry and every metric in it.
pub struct Metrics {
    node: NodeRegistry,
    txns: Family<TxnLabels, Counter>,
    phase_seconds: Family<PhaseLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    undecided: Gauge,
    decided_not_ended: Gauge,
    batch_records: Histogram,
}

impl Metrics {
    pub fn new(traffic: Traffic) -> Metrics {
        let txns = Family::default();
        let phase_seconds: Family<PhaseLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(seconds_histogram);
        let in_flight = Gauge::default();
        let undecided = Gauge::default();
        let decided_not_ended = Gauge::default();
        let batch_records = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        let mut registry = Registry::with_prefix("coordinator");
        registry.register(
            "txns",
            "Transactions ended, by protocol and outcome (committed, aborted, rejected)",
            txns.clone(),
        );
        registry.register(
            "phase_seconds",
            "Transaction phase latency: vote (submit to decision logged), decide (to the result), total",
            phase_seconds.clone(),
        );
        registry.register(
            "txns_in_flight",
            "Transactions tracked now",
            in_flight.clone(),
        );
        registry.register(
            "txns_undecided",
            "Transactions collecting votes or logging their decision",
            undecided.clone(),
        );
        registry.register(
            "txns_decided_not_ended",
            "Durable decisions some participant has not acknowledged (in doubt at participants)",
            decided_not_ended.clone(),
        );
        registry.register(
            "log_batch_records",
            "Records per group-commit batch (one SQLite transaction each)",
            batch_records.clone(),
        );
        Metrics {
            node: NodeRegistry::new(registry, traffic, PEER_HELP),
            txns,
            phase_seconds,
            in_flight,
            undecided,
            decided_not_ended,
            batch_records,
        }
    }

    /// The Prometheus (OpenMetrics) text of every metric.
    pub fn encode(&self) -> String {
        self.node.encode()
    }
}

struct Timed {
    protocol: Protocol,
    submitted: Instant,
    decided: Option<Instant>,
}

/// The event loop's side: counts and times what the shell does.
pub struct Recorder {
    metrics: Arc<Metrics>,
    timed: HashMap<TxnId, Timed>,
    refresh: Refresh,
}

impl Recorder {
    pub fn new(metrics: Arc<Metrics>) -> Recorder {
        Recorder {
            metrics,
            timed: HashMap::new(),
            refresh: Refresh::default(),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn submitted(&mut self, txn: TxnId, protocol: Protocol) {
        if self.timed.len() < TIMED_TXNS_MAX {
            let submitted = Instant::now();
            self.timed.insert(
                txn,
                Timed {
                    protocol,
                    submitted,
                    decided: None,
                },
            );
        }
    }

    /// The transaction's decision record was queued for the log.
    pub fn decided(&mut self, txn: TxnId) {
        if let Some(timed) = self.timed.get_mut(&txn) {
            let now = Instant::now();
            timed.decided = Some(now);
            self.metrics
                .phase_seconds
                .get_or_create(&PhaseLabels {
                    protocol: timed.protocol.as_str(),
                    phase: "vote",
                })
                .observe(now.duration_since(timed.submitted).as_secs_f64());
        }
    }

    /// The client's result went out (or its client was gone).
    pub fn finished(&mut self, txn: TxnId, result: &TxnResult) {
        let outcome = match result {
            TxnResult::Committed { .. } => "committed",
            TxnResult::Aborted { .. } => "aborted",
            TxnResult::Rejected { .. } => "rejected",
        };
        let Some(timed) = self.timed.remove(&txn) else {
            let labels = TxnLabels {
                protocol: "unknown",
                outcome,
            };
            self.metrics.txns.get_or_create(&labels).inc();
            return;
        };
        let protocol = timed.protocol.as_str();
        self.metrics
            .txns
            .get_or_create(&TxnLabels { protocol, outcome })
            .inc();
        let now = Instant::now();
        let observe = |phase, since: Instant| {
            self.metrics
                .phase_seconds
                .get_or_create(&PhaseLabels { protocol, phase })
                .observe(now.duration_since(since).as_secs_f64());
        };
        if let Some(decided) = timed.decided {
            observe("decide", decided);
        }
        observe("total", timed.submitted);
    }

    /// When a skipped refresh falls due, if one was skipped: an idle loop wakes for it, so
    /// the gauges catch up with the last work.
    pub fn refresh_pending(&self) -> Option<Duration> {
        self.refresh.pending()
    }

    pub fn log_batch(&self, records: usize) {
        self.metrics.batch_records.observe(records as f64);
    }

    /// The gauges, at most every `cli::metrics::REFRESH_INTERVAL` (the loop calls it on
    /// every wake).
    pub fn refresh<'a>(
        &mut self,
        core: &Coordinator,
        peers: impl Iterator<Item = (NodeId, Option<&'a Channel>)>,
    ) {
        if !self.refresh.due() {
            return;
        }
        let metrics = &self.metrics;
        metrics.in_flight.set(gauge_count(core.txns_in_flight()));
        metrics.undecided.set(gauge_count(core.undecided().count()));
        metrics
            .decided_not_ended
            .set(gauge_count(core.decided_not_ended().count()));
        metrics.node.refresh_peers(peers);
    }
}
