//! The accepting side: a bound `Listener` and its accept loop. Each connection takes a
//! handshake slot, does the handshake within `handshake_timeout` (a refusal gets a
//! `Reject` and one rate-limited log line per peer address), then holds a client or peer
//! slot (`slots`); the mesh rule drops connections from smaller participant ids, and the
//! rest run as channels until their end.

use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::{Either, select};
use tracing::{error, info, warn};

use crate::config::ChannelConfig;
use crate::connection::{run_connection, warn_if_invalid};
use crate::dial::Redial;
use crate::events::EventSender;
use crate::handshake::{self, HandshakeError, Handshaken, dialled_by_smaller_id};
use crate::lock;
use crate::msg::Role;
use crate::refusals::{REFUSAL_LOG_ADDRS_MAX, REFUSAL_LOG_INTERVAL, RefusalLog};
use crate::runtime::{self, Receiver, Sender, TcpListener, TcpStream};
use crate::slots::{Slot, Slots};

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
            slots: Slots::new(&config.connections),
            config,
            accept_roles: accept_roles.into(),
            redial,
            refusals: Mutex::new(RefusalLog::new(REFUSAL_LOG_INTERVAL, REFUSAL_LOG_ADDRS_MAX)),
            duplicates: Mutex::new(RefusalLog::new(REFUSAL_LOG_INTERVAL, REFUSAL_LOG_ADDRS_MAX)),
            unauthenticated: Mutex::new(RefusalLog::new(
                REFUSAL_LOG_INTERVAL,
                REFUSAL_LOG_ADDRS_MAX,
            )),
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
    /// One rate limit per kind of failure, so that (say) refused clients cannot hide
    /// a duplicate node id behind their line from the same address.
    refusals: Mutex<RefusalLog>,
    duplicates: Mutex<RefusalLog>,
    unauthenticated: Mutex<RefusalLog>,
    slots: Slots,
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
        // Closed unanswered: a peer that has not shown who it is gets no frame from us.
        let handshaking = match rules.slots.handshakes.take() {
            Ok(slot) => slot,
            Err(reason) => {
                if let Some(suppressed) =
                    lock(&rules.refusals).admit(peer_addr.ip(), Instant::now())
                {
                    warn!(addr = %peer_addr, %reason, suppressed, "closing new connection");
                }
                continue;
            }
        };
        let (rules, events, stop) = (rules.clone(), events.clone(), stop.clone());
        runtime::spawn(async move {
            serve_connection(stream, peer_addr, &rules, events, stop, handshaking).await;
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer_addr: SocketAddr,
    rules: &AcceptRules,
    events: EventSender,
    stop: Receiver<()>,
    handshaking: Slot,
) {
    let config = &rules.config;
    if let Err(error) = stream.set_nodelay(true) {
        warn!(addr = %peer_addr, %error, "cannot set TCP_NODELAY");
    }
    let handshake = handshake::accept(stream, peer_addr, config, &rules.accept_roles, &rules.slots);
    let outcome = runtime::timeout(config.handshake_timeout, handshake).await;
    drop(handshaking);
    let failure = match outcome {
        None => HandshakeError::Io("handshake timed out".to_string()),
        Some(Err(error)) => error,
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
    let log = match failure {
        HandshakeError::Duplicate(_) => &rules.duplicates,
        HandshakeError::Unauthenticated(_) => &rules.unauthenticated,
        _ => &rules.refusals,
    };
    let Some(suppressed) = lock(log).admit(peer_addr.ip(), Instant::now()) else {
        return;
    };
    match failure {
        // Two processes with one id: a configuration error that breaks the cluster.
        HandshakeError::Duplicate(reason) => error!(addr = %peer_addr, %reason, suppressed,
            "second node with a live member's id refused; connection closed (one line per address per {REFUSAL_LOG_INTERVAL:?})"),
        failure => warn!(addr = %peer_addr, error = %failure, suppressed,
            "handshake failed; connection closed (one line per address per {REFUSAL_LOG_INTERVAL:?})"),
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
