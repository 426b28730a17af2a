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
        let dialler_config = std::sync::Arc::new(config(1, Role::Coordinator));
        let traffic = dialler_config.traffic.clone();
        let _dialler = dial(addr, NodeId(5), Role::Participant, dialler_config, events);
        let (stream, _) = fake.accept().await.unwrap();
        let mut peer = RawPeer::new(stream);
        assert_hello(&peer.recv().await.expect("Hello"), 1, Role::Coordinator);
        peer.send(&Frame::Hello(hello(9, Role::Participant))).await;
        match peer.recv().await {
            Some(Frame::Reject { reason }) => assert_eq!(reason, "node id 9, expected 5"),
            other => panic!("expected Reject, got {other:?}"),
        }
        // Counted on the dialler's side too (the Reject is sent before the count).
        rejected_handshakes_reach(&traffic, 1).await;
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
        assert_eq!(traffic.counts().handshakes_rejected, 1);
    });
}

/// Waits until `traffic` has counted `count` rejected handshakes.
async fn rejected_handshakes_reach(traffic: &wire::traffic::Traffic, count: u64) {
    let reached = async {
        while traffic.counts().handshakes_rejected < count {
            wire::runtime::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    wire::runtime::timeout(WAIT, reached)
        .await
        .expect("rejected handshakes not counted");
}

#[test]
fn a_dial_the_peer_rejects_or_whose_proof_fails_is_counted_by_the_dialler() {
    run(async {
        let with_secret = |mut config: wire::ChannelConfig, text: &str| {
            config.auth.cluster_secret = Some(wire::Secret::new(text).unwrap());
            config
        };
        let secret = "the-cluster-secret-0123456789";
        let server_config = with_secret(config(1, Role::Participant), secret);
        let server = echo_server(server_config, vec![Role::Coordinator]).await;
        // A coordinator with another secret: the participant rejects its proof.
        let wrong = std::sync::Arc::new(with_secret(
            config(2, Role::Coordinator),
            "another-secret-0123456789ab",
        ));
        let (events, events_rx) = event_queue(16);
        let dialler = dial(
            server.addr,
            NodeId(1),
            Role::Participant,
            wrong.clone(),
            events,
        );
        rejected_handshakes_reach(&wrong.traffic, 2).await;
        drop(dialler);
        assert!(events_rx.try_recv().is_none(), "a rejected dial came up");

        // An acceptor whose proof is wrong: the dialler refuses it, and counts that too.
        let fake = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dialler_config = std::sync::Arc::new(with_secret(config(2, Role::Coordinator), secret));
        let (events, _events_rx) = event_queue(16);
        let _dialler = dial(
            fake.local_addr().unwrap(),
            NodeId(5),
            Role::Participant,
            dialler_config.clone(),
            events,
        );
        let (stream, _) = fake.accept().await.unwrap();
        let mut peer = RawPeer::new(stream);
        peer.recv().await.expect("Hello");
        let ours = Hello {
            auth: true,
            ..hello(5, Role::Participant)
        };
        peer.send(&Frame::Hello(ours)).await;
        assert!(matches!(peer.recv().await, Some(Frame::Auth { .. })));
        peer.send(&Frame::Auth { proof: [0; 32] }).await;
        match peer.recv().await {
            Some(Frame::Reject { reason }) => assert!(reason.contains("authentication failed")),
            other => panic!("expected Reject, got {other:?}"),
        }
        rejected_handshakes_reach(&dialler_config.traffic, 1).await;
    });
}
