//! Strangers and impostors over real sockets: a second process with a live member's id,
//! cluster authentication and client tokens, and the connection limits that keep cluster
//! members served during a flood.

use std::sync::Arc;
use std::time::Duration;

use wire::auth::{self, Side};
use wire::frame::{self, DEFAULT_MAX_FRAME_LEN};
use wire::{
    ChannelEvent, Client, ClientError, ClientRequest, ConnectionLimits, Frame, Hello, NodeId, Role,
    Secret, dial, event_queue, runtime,
};

use crate::support::*;

/// A Submit of about 200 KiB.
fn large_submit() -> wire::Request {
    let op = wire::Op::Put {
        key: "k".into(),
        value: wire::Value::Text("v".repeat(200 * 1024)),
    };
    let spec = wire::TxnSpec {
        protocol: wire::Protocol::TwoPhase,
        timeout_ms: 1_000,
        parts: vec![(NodeId(1), vec![op])],
    };
    ClientRequest::Submit {
        txn: wire::TxnId::new_v7(),
        spec,
    }
    .into()
}

/// A few heartbeats: time for a connection that should not come up to show itself.
const SETTLE: Duration = Duration::from_millis(300);

fn secret(text: &str) -> Secret {
    Secret::new(text).unwrap()
}

fn with_cluster_secret(mut config: wire::ChannelConfig, text: &str) -> wire::ChannelConfig {
    config.auth.cluster_secret = Some(secret(text));
    config
}

async fn expect_up(events: &wire::EventReceiver) -> wire::Channel {
    match next(events).await {
        ChannelEvent::Up { channel } => channel,
        other => panic!("expected Up, got {other:?}"),
    }
}

async fn expect_reject(answer: Frame, expected: &str) {
    match answer {
        Frame::Reject { reason } => assert!(reason.contains(expected), "reason {reason:?}"),
        other => panic!("expected Reject containing {expected:?}, got {other:?}"),
    }
}

/// The echo server answers `i` on `channel`: the channel still works end to end. A Down
/// of another channel on the same queue (an old process's, delivered late) is not its.
async fn still_served(channel: &wire::Channel, events: &wire::EventReceiver, i: usize) {
    channel.request(ask(i)).unwrap();
    loop {
        match next(events).await {
            ChannelEvent::Response { msg, .. } => return assert_eq!(msg, echoed(i)),
            ChannelEvent::Down { epoch, reason, .. } if epoch == channel.epoch() => {
                panic!("channel went down: {reason}")
            }
            _ => continue,
        }
    }
}

#[test]
fn a_second_process_with_a_live_members_id_is_refused_and_the_first_keeps_its_channel() {
    run(async {
        let server = echo_server(config(1, Role::Participant), vec![Role::Coordinator]).await;
        let (events, events_rx) = event_queue(64);
        let first = Arc::new(config(2, Role::Coordinator));
        let _first = dial(
            server.addr,
            NodeId(1),
            Role::Participant,
            first,
            events.clone(),
        );
        let channel = expect_up(&events_rx).await;

        // A raw Hello claiming coordinator 2 from another process (another instance).
        let impostor = Hello {
            instance: 999,
            ..hello(2, Role::Coordinator)
        };
        let (mut raw, answer) = RawPeer::handshake(server.addr, impostor).await;
        expect_reject(
            answer,
            "duplicate node id: Coordinator 2 is already connected",
        )
        .await;
        assert_eq!(raw.recv().await, None, "closed after the Reject");

        // A real second coordinator with the same id is refused on every retry.
        let (events2, events2_rx) = event_queue(64);
        let second = Arc::new(config(2, Role::Coordinator));
        let second = dial(server.addr, NodeId(1), Role::Participant, second, events2);
        runtime::sleep(SETTLE).await;
        assert!(
            events2_rx.try_recv().is_none(),
            "the second coordinator came up"
        );

        // The established channel was never knocked down.
        assert!(!channel.is_closed());
        still_served(&channel, &events_rx, 1).await;
        drop(second);
    });
}

#[test]
fn a_restarted_node_gets_in_once_its_old_channel_is_gone() {
    run(async {
        let server = echo_server(config(1, Role::Participant), vec![Role::Coordinator]).await;
        let (events, events_rx) = event_queue(64);
        let old = dial(
            server.addr,
            NodeId(1),
            Role::Participant,
            Arc::new(config(2, Role::Coordinator)),
            events.clone(),
        );
        expect_up(&events_rx).await;
        // The old process dies: its connection closes, the server sees it go.
        drop(old);
        next_down(&server.seen).await;
        // The restarted process (a new instance) is accepted.
        let _new = dial(
            server.addr,
            NodeId(1),
            Role::Participant,
            Arc::new(config(2, Role::Coordinator)),
            events,
        );
        let channel = loop {
            match next(&events_rx).await {
                ChannelEvent::Up { channel } => break channel,
                _ => continue,
            }
        };
        still_served(&channel, &events_rx, 2).await;
    });
}

#[test]
fn a_reconnect_of_the_same_process_gets_in_at_once_and_a_restart_once_the_old_one_is_silent() {
    run(async {
        let mut server_config = config(1, Role::Participant);
        // Dead after 1 s of silence; a claim counts as alive for half of that.
        server_config.heartbeat_interval = Duration::from_millis(20);
        server_config.dead_after_heartbeats = 50;
        let server = echo_server(server_config, vec![Role::Coordinator]).await;
        // A raw member that never sends a heartbeat.
        let (_old, answer) = RawPeer::handshake(server.addr, hello(2, Role::Coordinator)).await;
        assert!(matches!(answer, Frame::Hello(_)));
        // The same process reconnecting (same instance): in at once.
        let (_again, answer) = RawPeer::handshake(server.addr, hello(2, Role::Coordinator)).await;
        assert!(matches!(answer, Frame::Hello(_)), "{answer:?}");
        // Another process with its id, while the member was just heard: refused.
        let restarted = Hello {
            instance: 77,
            ..hello(2, Role::Coordinator)
        };
        let (_raw, answer) = RawPeer::handshake(server.addr, restarted.clone()).await;
        expect_reject(answer, "duplicate node id").await;
        // Silent for over half of dead-after: the old one no longer counts as alive.
        runtime::sleep(Duration::from_millis(700)).await;
        let (_restarted, answer) = RawPeer::handshake(server.addr, restarted).await;
        assert!(matches!(answer, Frame::Hello(_)), "{answer:?}");
    });
}

#[test]
fn nodes_with_the_cluster_secret_connect_and_others_are_refused() {
    run(async {
        const SECRET: &str = "the-cluster-secret-0123456789";
        let server_config = with_cluster_secret(config(1, Role::Participant), SECRET);
        let server = echo_server(server_config, vec![Role::Coordinator]).await;

        let (events, events_rx) = event_queue(64);
        let good = Arc::new(with_cluster_secret(config(2, Role::Coordinator), SECRET));
        let _good = dial(server.addr, NodeId(1), Role::Participant, good, events);
        let channel = expect_up(&events_rx).await;
        still_served(&channel, &events_rx, 3).await;

        // A wrong secret: refused, no Up on either side.
        let (wrong_events, wrong_rx) = event_queue(64);
        let wrong = Arc::new(with_cluster_secret(
            config(3, Role::Coordinator),
            "not-the-cluster-secret-000",
        ));
        let _wrong = dial(
            server.addr,
            NodeId(1),
            Role::Participant,
            wrong,
            wrong_events,
        );
        // No secret at all: refused before any proof.
        let (none_events, none_rx) = event_queue(64);
        let none = Arc::new(config(4, Role::Coordinator));
        let _none = dial(server.addr, NodeId(1), Role::Participant, none, none_events);
        let (_raw, answer) = RawPeer::handshake(server.addr, hello(5, Role::Coordinator)).await;
        expect_reject(answer, "requires a cluster secret").await;
        runtime::sleep(SETTLE).await;
        assert!(wrong_rx.try_recv().is_none() && none_rx.try_recv().is_none());
        // The server saw exactly one member come up: the good one.
        let mut ups = 0;
        while let Ok(event) = server.seen.try_recv() {
            ups += usize::from(matches!(event, ChannelEvent::Up { .. }));
        }
        assert_eq!(ups, 1);
    });
}

/// Frames by hand: a peer holding the secret proves it; the same proof replayed on a new
/// connection (whose server nonce differs) is refused, and so is a garbage proof.
#[test]
fn a_recorded_proof_cannot_be_replayed_on_a_new_connection() {
    run(async {
        const SECRET: &str = "the-cluster-secret-0123456789";
        let key = secret(SECRET);
        let server_config = with_cluster_secret(config(1, Role::Participant), SECRET);
        let server = echo_server(server_config, vec![Role::Coordinator]).await;
        let ours = Hello {
            auth: true,
            ..hello(2, Role::Coordinator)
        };
        let our_bytes = frame::encode(&Frame::Hello(ours.clone()), DEFAULT_MAX_FRAME_LEN).unwrap();

        let (mut first, answer) = RawPeer::handshake(server.addr, ours.clone()).await;
        let their_bytes = frame::encode(&answer, DEFAULT_MAX_FRAME_LEN).unwrap();
        let proof = auth::proof(&key, Side::Dialler, &our_bytes, &their_bytes);
        first.send(&Frame::Auth { proof }).await;
        match first.recv().await {
            Some(Frame::Auth { proof: theirs }) => assert!(auth::verify(
                &key,
                Side::Acceptor,
                &our_bytes,
                &their_bytes,
                &theirs
            )),
            other => panic!("expected Auth, got {other:?}"),
        }
        drop(first);

        let other = Hello {
            instance: 3,
            ..ours.clone()
        };
        let (mut replay, _) = RawPeer::handshake(server.addr, other).await;
        replay.send(&Frame::Auth { proof }).await;
        expect_reject(replay.recv().await.unwrap(), "authentication failed").await;

        let (mut garbage, _) = RawPeer::handshake(server.addr, ours).await;
        garbage.send(&Frame::Auth { proof: [0; 32] }).await;
        expect_reject(garbage.recv().await.unwrap(), "authentication failed").await;
    });
}

#[test]
fn clients_need_the_client_token_when_the_node_requires_one() {
    run(async {
        const TOKEN: &str = "the-client-token-0123456789";
        let mut server_config = config(1, Role::Coordinator);
        server_config.auth.client_token = Some(secret(TOKEN));
        let server = echo_server(server_config, vec![Role::Client]).await;

        let refused = Client::connect(server.addr, CLUSTER, WAIT)
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, ClientError::Rejected(reason) if reason.contains("requires a client token")),
            "{refused:?}"
        );
        let wrong = Some(secret("a-wrong-client-token-000"));
        let refused = Client::connect_with_token(server.addr, CLUSTER, wrong, WAIT)
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, ClientError::Rejected(reason) if reason.contains("authentication failed")),
            "{refused:?}"
        );
        let token = Some(secret(TOKEN));
        let client = Client::connect_with_token(server.addr, CLUSTER, token, WAIT)
            .await
            .unwrap();
        let status = ClientRequest::Status.into();
        assert_eq!(
            client.call(ClientRequest::Status, WAIT).await.unwrap(),
            echo(&status)
        );
    });
}

#[test]
fn clients_past_their_limit_are_refused_and_members_still_connect() {
    run(async {
        let mut server_config = config(1, Role::Participant);
        server_config.connections = ConnectionLimits {
            client_connections_max: 3,
            ..ConnectionLimits::default()
        };
        let server = echo_server(server_config, vec![Role::Coordinator, Role::Client]).await;
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(Client::connect(server.addr, CLUSTER, WAIT).await.unwrap());
        }
        let refused = Client::connect(server.addr, CLUSTER, WAIT)
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, ClientError::Rejected(reason) if reason == "too many client connections (limit 3)"),
            "{refused:?}"
        );
        // The peer pool is separate: a coordinator still comes up.
        let (events, events_rx) = event_queue(64);
        let coordinator = Arc::new(config(2, Role::Coordinator));
        let _coordinator = dial(
            server.addr,
            NodeId(1),
            Role::Participant,
            coordinator,
            events,
        );
        let channel = expect_up(&events_rx).await;
        still_served(&channel, &events_rx, 4).await;
        // A closed client's slot comes back.
        clients.pop();
        let reconnected = async {
            loop {
                match Client::connect(server.addr, CLUSTER, WAIT).await {
                    Ok(client) => return client,
                    Err(_) => runtime::sleep(Duration::from_millis(20)).await,
                }
            }
        };
        runtime::timeout(WAIT, reconnected)
            .await
            .expect("slot not freed");
    });
}

#[test]
fn members_past_the_peer_limit_are_refused() {
    run(async {
        let mut server_config = config(1, Role::Participant);
        server_config.connections.peer_connections_max = 1;
        let server = echo_server(server_config, vec![Role::Coordinator]).await;
        let (_first, answer) = RawPeer::handshake(server.addr, hello(2, Role::Coordinator)).await;
        assert!(matches!(answer, Frame::Hello(_)));
        let (_second, answer) = RawPeer::handshake(server.addr, hello(3, Role::Coordinator)).await;
        expect_reject(
            answer,
            "too many peer (coordinator and participant) connections (limit 1)",
        )
        .await;
    });
}

#[test]
fn connections_that_never_handshake_are_bounded_and_freed_by_the_handshake_timeout() {
    run(async {
        let mut server_config = config(1, Role::Participant);
        server_config.connections.handshakes_max = 2;
        server_config.handshake_timeout = Duration::from_millis(500);
        let server = echo_server(server_config, vec![Role::Coordinator]).await;
        // Two silent connections take both handshake slots.
        let _silent = [
            RawPeer::connect(server.addr).await,
            RawPeer::connect(server.addr).await,
        ];
        runtime::sleep(Duration::from_millis(100)).await;
        // A third is closed unanswered.
        let mut third = RawPeer::connect(server.addr).await;
        third
            .try_send(&Frame::Hello(hello(2, Role::Coordinator)))
            .await;
        assert_eq!(third.recv().await, None);
        // Once the silent ones time out, a member gets in.
        let (events, events_rx) = event_queue(64);
        let coordinator = Arc::new(config(2, Role::Coordinator));
        let _coordinator = dial(
            server.addr,
            NodeId(1),
            Role::Participant,
            coordinator,
            events,
        );
        expect_up(&events_rx).await;
    });
}

#[test]
fn idle_connections_hold_a_bounded_few_kilobytes_and_give_them_back() {
    run(async {
        let server_config = config(1, Role::Coordinator);
        let gauge = server_config.memory.clone();
        let server = echo_server(server_config, vec![Role::Client]).await;
        const CLIENTS: usize = 50;
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let client = Client::connect(server.addr, CLUSTER, WAIT).await.unwrap();
            // One large call each (echoed back just as large): both buffers of the
            // server's connection grew for it once.
            client.call(large_submit(), WAIT).await.unwrap();
            clients.push(client);
        }
        // Heartbeats flow; the buffers are back to their idle size.
        runtime::sleep(Duration::from_millis(300)).await;
        let held = gauge.held();
        assert!(
            held <= CLIENTS * wire::IDLE_CONNECTION_BYTES_MAX,
            "held {held} for {CLIENTS} idle connections"
        );
        drop(clients);
        let freed = async {
            while gauge.held() != 0 {
                runtime::sleep(Duration::from_millis(20)).await;
            }
        };
        runtime::timeout(WAIT, freed)
            .await
            .expect("buffers not given back");
    });
}

/// Participant `id` of a two-node mesh, served as a shell would.
async fn mesh_node(
    id: u32,
    listener: wire::Listener,
    peers: &std::collections::BTreeMap<NodeId, std::net::SocketAddr>,
) -> (wire::EventReceiver, wire::MeshHandle, wire::ServeHandle) {
    let config = Arc::new(config(id, Role::Participant));
    let (events, events_rx) = event_queue(64);
    let mesh = wire::mesh(peers.clone(), config.clone(), events.clone());
    let serve = listener.serve_mesh(config, vec![Role::Coordinator], events, &mesh);
    (events_rx, mesh, serve)
}

#[test]
fn an_impostor_of_a_mesh_peer_is_refused_by_both_and_the_mesh_stays_up() {
    run(async {
        let bind = || wire::Listener::bind("127.0.0.1:0".parse().unwrap());
        let (one, two) = (bind().await.unwrap(), bind().await.unwrap());
        let peers = [(NodeId(1), one.local_addr()), (NodeId(2), two.local_addr())].into();
        let (one_events, _one_mesh, _one_serve) = mesh_node(1, one, &peers).await;
        let (two_events, _two_mesh, _two_serve) = mesh_node(2, two, &peers).await;
        let (one_channel, two_channel) =
            (expect_up(&one_events).await, expect_up(&two_events).await);
        // "Participant 1" from another process, to 2 (a smaller id, which 2 only checks
        // before dialling back), and "participant 2" to 1 (which 1 would keep). The check
        // on 2 must not disturb 2's own claim of 1: 1's start-up nudge reaches 2 after 2's
        // dialler may already hold it, and the impostor comes after both.
        for (to, id) in [(peers[&NodeId(2)], 1), (peers[&NodeId(1)], 2)] {
            let impostor = Hello {
                instance: 999,
                ..hello(id, Role::Participant)
            };
            let (_raw, answer) = RawPeer::handshake(to, impostor).await;
            expect_reject(answer, &format!("duplicate node id: Participant {id}")).await;
        }
        runtime::sleep(SETTLE).await;
        assert!(one_events.try_recv().is_none() && two_events.try_recv().is_none());
        assert!(!one_channel.is_closed() && !two_channel.is_closed());
    });
}
