//! Shared helpers: a raw peer speaking frames by hand, and an echo server built on
//! `Listener` that reports every event it sees.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use wire::frame::{self, DEFAULT_MAX_FRAME_LEN};
use wire::runtime::{self, Receiver, TcpStream};
use wire::{
    ChannelConfig, ChannelEvent, ClientResponse, Epoch, EventReceiver, Frame, Hello, Listener,
    MAGIC, NONCE_LEN, NodeId, PROTOCOL_VERSION, Request, Response, Role, ServeHandle,
    ToParticipant, TxnId, event_queue,
};

pub const CLUSTER: &str = "test-cluster";
/// Generous bound on any single wait: tests assert that things happen, not how fast.
pub const WAIT: Duration = Duration::from_secs(20);
/// Events an echo server keeps for its test: more than any test produces, so the server
/// never waits on a test that reads its events late.
const SEEN_MAX: usize = 1 << 16;

/// Runs `test` on the runtime, failing if it takes longer than a generous bound.
pub fn run<F: Future<Output = ()>>(test: F) {
    runtime::block_on(async {
        runtime::timeout(Duration::from_secs(60), test)
            .await
            .expect("test timed out");
    });
}

pub fn config(node: u32, role: Role) -> ChannelConfig {
    let mut config = ChannelConfig::new(NodeId(node), role, CLUSTER);
    config.reconnect_backoff_min = Duration::from_millis(10);
    config.reconnect_backoff_max = Duration::from_millis(100);
    config
}

/// A raw peer's Hello: no secret, a fixed instance per node id (so a test's reconnect of
/// "the same process" keeps it).
pub fn hello(node: u32, role: Role) -> Hello {
    Hello {
        magic: MAGIC,
        protocol_version: PROTOCOL_VERSION,
        node_id: NodeId(node),
        role,
        cluster_id: CLUSTER.into(),
        instance: u64::from(node),
        nonce: [0; NONCE_LEN],
        auth: false,
        max_frame_len: wire::DEFAULT_MAX_FRAME_LEN as u32,
    }
}

/// `hello` without the fields that differ per connection or process, to compare.
pub fn stable(hello: &Hello) -> Hello {
    Hello {
        instance: 0,
        nonce: [0; NONCE_LEN],
        ..hello.clone()
    }
}

/// Asserts that `answer` is the Hello of node `node` with `role` (no secret).
#[track_caller]
pub fn assert_hello(answer: &Frame, node: u32, role: Role) {
    match answer {
        Frame::Hello(got) => assert_eq!(stable(got), stable(&hello(node, role))),
        other => panic!("expected Hello, got {other:?}"),
    }
}

/// A queue a test waits on: the node's event queue or a plain channel.
pub(crate) trait Queue {
    type Item;
    async fn take(&self) -> Option<Self::Item>;
}

impl<T> Queue for Receiver<T> {
    type Item = T;
    async fn take(&self) -> Option<T> {
        self.recv().await.ok()
    }
}

impl Queue for EventReceiver {
    type Item = ChannelEvent;
    async fn take(&self) -> Option<ChannelEvent> {
        self.recv().await.ok()
    }
}

/// Waits for the next item, failing the test after `WAIT`.
pub async fn next<Q: Queue>(rx: &Q) -> Q::Item {
    runtime::timeout(WAIT, rx.take())
        .await
        .expect("no event in time")
        .expect("event queue closed")
}

/// Request number `i` of a test: a state query (any request would do).
pub fn ask(i: usize) -> Request {
    ToParticipant::StateQuery {
        txn: TxnId(uuid::Uuid::from_u128(i as u128)),
    }
    .into()
}

/// What the echo server answers to `msg`: a response that names it.
pub fn echo(msg: &Request) -> Response {
    ClientResponse::StatusReport {
        text: format!("{msg:?}"),
    }
    .into()
}

/// The echo server's answer to [`ask`]`(i)`.
pub fn echoed(i: usize) -> Response {
    echo(&ask(i))
}

/// An echo server: answers every request with its [`echo`] and reports every event
/// (a request before its response is sent).
pub struct Server {
    pub addr: SocketAddr,
    pub seen: Receiver<ChannelEvent>,
    pub handle: ServeHandle,
}

pub async fn echo_server(config: ChannelConfig, accept_roles: Vec<Role>) -> Server {
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr();
    let (events, events_rx) = event_queue(64);
    let handle = listener.serve(Arc::new(config), accept_roles, events);
    let (seen_tx, seen) = runtime::bounded(SEEN_MAX);
    runtime::spawn(async move {
        let mut channels = HashMap::<Epoch, wire::Channel>::new();
        while let Ok(event) = events_rx.recv().await {
            match &event {
                ChannelEvent::Up { channel } => {
                    channels.insert(channel.epoch(), channel.clone());
                }
                ChannelEvent::Request { epoch, id, msg, .. } => {
                    let (epoch, id, msg) = (*epoch, *id, msg.clone());
                    let _ = seen_tx.send(event).await;
                    if let Some(channel) = channels.get(&epoch) {
                        channel.respond(id, echo(&msg)).unwrap();
                    }
                    continue;
                }
                ChannelEvent::Down { epoch, .. } => {
                    channels.remove(epoch);
                }
                ChannelEvent::Response { .. } => {}
            }
            let _ = seen_tx.send(event).await;
        }
    });
    Server { addr, seen, handle }
}

/// Waits for the next `Down` the server reports, skipping other events.
pub async fn next_down(seen: &Receiver<ChannelEvent>) -> (NodeId, Epoch, String) {
    loop {
        if let ChannelEvent::Down {
            peer,
            epoch,
            reason,
        } = next(seen).await
        {
            return (peer, epoch, reason);
        }
    }
}

/// A peer that speaks frames by hand, to send what a real channel never would.
pub struct RawPeer {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawPeer {
    pub async fn connect(addr: SocketAddr) -> RawPeer {
        let stream = TcpStream::connect(addr).await.unwrap();
        RawPeer {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn new(stream: TcpStream) -> RawPeer {
        RawPeer {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and sends `hello`; returns the peer and the answer frame.
    pub async fn handshake(addr: SocketAddr, hello: Hello) -> (RawPeer, Frame) {
        let mut peer = RawPeer::connect(addr).await;
        peer.send(&Frame::Hello(hello)).await;
        let answer = peer.recv().await.expect("no answer to Hello");
        (peer, answer)
    }

    pub async fn send(&mut self, frame: &Frame) {
        let bytes = frame::encode(frame, DEFAULT_MAX_FRAME_LEN).unwrap();
        self.send_bytes(&bytes).await;
    }

    /// `send`, ignoring a connection that is already closed or reset.
    pub async fn try_send(&mut self, frame: &Frame) {
        let bytes = frame::encode(frame, DEFAULT_MAX_FRAME_LEN).unwrap();
        let _ = self.stream.write_all(&bytes).await;
        let _ = self.stream.flush().await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// The next frame other than a heartbeat; `None` once the other side closed.
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            match self.recv_any().await? {
                Frame::Heartbeat => continue,
                frame => return Some(frame),
            }
        }
    }

    pub async fn recv_any(&mut self) -> Option<Frame> {
        runtime::timeout(WAIT, async {
            loop {
                if let Some((frame, used)) =
                    frame::decode(&self.buf, DEFAULT_MAX_FRAME_LEN).unwrap()
                {
                    self.buf.drain(..used);
                    return Some(frame);
                }
                let mut chunk = [0u8; 4096];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .expect("no frame in time")
    }
}
