//! `Channel::liveness` over a real connection: phi is reported, and grows while the peer
//! is silent (orderings only: no assertion on how fast anything happens).

use std::time::Duration;

use wire::{ChannelEvent, Frame, RequestId, Role};

use wire::runtime;

use crate::support::*;

const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(20);
/// The peer's heartbeats before it falls silent.
const HEARTBEATS: usize = 10;
/// Long enough that the channel is not closed during the silence.
const DEAD_AFTER_HEARTBEATS: u32 = 1000;
/// Each of the two silent periods observed.
const SILENCE: Duration = Duration::from_millis(200);

#[test]
fn phi_grows_while_a_peer_is_silent() {
    run(async {
        let mut server_config = config(1, Role::Participant);
        server_config.heartbeat_interval = HEARTBEAT_INTERVAL;
        server_config.dead_after_heartbeats = DEAD_AFTER_HEARTBEATS;
        let server = echo_server(server_config, vec![Role::Coordinator]).await;
        let (mut peer, answer) = RawPeer::handshake(server.addr, hello(3, Role::Coordinator)).await;
        assert!(matches!(answer, Frame::Hello(_)));
        let channel = match next(&server.seen).await {
            ChannelEvent::Up { channel } => channel,
            other => panic!("expected Up, got {other:?}"),
        };
        for _ in 0..HEARTBEATS {
            peer.send(&Frame::Heartbeat).await;
            runtime::sleep(HEARTBEAT_INTERVAL).await;
        }
        // Once the echo arrives the server has read every frame we sent: from here on
        // it hears nothing, so its detector's history is fixed and only time moves.
        let request = Frame::Request {
            id: RequestId(1),
            msg: ask(1),
        };
        peer.send(&request).await;
        let echo = Frame::Response {
            id: RequestId(1),
            msg: echoed(1),
        };
        assert_eq!(peer.recv().await, Some(echo));
        let flowing = channel.liveness();
        runtime::sleep(SILENCE).await;
        let silent = channel.liveness();
        runtime::sleep(SILENCE).await;
        let longer = channel.liveness();

        assert!(!channel.is_closed());
        assert!(flowing.phi.is_finite() && flowing.phi >= 0.0, "{flowing:?}");
        assert!(longer.phi.is_finite(), "{longer:?}");
        assert!(flowing.phi < silent.phi, "{flowing:?} then {silent:?}");
        assert!(silent.phi < longer.phi, "{silent:?} then {longer:?}");
        assert!(flowing.last_heard_ago < silent.last_heard_ago);
        assert!(silent.last_heard_ago < longer.last_heard_ago);
    });
}
