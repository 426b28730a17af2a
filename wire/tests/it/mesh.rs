//! The participant mesh over loopback: a pair dialling each other at once ends with one
//! connection dialled by the larger id; three nodes form a full mesh; a restarted peer is
//! reconnected; the acceptor drops only participant connections from smaller ids.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wire::runtime::TcpListener;
use wire::{
    Channel, ChannelConfig, ChannelEvent, EventReceiver, Frame, Listener, MeshHandle, NodeId, Role,
    ServeHandle, event_queue, mesh,
};

use wire::runtime;

use crate::support::*;

/// Runs of the simultaneous-start race, and the seed of their start delays.
const RACE_RUNS: usize = 30;
const RACE_SEED: u64 = 0x3_9c;
/// Start delays are drawn from `0..=START_SPREAD_MS`.
const START_SPREAD_MS: u64 = 20;
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(20);
/// Long enough that a loaded machine does not declare a live peer dead mid-test.
const DEAD_AFTER_HEARTBEATS: u32 = 250;
/// A few heartbeats: time for a stray connection or event to show up before we check.
const SETTLE: Duration = Duration::from_millis(100);
/// A reconnect backoff far beyond `WAIT`: a redial within `WAIT` can only be a dial-back.
const SLOW_BACKOFF: Duration = Duration::from_secs(600);
const EVENT_QUEUE_LEN: usize = 64;
/// Between attempts to bind a restarted node's port again.
const REBIND_PAUSE: Duration = Duration::from_millis(10);

fn mesh_config(id: u32) -> ChannelConfig {
    let mut config = config(id, Role::Participant);
    config.heartbeat_interval = HEARTBEAT_INTERVAL;
    config.dead_after_heartbeats = DEAD_AFTER_HEARTBEATS;
    config
}

async fn bind(addr: SocketAddr) -> Listener {
    Listener::bind(addr).await.unwrap()
}

/// Binds `addr` again after a restart: the old listening socket closes asynchronously.
async fn rebind(addr: SocketAddr) -> Listener {
    let bound = async {
        loop {
            match Listener::bind(addr).await {
                Ok(listener) => return listener,
                Err(_) => runtime::sleep(REBIND_PAUSE).await,
            }
        }
    };
    runtime::timeout(WAIT, bound)
        .await
        .expect("port not free again in time")
}

/// One participant as a shell would run it: one listener for every role, the mesh, and
/// one event queue.
struct Node {
    id: NodeId,
    addr: SocketAddr,
    events: EventReceiver,
    serve: ServeHandle,
    _mesh: MeshHandle,
}

impl Node {
    fn start(
        listener: Listener,
        config: ChannelConfig,
        peers: &BTreeMap<NodeId, SocketAddr>,
    ) -> Node {
        let (id, addr) = (config.node_id, listener.local_addr());
        let config = Arc::new(config);
        let (events, events_rx) = event_queue(EVENT_QUEUE_LEN);
        // The whole cluster map, our own id included: the mesh skips it.
        let mesh = mesh(peers.clone(), config.clone(), events.clone());
        let serve =
            listener.serve_mesh(config, vec![Role::Coordinator, Role::Client], events, &mesh);
        Node {
            id,
            addr,
            events: events_rx,
            serve,
            _mesh: mesh,
        }
    }

    /// Stops listening and meshing: every channel of this node closes.
    fn stop(self) {
        self.serve.stop();
    }

    /// The next events must be exactly one `Up` per peer in `peers` (any order), each a
    /// participant channel; returns the channels by peer.
    async fn expect_ups(&self, peers: &[NodeId]) -> BTreeMap<NodeId, Channel> {
        let mut up = BTreeMap::new();
        while up.len() < peers.len() {
            match next(&self.events).await {
                ChannelEvent::Up { channel } => {
                    let peer = channel.peer();
                    assert!(peers.contains(&peer), "node {}: Up from {peer}", self.id);
                    assert_eq!(channel.peer_role(), Role::Participant);
                    assert!(
                        up.insert(peer, channel).is_none(),
                        "node {}: second Up from {peer}",
                        self.id
                    );
                }
                other => panic!("node {}: expected Up, got {other:?}", self.id),
            }
        }
        up
    }

    /// The next event must be `Down` for `channel`.
    async fn expect_down(&self, channel: &Channel) {
        match next(&self.events).await {
            ChannelEvent::Down { peer, epoch, .. } => {
                assert_eq!(
                    (peer, epoch),
                    (channel.peer(), channel.epoch()),
                    "node {}",
                    self.id
                )
            }
            other => panic!(
                "node {}: expected Down of {}, got {other:?}",
                self.id,
                channel.peer()
            ),
        }
    }

    fn expect_quiet(&self) {
        if let Some(event) = self.events.try_recv() {
            panic!("node {}: unexpected event {event:?}", self.id);
        }
    }
}

/// `small_end` and `large_end` are the two ends of one live TCP connection, dialled by
/// the larger id to the smaller id's listen address.
fn assert_one_connection_dialled_by_larger(small: &Node, small_end: &Channel, large_end: &Channel) {
    assert!(!small_end.is_closed() && !large_end.is_closed());
    assert_eq!(
        large_end.peer_addr(),
        small.addr,
        "not dialled by the larger id"
    );
    assert_eq!(small_end.peer_addr(), large_end.local_addr());
    assert_eq!(small_end.local_addr(), large_end.peer_addr());
}

async fn start_all(
    listeners: Vec<Listener>,
    peers: &BTreeMap<NodeId, SocketAddr>,
    rng: &mut StdRng,
) -> Vec<Node> {
    let starts = listeners
        .into_iter()
        .zip(peers.keys())
        .map(|(listener, id)| {
            let delay = Duration::from_millis(rng.random_range(0..=START_SPREAD_MS));
            async move {
                runtime::sleep(delay).await;
                Node::start(listener, mesh_config(id.0), peers)
            }
        });
    futures::future::join_all(starts).await
}

async fn bind_cluster(size: u32) -> (Vec<Listener>, BTreeMap<NodeId, SocketAddr>) {
    let mut listeners = Vec::new();
    let mut peers = BTreeMap::new();
    for id in 1..=size {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await;
        peers.insert(NodeId(id), listener.local_addr());
        listeners.push(listener);
    }
    (listeners, peers)
}

#[test]
fn a_pair_dialling_each_other_at_once_keeps_one_connection_dialled_by_the_larger_id() {
    run(async {
        let mut rng = StdRng::seed_from_u64(RACE_SEED);
        for _ in 0..RACE_RUNS {
            let (listeners, peers) = bind_cluster(2).await;
            let nodes = start_all(listeners, &peers, &mut rng).await;
            let (small, large) = (&nodes[0], &nodes[1]);
            let small_end = small
                .expect_ups(&[large.id])
                .await
                .remove(&large.id)
                .unwrap();
            let large_end = large
                .expect_ups(&[small.id])
                .await
                .remove(&small.id)
                .unwrap();
            runtime::sleep(SETTLE).await;
            small.expect_quiet();
            large.expect_quiet();
            assert_one_connection_dialled_by_larger(small, &small_end, &large_end);
            for node in nodes {
                node.stop();
            }
        }
    });
}

#[test]
fn three_participants_form_a_full_mesh() {
    run(async {
        let mut rng = StdRng::seed_from_u64(RACE_SEED);
        let (listeners, peers) = bind_cluster(3).await;
        let nodes = start_all(listeners, &peers, &mut rng).await;
        let ids: Vec<NodeId> = peers.keys().copied().collect();
        let mut ends = Vec::new();
        for node in &nodes {
            let others: Vec<NodeId> = ids.iter().copied().filter(|id| *id != node.id).collect();
            ends.push(node.expect_ups(&others).await);
        }
        runtime::sleep(SETTLE).await;
        for node in &nodes {
            node.expect_quiet();
        }
        let mut connections = Vec::new();
        for (small, large) in [(0, 1), (0, 2), (1, 2)] {
            let small_end = &ends[small][&nodes[large].id];
            let large_end = &ends[large][&nodes[small].id];
            assert_one_connection_dialled_by_larger(&nodes[small], small_end, large_end);
            connections.push((large_end.local_addr(), large_end.peer_addr()));
        }
        connections.sort();
        connections.dedup();
        assert_eq!(connections.len(), 3);
    });
}

#[test]
fn a_restarted_peer_is_reconnected_whichever_side_it_is() {
    run(async {
        let mut rng = StdRng::seed_from_u64(RACE_SEED);
        let (listeners, peers) = bind_cluster(3).await;
        // Nodes 2 and 3 would wait SLOW_BACKOFF before redialling node 1 on their own:
        // reconnecting in time needs node 1's nudge and their dial-back.
        let mut nodes: Vec<Option<Node>> = listeners
            .into_iter()
            .zip(peers.keys())
            .map(|(listener, id)| {
                let mut config = mesh_config(id.0);
                config.reconnect_backoff_min = SLOW_BACKOFF;
                config.reconnect_backoff_max = SLOW_BACKOFF;
                Some(Node::start(listener, config, &peers))
            })
            .collect();
        let ids: Vec<NodeId> = peers.keys().copied().collect();
        let mut ends = BTreeMap::new();
        for node in nodes.iter().flatten() {
            let others: Vec<NodeId> = ids.iter().copied().filter(|id| *id != node.id).collect();
            ends.insert(node.id, node.expect_ups(&others).await);
        }

        // Restart the smallest id (the others dial it), then the largest (it dials them).
        for restarted in [0, 2] {
            let stopped = nodes[restarted].take().unwrap();
            let (id, addr) = (stopped.id, stopped.addr);
            stopped.stop();
            for node in nodes.iter().flatten() {
                node.expect_down(&ends[&node.id][&id]).await;
            }
            let delay = Duration::from_millis(rng.random_range(0..=START_SPREAD_MS));
            runtime::sleep(delay).await;
            let mut config = mesh_config(id.0);
            config.reconnect_backoff_min = SLOW_BACKOFF;
            config.reconnect_backoff_max = SLOW_BACKOFF;
            let node = Node::start(rebind(addr).await, config, &peers);
            let others: Vec<NodeId> = ids.iter().copied().filter(|other| *other != id).collect();
            ends.insert(id, node.expect_ups(&others).await);
            nodes[restarted] = Some(node);
            for other in &others {
                let node = nodes
                    .iter()
                    .flatten()
                    .find(|node| node.id == *other)
                    .unwrap();
                let new_end = node.expect_ups(&[id]).await.remove(&id).unwrap();
                ends.get_mut(other).unwrap().insert(id, new_end);
            }
            runtime::sleep(SETTLE).await;
            for node in nodes.iter().flatten() {
                node.expect_quiet();
            }
            for (small, large) in [(0, 1), (0, 2), (1, 2)] {
                let (small, large) = (
                    nodes[small].as_ref().unwrap(),
                    nodes[large].as_ref().unwrap(),
                );
                let small_end = &ends[&small.id][&large.id];
                let large_end = &ends[&large.id][&small.id];
                assert_one_connection_dialled_by_larger(small, small_end, large_end);
            }
        }
    });
}

#[test]
fn only_participant_connections_from_smaller_ids_are_dropped_and_dialled_back() {
    run(async {
        // Node 2's only mesh peer, node 1, is played by hand.
        let fake = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake_addr = fake.local_addr().unwrap();
        let peers = BTreeMap::from([(NodeId(1), fake_addr)]);
        let mut config = mesh_config(2);
        config.reconnect_backoff_min = SLOW_BACKOFF;
        config.reconnect_backoff_max = SLOW_BACKOFF;
        let node = Node::start(bind("127.0.0.1:0".parse().unwrap()).await, config, &peers);

        // Its first dial fails: it now waits SLOW_BACKOFF before trying again.
        let (first, _) = fake.accept().await.unwrap();
        drop(first);

        // Our own id from another participant is refused outright.
        let (mut twin, answer) = RawPeer::handshake(node.addr, hello(2, Role::Participant)).await;
        match answer {
            Frame::Reject { reason } => assert!(reason.contains("our own"), "reason {reason:?}"),
            other => panic!("expected Reject, got {other:?}"),
        }
        assert_eq!(twin.recv().await, None);

        // A coordinator and a client with the smaller id are served as usual.
        let (_coordinator, answer) =
            RawPeer::handshake(node.addr, hello(1, Role::Coordinator)).await;
        assert_hello(&answer, 2, Role::Participant);
        let (_client, answer) = RawPeer::handshake(node.addr, hello(0, Role::Client)).await;
        assert_hello(&answer, 2, Role::Participant);
        let mut roles = Vec::new();
        for _ in 0..2 {
            match next(&node.events).await {
                ChannelEvent::Up { channel } => roles.push(channel.peer_role()),
                other => panic!("expected Up, got {other:?}"),
            }
        }
        // Two connections: their Ups may come in either order.
        roles.sort_by_key(|role| format!("{role:?}"));
        assert_eq!(roles, [Role::Client, Role::Coordinator]);

        // Participant 1 dialling us gets the handshake, then the connection is closed...
        let (mut smaller, answer) =
            RawPeer::handshake(node.addr, hello(1, Role::Participant)).await;
        assert_hello(&answer, 2, Role::Participant);
        assert_eq!(smaller.recv().await, None);
        // ... and node 2 dials it back now, long before its backoff ends.
        let (stream, _) = runtime::timeout(WAIT, fake.accept())
            .await
            .expect("no dial-back in time")
            .unwrap();
        let mut dialled = RawPeer::new(stream);
        assert_hello(&dialled.recv().await.expect("Hello"), 2, Role::Participant);
        dialled
            .send(&Frame::Hello(hello(1, Role::Participant)))
            .await;
        match next(&node.events).await {
            ChannelEvent::Up { channel } => {
                assert_eq!(
                    (channel.peer(), channel.peer_role()),
                    (NodeId(1), Role::Participant)
                );
                assert_eq!(channel.peer_addr(), fake_addr);
            }
            other => panic!("expected Up of participant 1, got {other:?}"),
        }
        // The dropped connection never surfaced as an event.
        node.expect_quiet();
    });
}
