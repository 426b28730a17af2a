//! Connection slots of one listener (pure): a pool per kind of connection — before the
//! handshake, clients, cluster members — each with its own bound, so a flood of one
//! kind cannot take the slots of another (peers keep theirs however many clients come).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::ConnectionLimits;
use crate::msg::Role;

/// One bounded pool.
#[derive(Clone, Debug)]
pub(crate) struct Pool {
    live: Arc<AtomicUsize>,
    max: usize,
    name: &'static str,
}

/// A taken slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    live: Arc<AtomicUsize>,
}

impl Pool {
    fn new(max: usize, name: &'static str) -> Pool {
        Pool {
            live: Arc::new(AtomicUsize::new(0)),
            max,
            name,
        }
    }

    /// A slot, or why not (for the log and the Reject).
    pub(crate) fn take(&self) -> Result<Slot, String> {
        let taken = self
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < self.max).then_some(live + 1)
            });
        match taken {
            Ok(_) => Ok(Slot {
                live: self.live.clone(),
            }),
            Err(_) => Err(format!(
                "too many {} connections (limit {})",
                self.name, self.max
            )),
        }
    }

    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The pools of one listener.
#[derive(Clone, Debug)]
pub(crate) struct Slots {
    pub(crate) handshakes: Pool,
    clients: Pool,
    peers: Pool,
}

impl Slots {
    pub(crate) fn new(limits: &ConnectionLimits) -> Slots {
        Slots {
            handshakes: Pool::new(limits.handshakes_max, "unauthenticated (handshaking)"),
            clients: Pool::new(limits.client_connections_max, "client"),
            peers: Pool::new(
                limits.peer_connections_max,
                "peer (coordinator and participant)",
            ),
        }
    }

    /// The pool of a handshaken connection from a peer of `role`.
    pub(crate) fn for_role(&self, role: Role) -> &Pool {
        match role {
            Role::Client => &self.clients,
            Role::Coordinator | Role::Participant => &self.peers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pool_is_bounded_on_its_own_and_slots_come_back_when_dropped() {
        let slots = Slots::new(&ConnectionLimits {
            handshakes_max: 1,
            client_connections_max: 2,
            peer_connections_max: 1,
        });
        let clients: Vec<Slot> = (0..2)
            .map(|_| slots.for_role(Role::Client).take().unwrap())
            .collect();
        let refused = slots.for_role(Role::Client).take().unwrap_err();
        assert_eq!(refused, "too many client connections (limit 2)");
        // Clients took all theirs; a participant still gets its own.
        let peer = slots.for_role(Role::Participant).take().unwrap();
        assert!(slots.for_role(Role::Coordinator).take().is_err());
        let handshake = slots.handshakes.take().unwrap();
        assert!(slots.handshakes.take().is_err());
        drop((clients, peer, handshake));
        assert_eq!(slots.for_role(Role::Client).live(), 0);
        assert_eq!(slots.handshakes.live(), 0);
        assert!(slots.for_role(Role::Coordinator).take().is_ok());
    }
}
