//! The coordinator's Prometheus metrics (`--metrics ADDR`), fed by the shell from what it
//! already sees (submits, decision records, results, log batches, channels); the core
//! stays pure. `Metrics` is the registry, shared with the HTTP responder; `Recorder` is
//! the event loop's side, which keeps the start times that latencies need.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use wire::{Channel, NodeId, Protocol, Traffic, TrafficCounts, TxnId, TxnResult};

use crate::core::Coordinator;

/// Transactions whose start time is kept for their latency; past it (more in flight than
/// any limit allows) a transaction is counted but not timed.
pub const TIMED_TXNS_MAX: usize = 1 << 20;
/// Gauges that need a walk over the core's transactions are refreshed at most this often.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(100);

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

fn seconds_buckets() -> Histogram {
    // 0.25 ms to about 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The registry and every metric in it.
pub struct Metrics {
    registry: Registry,
    txns: Family<TxnLabels, Counter>,
    phase_seconds: Family<PhaseLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    undecided: Gauge,
    decided_not_ended: Gauge,
    batch_records: Histogram,
    peer_up: Family<PeerLabels, Gauge>,
    peer_phi: Family<PeerLabels, Gauge<f64, AtomicU64>>,
    frames: Family<DirectionLabels, Counter>,
    bytes: Family<DirectionLabels, Counter>,
    frames_rejected: Counter,
    handshakes_rejected: Counter,
    /// The wire's counters of this node's channels, read at each scrape.
    traffic: Traffic,
    /// Their values at the last scrape (they are totals; ours grow by the delta).
    traffic_seen: Mutex<TrafficCounts>,
}

impl Metrics {
    pub fn new(traffic: Traffic) -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("coordinator"),
            txns: Family::default(),
            phase_seconds: Family::new_with_constructor(seconds_buckets),
            in_flight: Gauge::default(),
            undecided: Gauge::default(),
            decided_not_ended: Gauge::default(),
            batch_records: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            peer_up: Family::default(),
            peer_phi: Family::default(),
            frames: Family::default(),
            bytes: Family::default(),
            frames_rejected: Counter::default(),
            handshakes_rejected: Counter::default(),
            traffic,
            traffic_seen: Mutex::new(TrafficCounts::default()),
        };
        let registry = &mut metrics.registry;
        registry.register(
            "txns",
            "Transactions ended, by protocol and outcome (committed, aborted, rejected)",
            metrics.txns.clone(),
        );
        registry.register(
            "phase_seconds",
            "Transaction phase latency: vote (submit to decision logged), decide (to the result), total",
            metrics.phase_seconds.clone(),
        );
        registry.register(
            "txns_in_flight",
            "Transactions tracked now",
            metrics.in_flight.clone(),
        );
        registry.register(
            "txns_undecided",
            "Transactions collecting votes or logging their decision",
            metrics.undecided.clone(),
        );
        registry.register(
            "txns_decided_not_ended",
            "Durable decisions some participant has not acknowledged (in doubt at participants)",
            metrics.decided_not_ended.clone(),
        );
        registry.register(
            "log_batch_records",
            "Records per group-commit batch (one SQLite transaction each)",
            metrics.batch_records.clone(),
        );
        registry.register(
            "peer_up",
            "1 while the participant's channel is up",
            metrics.peer_up.clone(),
        );
        registry.register(
            "peer_phi",
            "Phi-accrual suspicion of the participant",
            metrics.peer_phi.clone(),
        );
        registry.register(
            "frames",
            "Frames on every channel, by direction",
            metrics.frames.clone(),
        );
        registry.register(
            "bytes",
            "Bytes on every channel, by direction",
            metrics.bytes.clone(),
        );
        registry.register(
            "frames_rejected",
            "Frames that closed their connection (undecodable, too large, out of sequence)",
            metrics.frames_rejected.clone(),
        );
        registry.register(
            "handshakes_rejected",
            "Handshakes that failed: incoming connections refused, malformed or timed out, and dials refused by either side",
            metrics.handshakes_rejected.clone(),
        );
        metrics
    }

    /// The Prometheus (OpenMetrics) text of every metric.
    pub fn encode(&self) -> String {
        record_traffic(self, self.traffic.counts());
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            let _ = writeln!(text, "# encoding failed");
        }
        text
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
    refreshed: Option<Instant>,
    /// A refresh was skipped since the last one.
    pending: bool,
}

impl Recorder {
    pub fn new(metrics: Arc<Metrics>) -> Recorder {
        Recorder {
            metrics,
            timed: HashMap::new(),
            refreshed: None,
            pending: false,
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
        let refreshed = self.refreshed?;
        self.pending
            .then(|| REFRESH_INTERVAL.saturating_sub(refreshed.elapsed()))
    }

    pub fn log_batch(&self, records: usize) {
        self.metrics.batch_records.observe(records as f64);
    }

    /// The gauges, at most every `REFRESH_INTERVAL` (the loop calls it on every wake).
    pub fn refresh<'a>(
        &mut self,
        core: &Coordinator,
        peers: impl Iterator<Item = (NodeId, Option<&'a Channel>)>,
    ) {
        let now = Instant::now();
        if self
            .refreshed
            .is_some_and(|at| now.duration_since(at) < REFRESH_INTERVAL)
        {
            self.pending = true;
            return;
        }
        self.refreshed = Some(now);
        self.pending = false;
        let metrics = &self.metrics;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        metrics.in_flight.set(count(core.txns_in_flight()));
        metrics.undecided.set(count(core.undecided().count()));
        metrics
            .decided_not_ended
            .set(count(core.decided_not_ended().count()));
        for (peer, channel) in peers {
            let labels = PeerLabels { peer: peer.0 };
            metrics
                .peer_up
                .get_or_create(&labels)
                .set(i64::from(channel.is_some()));
            let phi = channel.map_or(0.0, |channel| channel.liveness().phi);
            metrics.peer_phi.get_or_create(&labels).set(phi);
        }
    }
}

fn record_traffic(metrics: &Metrics, now: TrafficCounts) {
    let Ok(mut seen) = metrics.traffic_seen.lock() else {
        return;
    };
    let grow = |counter: &Counter, now: u64, seen: u64| {
        counter.inc_by(now.saturating_sub(seen));
    };
    let direction = |direction| DirectionLabels { direction };
    grow(
        &metrics.frames.get_or_create(&direction("in")),
        now.frames_in,
        seen.frames_in,
    );
    grow(
        &metrics.frames.get_or_create(&direction("out")),
        now.frames_out,
        seen.frames_out,
    );
    grow(
        &metrics.bytes.get_or_create(&direction("in")),
        now.bytes_in,
        seen.bytes_in,
    );
    grow(
        &metrics.bytes.get_or_create(&direction("out")),
        now.bytes_out,
        seen.bytes_out,
    );
    grow(
        &metrics.frames_rejected,
        now.frames_rejected,
        seen.frames_rejected,
    );
    grow(
        &metrics.handshakes_rejected,
        now.handshakes_rejected,
        seen.handshakes_rejected,
    );
    *seen = now;
}
