//! `Client`: connect, pipelined calls from many tasks, and errors once closed.

use std::time::Duration;

use wire::{Client, ClientError, ClientRequest, Role};

use wire::runtime;

use crate::support::*;

#[test]
fn client_calls_round_trip_concurrently() {
    run(async {
        let server = echo_server(config(1, Role::Coordinator), vec![Role::Client]).await;
        let client = Client::connect(server.addr, CLUSTER, WAIT).await.unwrap();
        let status = ClientRequest::Status.into();
        assert_eq!(
            client.call(ClientRequest::Status, WAIT).await.unwrap(),
            echo(&status)
        );
        let calls = (0..100).map(|i| {
            let client = &client;
            async move { (client.call(ask(i), WAIT).await.unwrap(), echoed(i)) }
        });
        for (got, sent) in futures::future::join_all(calls).await {
            assert_eq!(got, sent);
        }
    });
}

#[test]
fn client_calls_fail_closed_after_the_server_closes() {
    run(async {
        let server = echo_server(config(1, Role::Coordinator), vec![Role::Client]).await;
        let client = Client::connect(server.addr, CLUSTER, WAIT).await.unwrap();
        let server_side = match next(&server.seen).await {
            wire::ChannelEvent::Up { channel } => channel,
            other => panic!("expected Up, got {other:?}"),
        };
        assert_eq!(server_side.peer_role(), Role::Client);
        server_side.close();
        // The close reaches the client asynchronously; it must then fail, not hang.
        let mut result = client.call(ClientRequest::Status, WAIT).await;
        while result.is_ok() {
            runtime::sleep(Duration::from_millis(10)).await;
            result = client.call(ClientRequest::Status, WAIT).await;
        }
        assert!(matches!(result, Err(ClientError::Closed)), "{result:?}");
    });
}

#[test]
fn client_connect_to_nothing_fails() {
    run(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let result = Client::connect(addr, CLUSTER, WAIT).await;
        assert!(
            matches!(result, Err(ClientError::Connect(_))),
            "{:?}",
            result.err()
        );
    });
}
