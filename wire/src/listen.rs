//! The accepting side: a bound `Listener` and its accept loop. Each connection does the
//! handshake within `handshake_timeout` (a refusal gets a `Reject` and one rate-limited
//! log line per peer address), the mesh rule drops connections from smaller participant
//! ids, and the rest run as channels until their end.

use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::{Either, select};
use tracing::{info, warn};

use crate::config::{CONNECTIONS_MAX, ChannelConfig};
use crate::connection::{run_connection, warn_if_invalid};
use crate::dial::Redial;
use crate::events::EventSender;
use crate::handshake::{self, Handshaken};
use crate::lock;
use crate::msg::{Hello, Role};
use crate::refusals::{REFUSAL_LOG_ADDRS_MAX, REFUSAL_LOG_INTERVAL, RefusalLog};
use crate::runtime::{self, Receiver, Sender, TcpListener, TcpStream};

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop cannot spin.
const ACCEPT_ERROR_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// A bound listening socket, not yet serving.
pub struct Listener {
    inner: TcpListener,
    local_addr: SocketAddr,
}

impl Listener {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Listener> {
        let inner = TcpListener::bind(addr).await?;
        let local_addr = inner.local_addr()?;
        Ok(Listener { inner, local_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Spawns the accept loop: each connection does the handshake (checks magic, version,
    /// cluster, role in `accept_roles`; a mismatch gets a Reject frame and a log line) and emits Up.
    ///
    /// Between participants the mesh rule holds here too: when we are a participant, a
    /// participant with a smaller node id is closed right after the handshake (the
    /// larger id dials; see `mesh`).
    pub fn serve(
        self,
        config: Arc<ChannelConfig>,
        accept_roles: Vec<Role>,
        events: EventSender,
    ) -> ServeHandle {
        self.spawn_accept_loop(config, accept_roles, events, None)
    }

    /// `serve`, where a dropped connection from a smaller participant id makes the
    /// dialler in `redial` retry at once (`Listener::serve_mesh`).
    pub(crate) fn spawn_accept_loop(
        self,
        config: Arc<ChannelConfig>,
        accept_roles: Vec<Role>,
        events: EventSender,
        redial: Option<Arc<Redial>>,
    ) -> ServeHandle {
        warn_if_invalid(&config);
        let (stop, stop_rx) = runtime::bounded(1);
        let rules = AcceptRules {
            config,
            accept_roles: accept_roles.into(),
            redial,
            refusals: Mutex::new(RefusalLog::new(REFUSAL_LOG_INTERVAL, REFUSAL_LOG_ADDRS_MAX)),
        };
        // The loop holds a sender too, so dropping the handle detaches rather than stops.
        runtime::spawn(accept_loop(self, rules, events, stop_rx, stop.clone()));
        ServeHandle { stop }
    }
}

/// What an accept loop checks and whom it tells.
struct AcceptRules {
    config: Arc<ChannelConfig>,
    accept_roles: Arc<[Role]>,
    redial: Option<Arc<Redial>>,
    refusals: Mutex<RefusalLog>,
}

/// ZooKeeper's QuorumCnxManager rule: of the connections between two participants only
/// the one dialled by the larger id survives, so a pair dialling each other at once
/// still ends with exactly one channel.
fn dialled_by_smaller_id(config: &ChannelConfig, peer: &Hello) -> bool {
    handshake::is_mesh_connection(config, peer) && peer.node_id < config.node_id
}

/// The running accept loop. Dropping it leaves the loop running (detached);
/// `stop()` ends it and closes every connection it accepted.
#[derive(Debug)]
pub struct ServeHandle {
    stop: Sender<()>,
}

impl ServeHandle {
    pub fn stop(&self) {
        self.stop.close();
    }
}

async fn accept_loop(
    listener: Listener,
    rules: AcceptRules,
    events: EventSender,
    stop: Receiver<()>,
    _keep_open: Sender<()>,
) {
    let rules = Arc::new(rules);
    let live = Arc::new(AtomicUsize::new(0));
    let local = listener.local_addr;
    info!(addr = %local, "listening");
    loop {
        let accepted = match select(pin!(listener.inner.accept()), pin!(stop.recv())).await {
            Either::Left((accepted, _)) => accepted,
            Either::Right(_) => {
                info!(addr = %local, "listener stopped");
                return;
            }
        };
        let (stream, peer_addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(addr = %local, %error, "accept failed");
                runtime::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        if stop.is_closed() {
            // Accepted as we were being stopped (`select` polls `accept` first): a peer
            // that reacts to our stop by redialling must not be served by this listener.
            info!(addr = %local, "listener stopped");
            return;
        }
        if live.load(Ordering::Acquire) >= CONNECTIONS_MAX {
            if let Some(suppressed) = lock(&rules.refusals).admit(peer_addr.ip(), Instant::now()) {
                warn!(addr = %peer_addr, max = CONNECTIONS_MAX, suppressed,
                    "too many connections; closing new one");
            }
            continue;
        }
        live.fetch_add(1, Ordering::AcqRel);
        let (rules, events, stop, live) =
            (rules.clone(), events.clone(), stop.clone(), live.clone());
        runtime::spawn(async move {
            serve_connection(stream, peer_addr, &rules, events, stop).await;
            live.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer_addr: SocketAddr,
    rules: &AcceptRules,
    events: EventSender,
    stop: Receiver<()>,
) {
    let config = &rules.config;
    if let Err(error) = stream.set_nodelay(true) {
        warn!(addr = %peer_addr, %error, "cannot set TCP_NODELAY");
    }
    let handshake = handshake::accept(stream, peer_addr, config, &rules.accept_roles);
    let failure = match runtime::timeout(config.handshake_timeout, handshake).await {
        None => "handshake timed out".to_string(),
        Some(Err(error)) => error.to_string(),
        Some(Ok(conn)) if dialled_by_smaller_id(config, &conn.peer) => {
            drop_for_dial_back(conn, rules.redial.as_deref());
            return;
        }
        Some(Ok(conn)) => {
            run_connection(conn, config.clone(), events, stop).await;
            return;
        }
    };
    config.traffic.handshake_rejected();
    // The error quotes at most a short prefix of what the peer sent.
    if let Some(suppressed) = lock(&rules.refusals).admit(peer_addr.ip(), Instant::now()) {
        warn!(addr = %peer_addr, error = %failure, suppressed,
            "handshake failed; connection closed (one line per address per {REFUSAL_LOG_INTERVAL:?})");
    }
}

/// Closes a connection a smaller participant id dialled (the handshake is complete, so
/// the peer knows we are alive) and makes sure our dialler to it tries now.
fn drop_for_dial_back(conn: Handshaken, redial: Option<&Redial>) {
    let (peer, addr) = (conn.peer.node_id, conn.peer_addr);
    let _ = conn.stream.shutdown(Shutdown::Both);
    match redial.map(|redial| redial.dial_back(peer)) {
        Some(true) => {
            info!(%peer, %addr, "dropping connection from smaller id {peer}; dialling back")
        }
        Some(false) => warn!(%peer, %addr,
            "dropping connection from smaller id {peer}; it is not among our mesh peers, so nobody dials back"),
        None => warn!(%peer, %addr,
            "dropping connection from smaller id {peer}; this listener has no mesh, so nobody dials back"),
    }
}
