//! Issue 14 over loopback: what a hostile or slow peer, or a stuck or busy node, can and
//! cannot do to a node's memory and to its peers' view of its liveness.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wire::{
    ChannelConfig, ChannelEvent, ClientRequest, EventReceiver, Frame, Listener, NodeId, Op,
    Protocol, Request, RequestId, Role, ToParticipant, TxnId, Value, dial, event_queue, frame,
};

use wire::runtime;

use crate::support::*;

const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(20);
/// Dead after 25 heartbeats = 500 ms of silence.
const DEAD_AFTER_HEARTBEATS: u32 = 25;

fn fast_config(node: u32, role: Role) -> ChannelConfig {
    let mut config = config(node, role);
    config.heartbeat_interval = HEARTBEAT_INTERVAL;
    config.dead_after_heartbeats = DEAD_AFTER_HEARTBEATS;
    config
}

/// A request carrying `len` bytes of text (a Prepare of one large put).
fn text_of_len(len: usize) -> Request {
    ToParticipant::Prepare {
        txn: TxnId(uuid::Uuid::from_u128(1)),
        protocol: Protocol::TwoPhase,
        ops: vec![Op::Put {
            key: "k".into(),
            value: Value::Text("x".repeat(len)),
        }],
        timeout_ms: 1_000,
        participants: vec![NodeId(1)],
    }
    .into()
}

/// Waits up to `within` for a `Down` on `events`, skipping other events.
async fn down_within(events: &EventReceiver, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match runtime::timeout(left, events.recv()).await {
            Some(Ok(ChannelEvent::Down { reason, .. })) => return Some(reason),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

#[test]
fn a_hello_header_over_the_hello_cap_is_refused_before_its_body_arrives() {
    run(async {
        let mut server_config = config(1, Role::Participant);
        // So only the Hello cap, not the handshake deadline, can end the connection.
        server_config.handshake_timeout = Duration::from_secs(600);
        let server = echo_server(server_config, vec![Role::Coordinator]).await;
        let mut peer = RawPeer::connect(server.addr).await;
        // Claims a 1 MiB Hello and sends a little of it: a node that waits for (and
        // buffers) the rest lets every such connection hold up to 16 MiB.
        let mut bytes = (1024u32 * 1024).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0x81; 512]);
        peer.send_bytes(&bytes).await;
        match peer.recv().await {
            None => {}
            Some(Frame::Reject { reason }) => assert!(reason.contains("Hello"), "{reason:?}"),
            Some(other) => panic!("expected a refusal, got {other:?}"),
        }
    });
}

#[test]
fn a_refusal_quotes_only_a_short_prefix_of_what_the_peer_sent() {
    run(async {
        let server = echo_server(config(1, Role::Participant), vec![Role::Coordinator]).await;
        // Quotes escape to two bytes each: the old refusal doubled the peer's bytes.
        let mut bad = hello(7, Role::Coordinator);
        bad.cluster_id = "\"".repeat(3000);
        let (_peer, answer) = RawPeer::handshake(server.addr, bad).await;
        match answer {
            Frame::Reject { reason } => {
                assert!(reason.contains("wrong cluster"), "{reason:?}");
                assert!(reason.len() < 300, "reason of {} bytes", reason.len());
            }
            other => panic!("expected Reject, got {other:?}"),
        }
    });
}

#[test]
fn a_send_queue_is_bounded_in_bytes_not_only_in_frames() {
    run(async {
        // A raw peer that completes the handshake and never reads again.
        let fake = runtime::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = fake.local_addr().unwrap();
        let mut dialler_config = config(2, Role::Coordinator);
        dialler_config.dead_after_heartbeats = 1000;
        let (events, events_rx) = event_queue(16);
        let _dial = dial(
            addr,
            NodeId(1),
            Role::Participant,
            Arc::new(dialler_config),
            events,
        );
        let (stream, _) = fake.accept().await.unwrap();
        let mut peer = RawPeer::new(stream);
        peer.recv().await.expect("Hello");
        peer.send(&Frame::Hello(hello(1, Role::Participant))).await;
        let channel = match next(&events_rx).await {
            ChannelEvent::Up { channel } => channel,
            other => panic!("expected Up, got {other:?}"),
        };
        // 1 MiB requests: far fewer than the frame bound (65,536) must fill the queue.
        const FRAMES_TRIED: usize = 128;
        let mut accepted = 0;
        for _ in 0..FRAMES_TRIED {
            match channel.request(text_of_len(1024 * 1024)) {
                Ok(_) => accepted += 1,
                Err(wire::SendError::QueueFull) => break,
                Err(error) => panic!("unexpected {error:?}"),
            }
        }
        assert!(
            accepted < FRAMES_TRIED,
            "{accepted} MiB queued for a peer that never reads"
        );
    });
}

/// A node whose event loop takes nothing: its queue fills and stays full.
async fn stuck_node(config: ChannelConfig) -> (std::net::SocketAddr, EventReceiver) {
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr();
    let (events, events_rx) = event_queue(1);
    // Kept open (the receiver is returned) but never read.
    let _handle = listener.serve(Arc::new(config), vec![Role::Coordinator], events);
    std::mem::forget(_handle);
    (addr, events_rx)
}

#[test]
fn a_node_whose_event_loop_is_stuck_is_declared_dead_by_its_peer() {
    run(async {
        let (addr, _stuck) = stuck_node(fast_config(1, Role::Participant)).await;
        let (events, events_rx) = event_queue(64);
        let dialler = fast_config(2, Role::Coordinator);
        let dead_after = dialler.dead_after();
        let _dial = dial(
            addr,
            NodeId(1),
            Role::Participant,
            Arc::new(dialler),
            events,
        );
        let channel = match next(&events_rx).await {
            ChannelEvent::Up { channel } => channel,
            other => panic!("expected Up, got {other:?}"),
        };
        // Input for the stuck loop: the stuck node's queue has it waiting, untaken.
        let _ = channel.request(ClientRequest::Status);
        // Documented bound: 2 x dead_after + one heartbeat interval; generous margin.
        let reason = down_within(&events_rx, dead_after * 6).await;
        let reason = reason.expect("a stuck node still looks alive to its peer");
        assert!(reason.contains("silent"), "{reason:?}");
    });
}

#[test]
fn a_busy_node_accepts_a_new_connection_without_churn() {
    run(async {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr();
        let server_config = fast_config(1, Role::Participant);
        // Takes one event per 100 ms: slow, but well within the 500 ms dead-after bound.
        let (events, events_rx) = event_queue(1);
        let _serve = listener.serve(Arc::new(server_config), vec![Role::Coordinator], events);
        runtime::spawn(async move {
            while events_rx.recv().await.is_ok() {
                runtime::sleep(Duration::from_millis(100)).await;
            }
        });
        // Floods keep the busy node's queue full: a new connection's Up waits behind them.
        let mut floods = Vec::new();
        for node in 10..18 {
            let (mut flood, answer) =
                RawPeer::handshake(addr, hello(node, Role::Coordinator)).await;
            assert!(matches!(answer, Frame::Hello(_)));
            for id in 1..=20 {
                flood
                    .send(&Frame::Request {
                        id: RequestId(id),
                        msg: ClientRequest::Status.into(),
                    })
                    .await;
            }
            floods.push(flood);
        }
        let (events, new_rx) = event_queue(64);
        let dialler = fast_config(2, Role::Coordinator);
        let dead_after = dialler.dead_after();
        let _dial = dial(
            addr,
            NodeId(1),
            Role::Participant,
            Arc::new(dialler),
            events,
        );
        assert!(matches!(next(&new_rx).await, ChannelEvent::Up { .. }));
        let down = down_within(&new_rx, dead_after * 3).await;
        assert_eq!(down, None, "the new connection churned");
        drop(floods);
    });
}

#[test]
fn a_large_frame_arriving_slowly_is_not_silence() {
    run(async {
        let server = echo_server(fast_config(1, Role::Participant), vec![Role::Coordinator]).await;
        let (mut peer, answer) = RawPeer::handshake(server.addr, hello(3, Role::Coordinator)).await;
        assert!(matches!(answer, Frame::Hello(_)));
        let bytes = frame::encode(
            &Frame::Request {
                id: RequestId(1),
                msg: text_of_len(2 * 1024 * 1024),
            },
            frame::DEFAULT_MAX_FRAME_LEN,
        )
        .unwrap();
        // Spread over 3 dead-after periods: bytes keep arriving, no frame completes.
        const PIECES: usize = 75;
        let piece = bytes.len().div_ceil(PIECES);
        for chunk in bytes.chunks(piece) {
            peer.send_bytes(chunk).await;
            runtime::sleep(HEARTBEAT_INTERVAL).await;
        }
        loop {
            match next(&server.seen).await {
                ChannelEvent::Request { id, .. } => {
                    assert_eq!(id, RequestId(1));
                    break;
                }
                ChannelEvent::Down { reason, .. } => panic!("closed while arriving: {reason}"),
                _ => continue,
            }
        }
    });
}

/// What one connection that sent `sent` bytes of a large frame may make the node hold:
/// its read buffer grows by doubling up to twice what arrived, plus the connection's
/// fixed buffers (read buffer baseline, write buffer) and a few queued heartbeats.
fn held_for_partial_frame(sent: usize) -> usize {
    2 * (sent + wire::read_buf::READ_CHUNK_LEN)
        + wire::read_buf::READ_BUF_KEEP_LEN
        + wire::WRITE_COALESCE_LEN
        + 4096
}

#[test]
fn many_connections_claiming_large_frames_hold_only_what_they_sent() {
    run(async {
        let mut server_config = config(1, Role::Participant);
        server_config.dead_after_heartbeats = 1000;
        let gauge = server_config.memory.clone();
        let server = echo_server(server_config, vec![Role::Coordinator]).await;
        const CONNECTIONS: usize = 20;
        const SENT: usize = 1024 * 1024;
        let claim = |len: usize| (len as u32).to_be_bytes().to_vec();
        // Before the handshake: a "Hello" claiming 15 MiB, 1 MiB of it sent.
        let mut strangers = Vec::new();
        for _ in 0..CONNECTIONS {
            let mut peer = RawPeer::connect(server.addr).await;
            let mut bytes = claim(15 * 1024 * 1024);
            bytes.extend(vec![0x81; SENT]);
            let _ = futures::AsyncWriteExt::write_all(&mut peer.stream, &bytes).await;
            strangers.push(peer);
        }
        // After the handshake: a 16 MiB request, 1 MiB of it sent, the rest never.
        let mut members = Vec::new();
        for node in 0..CONNECTIONS {
            let (mut peer, answer) =
                RawPeer::handshake(server.addr, hello(100 + node as u32, Role::Coordinator)).await;
            assert!(matches!(answer, Frame::Hello(_)));
            let mut bytes = claim(frame::DEFAULT_MAX_FRAME_LEN);
            bytes.extend(vec![0x81; SENT]);
            peer.send_bytes(&bytes).await;
            members.push(peer);
        }
        // Every member's bytes have been read once the gauge stops growing.
        let mut last = 0;
        for _ in 0..50 {
            runtime::sleep(Duration::from_millis(100)).await;
            let held = gauge.held();
            if held == last && held >= CONNECTIONS * SENT {
                break;
            }
            last = held;
        }
        let bound = CONNECTIONS * held_for_partial_frame(SENT);
        let (held, peak) = (gauge.held(), gauge.peak());
        assert!(
            held >= CONNECTIONS * SENT,
            "held {held}: the partial frames are counted"
        );
        assert!(peak <= bound, "peak {peak} over the bound {bound}");
        // The claims (15 and 16 MiB each, 620 MiB in all) were never reserved.
        drop((strangers, members));
        for _ in 0..50 {
            if gauge.held() == 0 {
                break;
            }
            runtime::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            gauge.held(),
            0,
            "closed connections give their buffers back"
        );
    });
}

#[test]
fn a_stale_up_arriving_last_never_replaces_the_newer_channel() {
    run(async {
        let server = echo_server(config(1, Role::Participant), vec![Role::Coordinator]).await;
        let (events, events_rx) = event_queue(64);
        let mut dials = Vec::new();
        let mut channels = Vec::new();
        // One node (one instance) reconnecting, as after half-open connections.
        let dialler = Arc::new(config(2, Role::Coordinator));
        for _ in 0..3 {
            dials.push(dial(
                server.addr,
                NodeId(1),
                Role::Participant,
                dialler.clone(),
                events.clone(),
            ));
            match next(&events_rx).await {
                ChannelEvent::Up { channel } => channels.push(channel),
                other => panic!("expected Up, got {other:?}"),
            }
        }
        channels.sort_by_key(wire::Channel::epoch);
        let [oldest, middle, newest] = [&channels[0], &channels[1], &channels[2]];
        // The shells' table, fed the order the issue saw: Up(5), Up(7), Down(5), Up(3).
        let mut current: Option<wire::Channel> = None;
        for up in [middle, newest, oldest] {
            if wire::supersedes(up, current.as_ref()) {
                if let Some(old) = current.replace(up.clone()) {
                    old.close();
                }
            } else {
                up.close();
            }
        }
        let current = current.expect("a channel is current");
        assert_eq!(current.epoch(), newest.epoch());
        assert!(!newest.is_closed());
        assert!(middle.is_closed() && oldest.is_closed());
    });
}
