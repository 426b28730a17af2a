//! The channel over loopback: pipelining order, bad peers closing only their own
//! connection, sequence checks, heartbeats declaring a silent peer dead, reconnect.

use std::sync::Arc;
use std::time::Duration;

use wire::frame::DEFAULT_MAX_FRAME_LEN;
use wire::{
    Channel, ChannelEvent, Client, ClientError, Epoch, EventReceiver, Frame, NodeId, Request,
    RequestId, Role, SendError, dial, event_queue,
};

use wire::runtime;

use crate::support::*;

async fn next_up(events: &EventReceiver) -> Channel {
    match next(events).await {
        ChannelEvent::Up { channel } => channel,
        other => panic!("expected Up, got {other:?}"),
    }
}

/// One request and its echoed response over `channel`.
async fn round_trip(channel: &Channel, events: &EventReceiver, msg: Request) {
    let id = channel.request(msg.clone()).unwrap();
    match next(events).await {
        ChannelEvent::Response {
            id: got, msg: body, ..
        } => assert_eq!((got, body), (id, echo(&msg))),
        other => panic!("expected Response, got {other:?}"),
    }
}

#[test]
fn pipelined_requests_keep_their_order_under_the_in_flight_cap() {
    run(async {
        let server = echo_server(config(1, Role::Participant), vec![Role::Coordinator]).await;
        let mut dialler_config = config(2, Role::Coordinator);
        dialler_config.in_flight_max = 8;
        let (events, events_rx) = event_queue(64);
        let _dial = dial(
            server.addr,
            NodeId(1),
            Role::Participant,
            Arc::new(dialler_config),
            events,
        );
        let channel = next_up(&events_rx).await;
        const COUNT: usize = 2000;
        for i in 0..COUNT {
            assert_eq!(channel.request(ask(i)), Ok(RequestId(i as u64 + 1)));
            assert!(
                channel.in_flight() <= 8,
                "in flight {}",
                channel.in_flight()
            );
        }
        for i in 0..COUNT {
            match next(&events_rx).await {
                ChannelEvent::Response { id, msg, .. } => {
                    assert_eq!((id, msg), (RequestId(i as u64 + 1), echoed(i)))
                }
                other => panic!("expected Response, got {other:?}"),
            }
            assert!(
                channel.in_flight() <= 8,
                "in flight {}",
                channel.in_flight()
            );
        }
        assert!(matches!(next(&server.seen).await, ChannelEvent::Up { .. }));
        for i in 0..COUNT {
            match next(&server.seen).await {
                ChannelEvent::Request { id, msg, .. } => {
                    assert_eq!((id, msg), (RequestId(i as u64 + 1), ask(i)))
                }
                other => panic!("expected Request {i}, got {other:?}"),
            }
        }
        assert_eq!((channel.in_flight(), channel.queued()), (0, 0));
    });
}

#[test]
fn a_full_send_queue_refuses_requests() {
    run(async {
        // A raw peer that never answers keeps the single in-flight slot taken.
        let fake = runtime::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = fake.local_addr().unwrap();
        let mut dialler_config = config(2, Role::Coordinator);
        dialler_config.in_flight_max = 1;
        dialler_config.send_queue_max = 2;
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
        let channel = next_up(&events_rx).await;
        assert_eq!(channel.request(ask(1)), Ok(RequestId(1)));
        assert_eq!(channel.request(ask(2)), Ok(RequestId(2)));
        assert_eq!(channel.request(ask(3)), Ok(RequestId(3)));
        assert_eq!(channel.request(ask(4)), Err(wire::SendError::QueueFull));
        assert_eq!((channel.in_flight(), channel.queued()), (1, 2));
        assert_eq!(
            peer.recv().await,
            Some(Frame::Request {
                id: RequestId(1),
                msg: ask(1)
            })
        );
        // A response frees the slot: the next waiting request goes out.
        peer.send(&Frame::Response {
            id: RequestId(1),
            msg: echoed(1),
        })
        .await;
        assert_eq!(
            peer.recv().await,
            Some(Frame::Request {
                id: RequestId(2),
                msg: ask(2)
            })
        );
        channel.close();
        channel.close();
        assert_eq!(channel.request(ask(5)), Err(wire::SendError::Closed));
    });
}

#[test]
fn an_unanswered_request_expires_and_frees_its_slot() {
    run(async {
        // A raw peer that answers late: the slot must not wait for it.
        let fake = runtime::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = fake.local_addr().unwrap();
        let mut dialler_config = config(2, Role::Coordinator);
        dialler_config.in_flight_max = 1;
        dialler_config.request_timeout = Duration::from_millis(300);
        // The raw peer sends no heartbeats; keep it from being declared dead meanwhile.
        dialler_config.dead_after_heartbeats = 100;
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
        let channel = next_up(&events_rx).await;
        assert_eq!(channel.request(ask(1)), Ok(RequestId(1)));
        assert_eq!(channel.request(ask(2)), Ok(RequestId(2)));
        let request = |id: u64, i: usize| Frame::Request {
            id: RequestId(id),
            msg: ask(i),
        };
        assert_eq!(peer.recv().await, Some(request(1, 1)));
        // Request 1 is never answered in time: once it expires, request 2 takes its slot.
        assert_eq!(peer.recv().await, Some(request(2, 2)));
        assert!(!channel.is_pending(RequestId(1)));
        assert_eq!((channel.in_flight(), channel.queued()), (1, 0));
        // The late response is dropped like a bogus one; the next is delivered.
        for id in [1, 2] {
            peer.send(&Frame::Response {
                id: RequestId(id),
                msg: echoed(id as usize),
            })
            .await;
        }
        match next(&events_rx).await {
            ChannelEvent::Response { id, msg, .. } => {
                assert_eq!((id, msg), (RequestId(2), echoed(2)))
            }
            other => panic!("expected the response to request 2, got {other:?}"),
        }
        assert_eq!((channel.in_flight(), channel.queued()), (0, 0));
        assert!(!channel.is_closed(), "an expiry does not close the channel");
    });
}

#[test]
fn a_request_timeout_shorter_than_a_heartbeat_is_refused() {
    let mut config = config(2, Role::Coordinator);
    config.request_timeout = config.heartbeat_interval / 2;
    assert!(config.validate().unwrap_err().contains("request_timeout"));
    config.request_timeout = config.heartbeat_interval;
    assert_eq!(config.validate(), Ok(()));
}

async fn bad_peer_is_closed_alone(bad_bytes: Vec<u8>, expected_reason: &str) {
    let server = echo_server(config(1, Role::Participant), vec![Role::Coordinator]).await;
    let (events, events_rx) = event_queue(64);
    let _dial = dial(
        server.addr,
        NodeId(1),
        Role::Participant,
        Arc::new(config(2, Role::Coordinator)),
        events,
    );
    let good = next_up(&events_rx).await;
    round_trip(&good, &events_rx, ask(1)).await;

    let (mut bad, answer) = RawPeer::handshake(server.addr, hello(3, Role::Coordinator)).await;
    assert!(matches!(answer, Frame::Hello(_)));
    bad.send_bytes(&bad_bytes).await;
    let (peer, _, reason) = next_down(&server.seen).await;
    assert_eq!(peer, NodeId(3));
    assert!(reason.contains(expected_reason), "reason {reason:?}");
    assert_eq!(bad.recv().await, None, "bad peer's connection stays open");

    round_trip(&good, &events_rx, ask(2)).await;
    // And the listener still accepts new peers.
    let (_peer, answer) = RawPeer::handshake(server.addr, hello(4, Role::Coordinator)).await;
    assert!(matches!(answer, Frame::Hello(_)));
}

#[test]
fn an_oversized_frame_closes_only_that_connection() {
    let header = (DEFAULT_MAX_FRAME_LEN as u32 + 1).to_be_bytes().to_vec();
    run(bad_peer_is_closed_alone(header, "exceeds the maximum"));
}

#[test]
fn a_garbage_frame_closes_only_that_connection() {
    let garbage = vec![0, 0, 0, 4, 0xc1, 0xc1, 0xc1, 0xc1];
    run(bad_peer_is_closed_alone(garbage, "cannot decode"));
}

#[test]
fn out_of_sequence_requests_are_refused_and_not_delivered() {
    run(async {
        let server = echo_server(config(1, Role::Participant), vec![Role::Coordinator]).await;
        let (mut peer, _) = RawPeer::handshake(server.addr, hello(3, Role::Coordinator)).await;
        let request = |id| Frame::Request {
            id: RequestId(id),
            msg: ask(id as usize),
        };
        // A gap: 2 before 1.
        peer.send(&request(2)).await;
        let gap = Frame::SequenceError {
            id: RequestId(2),
            expected: RequestId(1),
        };
        assert_eq!(peer.recv().await, Some(gap));
        peer.send(&request(1)).await;
        let answer = Frame::Response {
            id: RequestId(1),
            msg: echoed(1),
        };
        assert_eq!(peer.recv().await, Some(answer));
        // A replay of 1.
        peer.send(&request(1)).await;
        let replay = Frame::SequenceError {
            id: RequestId(1),
            expected: RequestId(2),
        };
        assert_eq!(peer.recv().await, Some(replay));
        // A response to nothing we sent is dropped; the connection stays up.
        peer.send(&Frame::Response {
            id: RequestId(99),
            msg: echoed(99),
        })
        .await;
        peer.send(&request(2)).await;
        let answer = Frame::Response {
            id: RequestId(2),
            msg: echoed(2),
        };
        assert_eq!(peer.recv().await, Some(answer));

        // Exactly requests 1 and 2 were delivered, once each, in order.
        assert!(matches!(next(&server.seen).await, ChannelEvent::Up { .. }));
        for id in [1, 2] {
            match next(&server.seen).await {
                ChannelEvent::Request { id: got, .. } => assert_eq!(got, RequestId(id)),
                other => panic!("expected Request {id}, got {other:?}"),
            }
        }
        assert!(server.seen.is_empty(), "unexpected event delivered");

        // Being told our stream is broken closes the channel.
        peer.send(&Frame::SequenceError {
            id: RequestId(5),
            expected: RequestId(4),
        })
        .await;
        let (_, _, reason) = next_down(&server.seen).await;
        assert!(reason.contains("sequence error"), "reason {reason:?}");
    });
}

#[test]
fn a_silent_peer_is_reported_down() {
    run(async {
        let mut server_config = config(1, Role::Participant);
        server_config.heartbeat_interval = Duration::from_millis(20);
        let server = echo_server(server_config, vec![Role::Coordinator]).await;
        // Completes the handshake, then never sends another byte.
        let (mut silent, answer) =
            RawPeer::handshake(server.addr, hello(3, Role::Coordinator)).await;
        assert!(matches!(answer, Frame::Hello(_)));
        let (peer, _, reason) = next_down(&server.seen).await;
        assert_eq!(peer, NodeId(3));
        assert!(reason.contains("silent"), "reason {reason:?}");
        // It was sent heartbeats while it lasted, then the connection was closed.
        assert_eq!(silent.recv_any().await, Some(Frame::Heartbeat));
        assert_eq!(silent.recv().await, None);
    });
}

#[test]
fn a_peer_that_heartbeats_stays_up() {
    run(async {
        let mut fast = config(1, Role::Participant);
        fast.heartbeat_interval = Duration::from_millis(20);
        fast.dead_after_heartbeats = 25;
        let server = echo_server(fast.clone(), vec![Role::Coordinator]).await;
        let fast_dead_after = fast.dead_after();
        fast.node_id = NodeId(2);
        fast.role = Role::Coordinator;
        let (events, events_rx) = event_queue(64);
        let _dial = dial(
            server.addr,
            NodeId(1),
            Role::Participant,
            Arc::new(fast),
            events,
        );
        let channel = next_up(&events_rx).await;
        // Many dead-after periods pass with no requests: heartbeats alone keep it up.
        runtime::sleep(fast_dead_after * 3).await;
        assert!(!channel.is_closed());
        assert!(channel.last_heard().elapsed() < WAIT);
        round_trip(&channel, &events_rx, ask(1)).await;
    });
}

#[test]
fn dial_reconnects_with_a_new_epoch_after_the_listener_closes() {
    run(async {
        let server = echo_server(config(1, Role::Participant), vec![Role::Coordinator]).await;
        let (events, events_rx) = event_queue(64);
        let dialler = dial(
            server.addr,
            NodeId(1),
            Role::Participant,
            Arc::new(config(2, Role::Coordinator)),
            events,
        );
        let first = next_up(&events_rx).await;
        let server_side = match next(&server.seen).await {
            ChannelEvent::Up { channel } => channel,
            other => panic!("expected Up, got {other:?}"),
        };
        assert_eq!(server_side.peer(), NodeId(2));
        server_side.close();
        match next(&events_rx).await {
            ChannelEvent::Down { peer, epoch, .. } => {
                assert_eq!((peer, epoch), (NodeId(1), first.epoch()))
            }
            other => panic!("expected Down, got {other:?}"),
        }
        let second = next_up(&events_rx).await;
        assert!(second.epoch() > first.epoch());
        assert_eq!(first.request(ask(1)), Err(wire::SendError::Closed));
        round_trip(&second, &events_rx, ask(2)).await;

        // Dropping the handle closes the live connection: Down, and no more Ups.
        drop(dialler);
        match next(&events_rx).await {
            ChannelEvent::Down { epoch, .. } => assert_eq!(epoch, second.epoch()),
            other => panic!("expected Down, got {other:?}"),
        }
        assert_ne!(Epoch(0), second.epoch());
    });
}

#[test]
fn stopping_the_listener_closes_its_connections_and_accepts_no_more() {
    run(async {
        let server = echo_server(config(1, Role::Participant), vec![Role::Coordinator]).await;
        let (mut peer, answer) = RawPeer::handshake(server.addr, hello(3, Role::Coordinator)).await;
        assert!(matches!(answer, Frame::Hello(_)));
        server.handle.stop();
        let (down, _, _) = next_down(&server.seen).await;
        assert_eq!(down, NodeId(3));
        assert_eq!(peer.recv().await, None);
        // The listening socket is gone with the loop: a new peer gets no Hello.
        if let Ok(stream) = runtime::TcpStream::connect(server.addr).await {
            let mut late = RawPeer::new(stream);
            // The connect may have raced the listener's close: the send may then fail.
            late.try_send(&Frame::Hello(hello(4, Role::Coordinator)))
                .await;
            assert_eq!(late.recv().await, None);
        }
    });
}

/// A request of about 200 KiB.
fn large_request() -> Request {
    let op = wire::Op::Put {
        key: "k".into(),
        value: wire::Value::Text("v".repeat(200 * 1024)),
    };
    wire::ToParticipant::Prepare {
        txn: wire::TxnId::new_v7(),
        protocol: wire::Protocol::TwoPhase,
        ops: vec![op],
        timeout_ms: 1_000,
        participants: vec![NodeId(1)],
    }
    .into()
}

#[test]
fn a_request_over_the_peers_frame_limit_is_refused_to_the_caller_and_the_channel_stays_up() {
    run(async {
        const LIMIT: usize = 64 * 1024;
        let mut server_config = config(1, Role::Participant);
        server_config.set_max_frame_len(LIMIT);
        let server = echo_server(server_config, vec![Role::Coordinator, Role::Client]).await;

        // A peer's channel: the dialler (16 MiB itself) honours the 64 KiB announced.
        let (events, events_rx) = event_queue(64);
        let _dial = dial(
            server.addr,
            NodeId(1),
            Role::Participant,
            Arc::new(config(2, Role::Coordinator)),
            events,
        );
        let channel = next_up(&events_rx).await;
        assert_eq!(channel.send_frame_len_max(), LIMIT);
        match channel.request(large_request()) {
            Err(SendError::TooLarge { len, max }) => assert!(len > LIMIT && max == LIMIT),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(!channel.is_closed());
        round_trip(&channel, &events_rx, ask(1)).await;

        // A client gets the same refusal as a clear error, and its connection serves on.
        let client = Client::connect(server.addr, CLUSTER, WAIT).await.unwrap();
        match client.call(large_request(), WAIT).await {
            Err(error @ ClientError::TooLarge(_)) => {
                let text = error.to_string();
                assert!(text.contains("frame limit of 65536 bytes"), "{text}");
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(client.call(ask(2), WAIT).await.unwrap(), echoed(2));
    });
}
