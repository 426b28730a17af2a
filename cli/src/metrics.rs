//! What both nodes' Prometheus metrics share, so their channel metrics cannot drift: the
//! per-peer gauges and the traffic counters of every channel (`ChannelMetrics`, caught up
//! with the wire's totals at each scrape), the registry they end (`NodeRegistry`), the
//! throttle on gauge refreshes (`Refresh`) and the latency buckets. Each shell's
//! `metrics.rs` keeps only what its node alone counts.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use wire::{Channel, NodeId, Traffic, TrafficCounts};

/// Gauges that need a walk over the core's transactions are refreshed at most this often.
/// The walk visits every remembered transaction (tens of thousands under load): at 100 ms
/// it was about 1.5% of a participant's CPU at 64 in flight; a scrape every few seconds
/// loses nothing at 1 s.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

/// A latency histogram in seconds: 0.25 ms to about 8 s.
pub fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// A count for a gauge (saturating: a gauge is an `i64`).
pub fn gauge_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The help texts of the per-peer gauges, which say what the node's peers are.
#[derive(Clone, Copy, Debug)]
pub struct PeerHelp {
    /// Of `peer_up`.
    pub up: &'static str,
    /// Of `peer_phi`.
    pub phi: &'static str,
}

/// A node's registry: its own metrics, then the channel metrics every node has.
pub struct NodeRegistry {
    registry: Registry,
    channels: ChannelMetrics,
}

impl NodeRegistry {
    /// `registry` holds the node's own metrics already; the channels' are registered after
    /// them, so they come last in the text (as they always have).
    pub fn new(mut registry: Registry, traffic: Traffic, peers: PeerHelp) -> NodeRegistry {
        let channels = ChannelMetrics::register(&mut registry, traffic, peers);
        NodeRegistry { registry, channels }
    }

    /// The Prometheus (OpenMetrics) text of every metric, the traffic counters caught up
    /// first.
    pub fn encode(&self) -> String {
        self.channels.record_traffic();
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            let _ = writeln!(text, "# encoding failed");
        }
        text
    }

    /// The per-peer gauges: every peer given, `None` for one whose channel is down.
    pub fn refresh_peers<'a>(
        &self,
        peers: impl IntoIterator<Item = (NodeId, Option<&'a Channel>)>,
    ) {
        let channels = &self.channels;
        for (peer, channel) in peers {
            let labels = PeerLabels { peer: peer.0 };
            channels
                .peer_up
                .get_or_create(&labels)
                .set(i64::from(channel.is_some()));
            let phi = channel.map_or(0.0, |channel| channel.liveness().phi);
            channels.peer_phi.get_or_create(&labels).set(phi);
        }
    }
}

/// The metrics of a node's channels: its peers' state and the wire's traffic counters.
struct ChannelMetrics {
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

impl ChannelMetrics {
    fn register(registry: &mut Registry, traffic: Traffic, peers: PeerHelp) -> ChannelMetrics {
        let metrics = ChannelMetrics {
            peer_up: Family::default(),
            peer_phi: Family::default(),
            frames: Family::default(),
            bytes: Family::default(),
            frames_rejected: Counter::default(),
            handshakes_rejected: Counter::default(),
            traffic,
            traffic_seen: Mutex::new(TrafficCounts::default()),
        };
        registry.register("peer_up", peers.up, metrics.peer_up.clone());
        registry.register("peer_phi", peers.phi, metrics.peer_phi.clone());
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

    /// Grows each counter by what the wire counted since the last scrape.
    fn record_traffic(&self) {
        let now = self.traffic.counts();
        let Ok(mut seen) = self.traffic_seen.lock() else {
            return;
        };
        let grow = |counter: &Counter, now: u64, seen: u64| {
            counter.inc_by(now.saturating_sub(seen));
        };
        let direction = |direction| DirectionLabels { direction };
        grow(
            &self.frames.get_or_create(&direction("in")),
            now.frames_in,
            seen.frames_in,
        );
        grow(
            &self.frames.get_or_create(&direction("out")),
            now.frames_out,
            seen.frames_out,
        );
        grow(
            &self.bytes.get_or_create(&direction("in")),
            now.bytes_in,
            seen.bytes_in,
        );
        grow(
            &self.bytes.get_or_create(&direction("out")),
            now.bytes_out,
            seen.bytes_out,
        );
        grow(
            &self.frames_rejected,
            now.frames_rejected,
            seen.frames_rejected,
        );
        grow(
            &self.handshakes_rejected,
            now.handshakes_rejected,
            seen.handshakes_rejected,
        );
        *seen = now;
    }
}

/// The event loop's throttle on gauge refreshes: at most every `REFRESH_INTERVAL`, and a
/// skipped one remembered so an idle loop can wake for it.
#[derive(Debug, Default)]
pub struct Refresh {
    refreshed: Option<Instant>,
    /// A refresh was skipped since the last one.
    pending: bool,
}

impl Refresh {
    /// When a skipped refresh falls due, if one was skipped: an idle loop wakes for it, so
    /// the gauges catch up with the last work.
    pub fn pending(&self) -> Option<Duration> {
        let refreshed = self.refreshed?;
        self.pending
            .then(|| REFRESH_INTERVAL.saturating_sub(refreshed.elapsed()))
    }

    /// Whether a refresh is due now; if not, it is remembered as skipped.
    pub fn due(&mut self) -> bool {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: PeerHelp = PeerHelp {
        up: "Up help",
        phi: "Phi help",
    };

    #[test]
    fn the_channel_metrics_follow_the_nodes_own_with_its_help_texts() {
        let mut registry = Registry::with_prefix("node");
        let own = Counter::<u64>::default();
        registry.register("own", "The node's own", own.clone());
        own.inc();
        let node = NodeRegistry::new(registry, Traffic::default(), HELP);
        node.refresh_peers([(NodeId(7), None)]);
        let text = node.encode();
        let at = |line: &str| text.find(line).unwrap_or_else(|| panic!("{line}:\n{text}"));
        assert!(at("node_own_total 1") < at("# HELP node_peer_up Up help."));
        assert!(at("node_peer_up{peer=\"7\"} 0") < at("# HELP node_peer_phi Phi help."));
        assert!(at("node_peer_phi{peer=\"7\"} 0.0") < at("node_frames_total{direction=\"in\"} 0"));
        assert!(at("node_bytes_total{direction=\"out\"} 0") < at("node_frames_rejected_total 0"));
        at("node_handshakes_rejected_total 0");
    }

    #[test]
    fn a_refresh_inside_the_interval_is_skipped_and_then_pending() {
        let mut refresh = Refresh::default();
        assert_eq!(refresh.pending(), None);
        assert!(refresh.due(), "the first refresh is due at once");
        // The clock pinned by the last refresh's time: one in the future is always
        // within the interval, one an interval ago never is.
        refresh.refreshed = Some(Instant::now() + Duration::from_secs(60));
        assert!(!refresh.due());
        assert_eq!(refresh.pending(), Some(REFRESH_INTERVAL));
        refresh.refreshed = Instant::now().checked_sub(REFRESH_INTERVAL);
        assert!(refresh.due());
        assert_eq!(refresh.pending(), None);
    }
}
