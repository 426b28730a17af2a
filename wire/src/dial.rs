//! The dialling side: a task per peer that keeps one connection up (connect, handshake,
//! run it; on close redial with capped exponential backoff and jitter), the redial table
//! that lets a listener cut a backoff short (the mesh's dial-back), and the one-shot
//! `nudge` handshake.

use std::collections::BTreeMap;
use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::sync::Arc;

use futures::future::{Either, select};
use tracing::{debug, error, warn};

use crate::config::ChannelConfig;
use crate::connection::{run_connection, warn_if_invalid};
use crate::events::EventSender;
use crate::handshake::{self, HandshakeError};
use crate::msg::{NodeId, Role};
use crate::runtime::{self, Receiver, Sender};

/// Reconnect delays are the backoff times a random factor in this range (jitter keeps
/// many nodes from redialling in lockstep).
const JITTER_MIN: f64 = 0.75;
const JITTER_MAX: f64 = 1.25;

/// Keeps the dial loop running; dropping it stops the loop and closes its connection.
#[derive(Debug)]
pub struct DialHandle {
    _stop: Sender<()>,
}

/// Spawns a task that keeps one connection to `peer` at `addr` up: connect, handshake
/// (the peer's Hello must carry node id `peer`), Up; on close Down, then reconnect with capped
/// exponential backoff and jitter. Stops when the handle is dropped.
pub fn dial(
    addr: SocketAddr,
    peer: NodeId,
    peer_role: Role,
    config: Arc<ChannelConfig>,
    events: EventSender,
) -> DialHandle {
    spawn_dial(addr, peer, peer_role, config, events, None)
}

/// `dial`, with `kick` cutting a reconnect delay short (the mesh's dial-back).
pub(crate) fn spawn_dial(
    addr: SocketAddr,
    peer: NodeId,
    peer_role: Role,
    config: Arc<ChannelConfig>,
    events: EventSender,
    kick: Option<Receiver<()>>,
) -> DialHandle {
    warn_if_invalid(&config);
    let (stop, stop_rx) = runtime::bounded(1);
    let target = DialTarget {
        addr,
        peer,
        peer_role,
    };
    runtime::spawn(dial_loop(target, config, events, stop_rx, kick));
    DialHandle { _stop: stop }
}

struct DialTarget {
    addr: SocketAddr,
    peer: NodeId,
    peer_role: Role,
}

/// Resolves when `kick` receives; never if there is none (or its senders are gone).
async fn kicked(kick: Option<&Receiver<()>>) {
    if let Some(kick) = kick
        && kick.recv().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

async fn dial_loop(
    target: DialTarget,
    config: Arc<ChannelConfig>,
    events: EventSender,
    stop: Receiver<()>,
    kick: Option<Receiver<()>>,
) {
    let DialTarget {
        addr,
        peer,
        peer_role,
    } = target;
    let mut backoff = config.reconnect_backoff_min;
    let peer_roles = [peer_role];
    // A refusal is logged as an ERROR once, and again only when its reason changes: the
    // peer (or we) will refuse every retry the same way until someone fixes the setup.
    let mut last_refusal = None::<String>;
    loop {
        let attempt = runtime::timeout(
            config.handshake_timeout,
            handshake::dial(addr, &peer_roles, Some(peer), &config, true),
        );
        let attempt = match select(pin!(attempt), pin!(stop.recv())).await {
            Either::Left((attempt, _)) => attempt,
            Either::Right(_) => return,
        };
        match attempt {
            None => warn!(%peer, %addr, "handshake timed out; will retry"),
            Some(Err(
                error @ (HandshakeError::Rejected(_)
                | HandshakeError::Refused(_)
                | HandshakeError::Duplicate(_)
                | HandshakeError::Unauthenticated(_)),
            )) => {
                let reason = crate::quote::quote(&error.to_string());
                if last_refusal.as_ref() != Some(&reason) {
                    error!(%peer, %addr, %reason, "handshake refused; will retry (logged again only if the reason changes)");
                    last_refusal = Some(reason);
                } else {
                    debug!(%peer, %addr, %reason, "handshake refused again; will retry");
                }
            }
            Some(Err(error)) => warn!(%peer, %addr, %error, "cannot connect; will retry"),
            Some(Ok(conn)) => {
                backoff = config.reconnect_backoff_min;
                last_refusal = None;
                // A kick that comes while connected stays pending and makes the next
                // redial immediate: at worst one early attempt, never a lost dial-back.
                run_connection(conn, config.clone(), events.clone(), stop.clone()).await;
            }
        }
        if stop.is_closed() {
            return;
        }
        let delay = backoff.mul_f64(rand::random_range(JITTER_MIN..JITTER_MAX));
        backoff = (backoff * 2).min(config.reconnect_backoff_max);
        debug!(%peer, %addr, ?delay, "reconnecting after delay");
        let (sleep, kicked) = (pin!(runtime::sleep(delay)), pin!(kicked(kick.as_ref())));
        match select(select(sleep, kicked), pin!(stop.recv())).await {
            Either::Left((Either::Left(_), _)) => {}
            Either::Left((Either::Right(_), _)) => {
                debug!(%peer, %addr, "peer dialled us; dialling back now");
                backoff = config.reconnect_backoff_min;
            }
            Either::Right(_) => return,
        }
    }
}

/// The redial table: one kick per peer we dial persistently, so that a listener that
/// dropped a connection from that peer can make our dialler retry at once. Bounded by
/// the peers given at construction.
#[derive(Debug, Default)]
pub(crate) struct Redial {
    kicks: BTreeMap<NodeId, Sender<()>>,
}

impl Redial {
    /// A kick for `peer`, to hand to its dialler (`spawn_dial`).
    pub(crate) fn add(&mut self, peer: NodeId) -> Receiver<()> {
        // Capacity 1: a pending kick already covers any that come after it.
        let (kick, kick_rx) = runtime::bounded(1);
        self.kicks.insert(peer, kick);
        kick_rx
    }

    /// `peer` dialled us and was dropped: our dialler to it retries now. `false` if we
    /// do not dial `peer` (it is not among our peers).
    pub(crate) fn dial_back(&self, peer: NodeId) -> bool {
        match self.kicks.get(&peer) {
            Some(kick) => {
                // Full: a kick is already pending. Closed: the mesh was dropped.
                let _ = kick.try_send(());
                true
            }
            None => false,
        }
    }

    pub(crate) fn peers(&self) -> impl Iterator<Item = &NodeId> {
        self.kicks.keys()
    }
}

/// One handshake with a larger participant id, which closes the connection and dials us
/// back (the larger id dials). Returns once the handshake is done (or failed); emits no
/// events. Bounded by `handshake_timeout`.
pub(crate) async fn nudge(
    addr: SocketAddr,
    peer: NodeId,
    config: &ChannelConfig,
) -> Result<(), String> {
    let attempt = handshake::dial(addr, &[Role::Participant], Some(peer), config, false);
    match runtime::timeout(config.handshake_timeout, attempt).await {
        Some(Ok(conn)) => {
            let _ = conn.stream.shutdown(Shutdown::Both);
            Ok(())
        }
        Some(Err(error)) => Err(error.to_string()),
        None => Err("handshake timed out".into()),
    }
}
