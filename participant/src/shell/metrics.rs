//! The participant's Prometheus metrics (`--metrics ADDR`), fed by the shell from what it
//! already sees (records queued and made durable, group-commit batches, channels); the
//! core stays pure. `Metrics` is the registry, shared with the HTTP responder; `Recorder`
//! is the event loop's side, which keeps the queue times that latencies need.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use wire::{Channel, NodeId, Traffic, TrafficCounts};

use super::writer::WRITER_QUEUE_MAX;
use crate::core::{Lsn, TxnCounts};

/// Gauges that need a walk over the core's transactions are refreshed at most this often.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    /// The record: `prepared` (2PC YES), `waiting` (3PC YES), `precommitted`,
    /// `committed`, `aborted`, `read_only`.
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

/// The registry and every metric in it.
pub struct Metrics {
    registry: Registry,
    records: Family<KindLabels, Counter>,
    durable_seconds: Histogram,
    batch_records: Histogram,
    txns: Family<StateLabels, Gauge>,
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
            registry: Registry::with_prefix("participant"),
            records: Family::default(),
            // 0.25 ms to about 8 s.
            durable_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 16)),
            batch_records: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            txns: Family::default(),
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
            "records",
            "Durable log records by kind: votes (prepared = 2PC, waiting = 3PC), precommitted, outcomes (committed, aborted, read_only)",
            metrics.records.clone(),
        );
        registry.register(
            "record_durable_seconds",
            "From a record queued for the log to its group commit done (the wait before a vote or ack)",
            metrics.durable_seconds.clone(),
        );
        registry.register(
            "log_batch_records",
            "Records per group-commit batch (one SQLite transaction each)",
            metrics.batch_records.clone(),
        );
        registry.register(
            "txns",
            "Transactions now, by state: preparing, in_doubt (voted YES, outcome unknown), committing, terminating, blocked",
            metrics.txns.clone(),
        );
        registry.register(
            "peer_up",
            "1 while the peer's (coordinator or participant) channel is up",
            metrics.peer_up.clone(),
        );
        registry.register(
            "peer_phi",
            "Phi-accrual suspicion of the peer",
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

/// The event loop's side: counts and times what the shell does.
#[derive(Debug)]
pub struct Recorder {
    metrics: Arc<Metrics>,
    /// Records queued for the writer, oldest first (durable reports come in lsn order);
    /// as bounded as the writer's queue.
    queued: VecDeque<(Lsn, Instant)>,
    refreshed: Option<Instant>,
    /// A refresh was skipped since the last one.
    pending: bool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Recorder {
    pub fn new(metrics: Arc<Metrics>) -> Recorder {
        Recorder {
            metrics,
            queued: VecDeque::new(),
            refreshed: None,
            pending: false,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn queued(&mut self, lsn: Lsn) {
        if self.queued.len() <= WRITER_QUEUE_MAX {
            self.queued.push_back((lsn, Instant::now()));
        }
    }

    pub fn durable(&mut self, lsn: Lsn, kind: &'static str) {
        self.metrics
            .records
            .get_or_create(&KindLabels { kind })
            .inc();
        while let Some(&(queued, at)) = self.queued.front() {
            if queued > lsn {
                break;
            }
            self.queued.pop_front();
            if queued == lsn {
                self.metrics
                    .durable_seconds
                    .observe(at.elapsed().as_secs_f64());
            }
        }
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

    /// Whether a refresh is due (at most every `REFRESH_INTERVAL`).
    pub fn refresh_due(&mut self) -> bool {
        let now = Instant::now();
        if self
            .refreshed
            .is_some_and(|at| now.duration_since(at) < REFRESH_INTERVAL)
        {
            self.pending = true;
            return false;
        }
        self.refreshed = Some(now);
        self.pending = false;
        true
    }

    /// The gauges (call when `refresh_due`).
    pub fn refresh(
        &self,
        counts: &TxnCounts,
        peers: &HashMap<NodeId, Channel>,
        mesh: &BTreeMap<NodeId, SocketAddr>,
    ) {
        let metrics = &self.metrics;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        for (state, n) in [
            ("preparing", counts.preparing),
            ("in_doubt", counts.in_doubt),
            ("committing", counts.committing),
            ("terminating", counts.terminating),
            ("blocked", counts.blocked),
        ] {
            metrics
                .txns
                .get_or_create(&StateLabels { state })
                .set(count(n));
        }
        let known = mesh.keys().chain(peers.keys());
        for peer in known {
            let labels = PeerLabels { peer: peer.0 };
            let channel = peers.get(peer);
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
