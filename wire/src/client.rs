//! Request/response convenience over one channel, for CLIs and load generators:
//! `call()` is pipelined, and a background task routes each response to its waiter.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use foldhash::HashMap;
use futures::channel::oneshot;
use tracing::{debug, warn};

use crate::auth::{Auth, Secret};
use crate::channel::Channel;
use crate::config::{ChannelConfig, REQUEST_TIMEOUT_MAX};
use crate::connection::run_connection;
use crate::events::{ChannelEvent, EventReceiver, event_queue};
use crate::frame::FrameError;
use crate::handshake::{self, HandshakeError};
use crate::msg::{NodeId, Request, RequestId, Response, Role};
use crate::pipeline::SendError;
use crate::runtime::{self, Receiver, Sender};

/// Events buffered between a client's connection and its response router.
const CLIENT_EVENT_QUEUE_LEN: usize = 1024;

/// Why a client call did not return a response.
#[derive(thiserror::Error, Debug)]
pub enum ClientError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("server rejected the connection: {0}")]
    Rejected(String),
    /// No answer in time: the outcome of the request is unknown, not failed.
    #[error("timed out")]
    Timeout,
    #[error("connection closed")]
    Closed,
    /// More calls outstanding than the channel's queue holds: back off and retry.
    #[error("too many calls in flight")]
    QueueFull,
    /// The request is over the server's frame limit (or ours): nothing was sent, and the
    /// connection stays up for smaller ones.
    #[error("request refused before sending: {0}")]
    TooLarge(String),
    #[error("protocol error: {0}")]
    Frame(FrameError),
}

/// One connection with role `Client` (node id 0) and its pending calls.
#[derive(Debug)]
pub struct Client {
    channel: Channel,
    waiters: Arc<Mutex<Waiters>>,
    /// Dropped with the client: closes the connection.
    _stop: Sender<()>,
}

/// Calls awaiting their response, by request id. Bounded by the channel: it refuses
/// requests past `in_flight_max + send_queue_max`.
#[derive(Debug, Default)]
struct Waiters {
    by_id: HashMap<RequestId, oneshot::Sender<Response>>,
    closed: bool,
}

impl Client {
    /// Connects with role Client (node id NodeId(0)), handshake, heartbeats.
    pub async fn connect(
        addr: SocketAddr,
        cluster_id: &str,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        Client::connect_with_token(addr, cluster_id, None, timeout).await
    }

    /// `connect`, proving `token` (the node's client token) in the handshake when given.
    pub async fn connect_with_token(
        addr: SocketAddr,
        cluster_id: &str,
        token: Option<Secret>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let config = Arc::new(ChannelConfig {
            auth: Auth {
                cluster_secret: None,
                client_token: token,
            },
            handshake_timeout: timeout,
            // Each call bounds its own wait and abandons its request when that ends, so
            // the channel's deadline must not cut a long call (a Submit waits for the
            // whole transaction) short.
            request_timeout: REQUEST_TIMEOUT_MAX,
            ..ChannelConfig::new(NodeId(0), Role::Client, cluster_id)
        });
        let (stop, stop_rx) = runtime::bounded(1);
        let connected = runtime::timeout(timeout, connect(addr, config, stop_rx));
        let (channel, events) = connected.await.ok_or(ClientError::Timeout)??;
        let waiters = Arc::new(Mutex::new(Waiters::default()));
        runtime::spawn(route(channel.clone(), events, waiters.clone()));
        Ok(Client {
            channel,
            waiters,
            _stop: stop,
        })
    }

    /// Pipelined: may be called concurrently from many tasks (&self); returns the response body.
    pub async fn call(
        &self,
        msg: impl Into<Request>,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        let msg = msg.into();
        let (reply, reply_rx) = oneshot::channel();
        let id = {
            // Registering under the lock the router takes means a fast response cannot
            // arrive before its waiter exists.
            let mut waiters = lock(&self.waiters);
            if waiters.closed {
                return Err(ClientError::Closed);
            }
            let id = self.channel.request(msg).map_err(|error| match error {
                SendError::QueueFull => ClientError::QueueFull,
                SendError::Closed => ClientError::Closed,
                error @ SendError::TooLarge { .. } => ClientError::TooLarge(error.to_string()),
            })?;
            waiters.by_id.insert(id, reply);
            id
        };
        match runtime::timeout(timeout, reply_rx).await {
            Some(Ok(msg)) => Ok(msg),
            Some(Err(oneshot::Canceled)) => Err(ClientError::Closed),
            None => {
                lock(&self.waiters).by_id.remove(&id);
                self.channel.abandon(id);
                Err(ClientError::Timeout)
            }
        }
    }

    /// The underlying channel (peer id, epoch, liveness).
    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}

/// A connection with role `Client` to any coordinator or participant, and its events.
async fn connect(
    addr: SocketAddr,
    config: Arc<ChannelConfig>,
    stop: Receiver<()>,
) -> Result<(Channel, EventReceiver), ClientError> {
    let roles = [Role::Coordinator, Role::Participant];
    let conn = match handshake::dial(addr, &roles, None, &config, false).await {
        Ok(conn) => conn,
        Err(HandshakeError::Rejected(reason)) => return Err(ClientError::Rejected(reason)),
        Err(HandshakeError::Frame(error)) => return Err(ClientError::Frame(error)),
        Err(error) => return Err(ClientError::Connect(error.to_string())),
    };
    let (events, events_rx) = event_queue(CLIENT_EVENT_QUEUE_LEN);
    runtime::spawn(run_connection(conn, config, events, stop));
    match events_rx.recv().await {
        Ok(ChannelEvent::Up { channel }) => Ok((channel, events_rx)),
        _ => Err(ClientError::Closed),
    }
}

fn lock(waiters: &Mutex<Waiters>) -> MutexGuard<'_, Waiters> {
    waiters
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Hands each response to its waiter until the connection goes down, then fails the rest.
async fn route(channel: Channel, events: EventReceiver, waiters: Arc<Mutex<Waiters>>) {
    while let Ok(event) = events.recv().await {
        match event {
            ChannelEvent::Response { id, msg, .. } => {
                let waiter = lock(&waiters).by_id.remove(&id);
                match waiter {
                    // The caller may have timed out and gone: nothing to tell.
                    Some(waiter) => drop(waiter.send(msg)),
                    None => debug!(id = id.0, "response after its call timed out; dropped"),
                }
            }
            ChannelEvent::Request { id, msg, .. } => {
                warn!(peer = %channel.peer(), id = id.0, "request sent to a client; refused");
                let refusal = msg.refused("clients serve no requests".into());
                let _ = channel.respond(id, refusal);
            }
            ChannelEvent::Down { .. } => break,
            ChannelEvent::Up { .. } => {}
        }
    }
    let mut waiters = lock(&waiters);
    waiters.closed = true;
    // Dropping the senders wakes every caller with `Closed`.
    waiters.by_id.clear();
}
