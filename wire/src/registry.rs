//! Who is connected: one claim per cluster member (role and node id) that a channel of
//! this node runs to, so that a second process claiming the id of a live member is
//! refused at the handshake instead of replacing the real member's channel.
//!
//! A claim carries the `instance` from the member's Hello (random per process). A new
//! connection with the same instance is the same process reconnecting (say, after a
//! half-open connection we have not noticed yet) and takes the claim over; one with a
//! different instance is refused while the claimed channel is alive: open, and heard
//! from within half the dead-after time (a restarted member's old channel is closed by
//! the peer's kernel, or goes silent, so a genuine restart gets in once it has). Clients
//! are not claimed: they all use node id 0.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::channel::Channel;
use crate::lock;
use crate::msg::{Hello, NodeId, Role};

/// The claims of one node, shared by every connection opened with one `ChannelConfig`
/// (clones share it). Bounded by the node's connection limits: a claim lives only as
/// long as its connection.
#[derive(Clone, Default, Debug)]
pub struct Registry {
    inner: Arc<Mutex<HashMap<(Role, NodeId), Entry>>>,
}

#[derive(Debug)]
struct Entry {
    claim: u64,
    instance: u64,
    peer_addr: SocketAddr,
    /// Set once the connection runs as a channel.
    channel: Option<Channel>,
}

static NEXT_CLAIM: AtomicU64 = AtomicU64::new(1);

/// Holds a member's claim while its connection lives; dropping it gives the claim up
/// (unless a reconnect of the same instance took it over).
#[derive(Debug)]
pub(crate) struct Claim {
    registry: Registry,
    key: (Role, NodeId),
    claim: u64,
}

impl Registry {
    /// Claims `peer` for a connection from `peer_addr`, or says why not (the text of the
    /// Reject). `None` for clients, which are not claimed. `dead_after` is the channels'
    /// silence limit.
    pub(crate) fn claim(
        &self,
        peer: &Hello,
        peer_addr: SocketAddr,
        dead_after: Duration,
    ) -> Result<Option<Claim>, String> {
        if peer.role == Role::Client {
            return Ok(None);
        }
        let key = (peer.role, peer.node_id);
        let mut entries = lock(&self.inner);
        refusal(&entries, peer, peer_addr, dead_after)?;
        let claim = NEXT_CLAIM.fetch_add(1, Ordering::Relaxed);
        entries.insert(
            key,
            Entry {
                claim,
                instance: peer.instance,
                peer_addr,
                channel: None,
            },
        );
        Ok(Some(Claim {
            registry: self.clone(),
            key,
            claim,
        }))
    }

    /// `claim`'s refusal without claiming, for a connection about to be closed (the mesh
    /// rule's drop of a smaller id). It must leave the registry as it was: a claim taken
    /// and dropped here would remove the live channel's claim when the peer is the same
    /// instance (a smaller id's start-up nudge, arriving once our dialler holds it), and
    /// the next impostor of that id would then be let in.
    pub(crate) fn check(
        &self,
        peer: &Hello,
        peer_addr: SocketAddr,
        dead_after: Duration,
    ) -> Result<(), String> {
        if peer.role == Role::Client {
            return Ok(());
        }
        refusal(&lock(&self.inner), peer, peer_addr, dead_after)
    }

    /// Members claimed now.
    pub fn len(&self) -> usize {
        lock(&self.inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why `peer` from `peer_addr` may not claim its id now, if it may not.
fn refusal(
    entries: &HashMap<(Role, NodeId), Entry>,
    peer: &Hello,
    peer_addr: SocketAddr,
    dead_after: Duration,
) -> Result<(), String> {
    match entries.get(&(peer.role, peer.node_id)) {
        Some(held) if held.instance != peer.instance && held.is_alive(dead_after) => Err(format!(
            "duplicate node id: {:?} {} is already connected from {} (another process, still alive); \
                 refusing this second process with the same id from {peer_addr}",
            peer.role, peer.node_id, held.peer_addr
        )),
        _ => Ok(()),
    }
}

impl Entry {
    fn is_alive(&self, dead_after: Duration) -> bool {
        match &self.channel {
            // Still handshaking or delivering its Up: alive.
            None => true,
            Some(channel) => {
                !channel.is_closed() && channel.liveness().last_heard_ago < dead_after / 2
            }
        }
    }
}

impl Claim {
    /// The claimed connection now runs as `channel`.
    pub(crate) fn running(&self, channel: &Channel) {
        if let Some(entry) = lock(&self.registry.inner).get_mut(&self.key)
            && entry.claim == self.claim
        {
            entry.channel = Some(channel.clone());
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut entries = lock(&self.registry.inner);
        if entries
            .get(&self.key)
            .is_some_and(|entry| entry.claim == self.claim)
        {
            entries.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::hello;

    const DEAD_AFTER: Duration = Duration::from_secs(1);

    fn member(id: u32, instance: u64) -> Hello {
        Hello {
            instance,
            ..hello(NodeId(id), Role::Participant, "c1", false)
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_second_instance_is_refused_while_the_first_holds_its_claim() {
        let registry = Registry::default();
        let first = registry.claim(&member(3, 1), addr(1), DEAD_AFTER).unwrap();
        let refused = registry
            .claim(&member(3, 2), addr(2), DEAD_AFTER)
            .unwrap_err();
        assert!(
            refused.starts_with(
                "duplicate node id: Participant 3 is already connected from 127.0.0.1:1"
            ),
            "{refused}"
        );
        // Another id, and a coordinator with the same number, are other members.
        let other = registry.claim(&member(4, 2), addr(2), DEAD_AFTER).unwrap();
        let coordinator = Hello {
            role: Role::Coordinator,
            ..member(3, 2)
        };
        let coordinator = registry.claim(&coordinator, addr(2), DEAD_AFTER).unwrap();
        assert_eq!(registry.len(), 3);
        drop(first);
        let restarted = registry.claim(&member(3, 2), addr(2), DEAD_AFTER).unwrap();
        assert!(restarted.is_some());
        drop((other, coordinator));
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn the_same_instance_takes_its_claim_over_and_the_old_claim_does_not_remove_it() {
        let registry = Registry::default();
        let old = registry.claim(&member(3, 7), addr(1), DEAD_AFTER).unwrap();
        let new = registry.claim(&member(3, 7), addr(2), DEAD_AFTER).unwrap();
        drop(old);
        assert_eq!(registry.len(), 1);
        let refused = registry
            .claim(&member(3, 8), addr(3), DEAD_AFTER)
            .unwrap_err();
        assert!(refused.contains("from 127.0.0.1:2"), "{refused}");
        drop(new);
        assert!(registry.is_empty());
    }

    #[test]
    fn a_check_leaves_the_claims_as_they_were() {
        let registry = Registry::default();
        let held = registry.claim(&member(3, 7), addr(1), DEAD_AFTER).unwrap();
        // The same instance passes the check (its nudge) and the claim stays in place.
        assert_eq!(registry.check(&member(3, 7), addr(2), DEAD_AFTER), Ok(()));
        assert_eq!(registry.len(), 1);
        let refused = registry
            .check(&member(3, 8), addr(3), DEAD_AFTER)
            .unwrap_err();
        assert!(refused.contains("from 127.0.0.1:1"), "{refused}");
        assert!(registry.check(&member(4, 8), addr(3), DEAD_AFTER).is_ok());
        assert_eq!(registry.len(), 1);
        drop(held);
        assert!(registry.is_empty());
    }

    #[test]
    fn clients_are_not_claimed() {
        let registry = Registry::default();
        let client = hello(NodeId(0), Role::Client, "c1", false);
        assert!(
            registry
                .claim(&client, addr(1), DEAD_AFTER)
                .unwrap()
                .is_none()
        );
        assert!(
            registry
                .claim(&client, addr(2), DEAD_AFTER)
                .unwrap()
                .is_none()
        );
        assert!(registry.is_empty());
    }
}
