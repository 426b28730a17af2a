//! The participant mesh: one channel between every pair of participants of a cluster,
//! with ZooKeeper's QuorumCnxManager rule — of two connections between a pair only the
//! one dialled by the larger node id survives.
//!
//! The larger id of each pair dials the smaller one persistently (`dial`, the same
//! channel code and heartbeats as every other channel). The smaller id only nudges: at
//! start it connects once to each larger peer, which closes that connection right after
//! the handshake (`Listener::serve_mesh` / `serve`) and dials back at once instead of at
//! the end of its reconnect backoff. So a restarted participant is reconnected promptly,
//! and two participants starting together still end with exactly one channel.
//!
//! Mesh channels are reported like any other: `Up`/`Down` on the node's event queue,
//! with `peer_role() == Role::Participant`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;

use futures::future::{Either, select};
use tracing::{debug, error, warn};

use crate::config::ChannelConfig;
use crate::dial::{self, DialHandle, Redial};
use crate::events::EventSender;
use crate::listen::{Listener, ServeHandle};
use crate::msg::{NodeId, Role};
use crate::runtime::{self, Sender};

/// Starts the mesh of participant `config.node_id` with `peers` (the other participants
/// of the cluster and their listen addresses; our own id, if listed, is skipped): dials
/// every peer with a smaller id and keeps that channel up; nudges every peer with a
/// larger id once so that it dials us. Events go to `events`. Dropping the handle stops
/// the dialling and closes the channels we dialled.
///
/// Serve the node's listener with `Listener::serve_mesh(.., &handle)` (bound before
/// this is called) so connections from smaller ids are turned into prompt dial-backs.
pub fn mesh(
    peers: BTreeMap<NodeId, SocketAddr>,
    config: Arc<ChannelConfig>,
    events: EventSender,
) -> MeshHandle {
    let local = config.node_id;
    if config.role != Role::Participant {
        error!(role = ?config.role, "mesh started with a non-participant config; peers will refuse it");
    }
    let (stop, stop_rx) = runtime::bounded::<()>(1);
    let mut redial = Redial::default();
    let mut dials = Vec::new();
    for (&peer, &addr) in &peers {
        if peer < local {
            let kick_rx = redial.add(peer);
            dials.push(dial::spawn_dial(
                addr,
                peer,
                Role::Participant,
                config.clone(),
                events.clone(),
                Some(kick_rx),
            ));
        } else if peer > local {
            let (config, stop) = (config.clone(), stop_rx.clone());
            runtime::spawn(async move {
                let nudge = pin!(dial::nudge(addr, peer, &config));
                if let Either::Left((result, _)) = select(nudge, pin!(stop.recv())).await {
                    match result {
                        Ok(()) => debug!(%peer, %addr, "nudged larger peer to dial us"),
                        // It dials us anyway once it is up: this is only a shortcut.
                        Err(error) => debug!(%peer, %addr, %error, "cannot nudge larger peer"),
                    }
                }
            });
        } else {
            warn!(%peer, %addr, "our own id is among the mesh peers; skipped");
        }
    }
    MeshHandle {
        redial: Arc::new(redial),
        _dials: dials,
        _stop: stop,
    }
}

/// The running mesh of one participant. Dropping it stops the diallers (closing the
/// channels they keep) and any nudge still under way.
pub struct MeshHandle {
    redial: Arc<Redial>,
    _dials: Vec<DialHandle>,
    _stop: Sender<()>,
}

impl fmt::Debug for MeshHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshHandle")
            .field("dialled_peers", &self.redial.peers().collect::<Vec<_>>())
            .finish()
    }
}

impl Listener {
    /// `serve` for a participant in a mesh: accepts `accept_roles` plus `Participant`,
    /// and a connection from a smaller participant id makes `mesh` dial that peer back
    /// at once instead of at the end of its reconnect backoff.
    pub fn serve_mesh(
        self,
        config: Arc<ChannelConfig>,
        mut accept_roles: Vec<Role>,
        events: EventSender,
        mesh: &MeshHandle,
    ) -> ServeHandle {
        if !accept_roles.contains(&Role::Participant) {
            accept_roles.push(Role::Participant);
        }
        self.spawn_accept_loop(config, accept_roles, events, Some(mesh.redial.clone()))
    }
}
