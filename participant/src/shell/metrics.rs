//! The participant's Prometheus metrics (`--metrics ADDR`), fed by the shell from what it
//! already sees (records queued and made durable, group-commit batches, channels); the
//! core stays pure. `Metrics` is the registry, shared with the HTTP responder; `Recorder`
//! is the event loop's side, which keeps the queue times that latencies need. The channel
//! metrics and the refresh throttle are both nodes' (`cli::metrics`).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cli::metrics::{NodeRegistry, PeerHelp, Refresh, gauge_count, seconds_histogram};
use foldhash::HashMap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use wire::{Channel, NodeId, Traffic};

use super::writer::WRITER_QUEUE_MAX;
use crate::core::{Lsn, TxnCounts};

/// A participant's peers are its coordinators and the other participants.
const PEER_HELP: PeerHelp = PeerHelp {
    up: "1 while the peer's (coordinator or participant) channel is up",
    phi: "Phi-accrual suspicion of the peer",
};

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

/// The registry and every metric in it.
pub struct Metrics {
    node: NodeRegistry,
    records: Family<KindLabels, Counter>,
    durable_seconds: Histogram,
    batch_records: Histogram,
    txns: Family<StateLabels, Gauge>,
}

impl Metrics {
    pub fn new(traffic: Traffic) -> Metrics {
        let records = Family::default();
        let durable_seconds = seconds_histogram();
        let batch_records = Histogram::new(exponential_buckets(1.0, 2.0, 13));
        let txns = Family::default();
        let mut registry = Registry::with_prefix("participant");
        registry.register(
            "records",
            "Durable log records by kind: votes (prepared = 2PC, waiting = 3PC), precommitted, outcomes (committed, aborted, read_only)",
            records.clone(),
        );
        registry.register(
            "record_durable_seconds",
            "From a record queued for the log to its group commit done (the wait before a vote or ack)",
            durable_seconds.clone(),
        );
        registry.register(
            "log_batch_records",
            "Records per group-commit batch (one SQLite transaction each)",
            batch_records.clone(),
        );
        registry.register(
            "txns",
            "Transactions now, by state: preparing, in_doubt (voted YES, outcome unknown), committing, terminating, blocked",
            txns.clone(),
        );
        Metrics {
            node: NodeRegistry::new(registry, traffic, PEER_HELP),
            records,
            durable_seconds,
            batch_records,
            txns,
        }
    }

    /// The Prometheus (OpenMetrics) text of every metric.
    pub fn encode(&self) -> String {
        self.node.encode()
    }
}

/// The event loop's side: counts and times what the shell does.
#[derive(Debug)]
pub struct Recorder {
    metrics: Arc<Metrics>,
    /// Records queued for the writer, oldest first (durable reports come in lsn order);
    /// as bounded as the writer's queue.
    queued: VecDeque<(Lsn, Instant)>,
    refresh: Refresh,
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
            refresh: Refresh::default(),
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
        self.refresh.pending()
    }

    pub fn log_batch(&self, records: usize) {
        self.metrics.batch_records.observe(records as f64);
    }

    /// Whether a refresh is due (at most every `cli::metrics::REFRESH_INTERVAL`).
    pub fn refresh_due(&mut self) -> bool {
        self.refresh.due()
    }

    /// The gauges (call when `refresh_due`).
    pub fn refresh(
        &self,
        counts: &TxnCounts,
        peers: &HashMap<NodeId, Channel>,
        mesh: &BTreeMap<NodeId, SocketAddr>,
    ) {
        let metrics = &self.metrics;
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
                .set(gauge_count(n));
        }
        // Every mesh peer, up or not, then every connected one (coordinators too).
        let known = mesh.keys().chain(peers.keys());
        metrics
            .node
            .refresh_peers(known.map(|peer| (*peer, peers.get(peer))));
    }
}
