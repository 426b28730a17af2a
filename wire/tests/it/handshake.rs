//! Handshake refusals over real sockets: each bad Hello gets a `Reject` whose reason
//! names the problem, the connection is closed, and good peers keep connecting.

use wire::runtime::TcpListener;
use wire::{ClientError, Frame, Hello, NodeId, PROTOCOL_VERSION, Role, dial, event_queue};

use crate::support::*;

async fn expect_reject(addr: std::net::SocketAddr, hello: Hello, expected: &str) {
    let (mut peer, answer) = RawPeer::handshake(addr, hello).await;
    match answer {
        Frame::Reject { reason } => assert!(reason.contains(expected), "reason {reason:?}"),
        other => panic!("expected Reject, got {other:?}"),
    }
    assert_eq!(
        peer.recv().await,
        None,
        "connection stays open after Reject"
    );
}

#[test]
fn bad_hellos_are_rejected_with_a_reason_and_good_peers_still_connect() {
    run(async {
        let server = echo_server(config(1, Role::Participant), vec![Role::Coordinator]).await;
        let good = hello(7, Role::Coordinator);
        let wrong_magic = Hello {
            magic: 0xDEAD_BEEF,
            ..good.clone()
        };
        expect_reject(server.addr, wrong_magic, "wrong magic").await;
        let wrong_version = Hello {
            protocol_version: PROTOCOL_VERSION + 1,
            ..good.clone()
        };
        expect_reject(server.addr, wrong_version, "protocol version").await;
        let wrong_cluster = Hello {
            cluster_id: "other".into(),
            ..good.clone()
        };
        expect_reject(server.addr, wrong_cluster, "wrong cluster").await;
        expect_reject(server.addr, hello(8, Role::Participant), "role Participant").await;

        let (_peer, answer) = RawPeer::handshake(server.addr, good).await;
        assert_hello(&answer, 1, Role::Participant);
    });
}

#[test]
fn a_frame_other_than_hello_first_is_rejected() {
    run(async {
        let server = echo_server(config(1, Role::Participant), vec![Role::Coordinator]).await;
        let mut peer = RawPeer::connect(server.addr).await;
        peer.send(&Frame::Heartbeat).await;
        match peer.recv().await {
            Some(Frame::Reject { reason }) => assert!(reason.contains("expected Hello")),
            other => panic!("expected Reject, got {other:?}"),
        }
    });
}

#[test]
fn client_with_wrong_cluster_sees_the_rejection_reason() {
    run(async {
        let server = echo_server(config(1, Role::Coordinator), vec![Role::Client]).await;
        let result = wire::Client::connect(server.addr, "other", WAIT).await;
        match result {
            Err(ClientError::Rejected(reason)) => assert!(reason.contains("wrong cluster")),
            other => panic!("expected Rejected, got {other:?}"),
        }
        wire::Client::connect(server.addr, CLUSTER, WAIT)
            .await
            .expect("a good client still connects");
    });
}

#[test]
fn dialler_rejects_a_peer_with_the_wrong_node_id() {
    run(async {
        let fake = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = fake.local_addr().unwrap();
        let (events, events_rx) = event_queue(16);
        let _dialler = dial(
            addr,
            NodeId(5),
            Role::Participant,
            std::sync::Arc::new(config(1, Role::Coordinator)),
            events,
        );
        let (stream, _) = fake.accept().await.unwrap();
        let mut peer = RawPeer::new(stream);
        assert_hello(&peer.recv().await.expect("Hello"), 1, Role::Coordinator);
        peer.send(&Frame::Hello(hello(9, Role::Participant))).await;
        match peer.recv().await {
            Some(Frame::Reject { reason }) => assert_eq!(reason, "node id 9, expected 5"),
            other => panic!("expected Reject, got {other:?}"),
        }
        // The dialler retries; with the right id it comes up, and the refused attempt
        // emitted nothing (its Up would have come first).
        let (stream, _) = fake.accept().await.unwrap();
        let mut peer = RawPeer::new(stream);
        peer.recv().await.expect("Hello");
        peer.send(&Frame::Hello(hello(5, Role::Participant))).await;
        match next(&events_rx).await {
            wire::ChannelEvent::Up { channel } => assert_eq!(channel.peer(), NodeId(5)),
            other => panic!("expected Up, got {other:?}"),
        }
    });
}
