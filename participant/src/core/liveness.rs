//! PeerUp and PeerDown: a coordinator or peer connecting makes the txns it concerns ask
//! again at once; one going down sends 2PC txns to their peers and 3PC txns into the
//! termination protocol.

use wire::{NodeId, Protocol, ToCoordinator, TxnId};

use super::state::set_timer;
use super::{Millis, Participant};

impl Participant {
    pub(super) fn on_peer_up(&mut self, now: Millis, peer: NodeId) {
        self.peers_up.insert(peer);
        // The old channel may have dropped our queries: ask about everything at once.
        let min_ms = self.config.decision_query_backoff_min_ms;
        let concerned: Vec<TxnId> = self
            .active
            .iter()
            .filter(|(_, active)| {
                active.is_undecided()
                    && (active.protocol == Protocol::TwoPhase || active.recovered)
                    && (active.coordinator == peer || active.peers.contains(&peer))
            })
            .map(|(txn, _)| *txn)
            .collect();
        for txn in concerned {
            let Some(active) = self.active.get_mut(&txn) else {
                continue;
            };
            active.backoff_ms = min_ms;
            match active.protocol {
                Protocol::TwoPhase => {
                    let at = now.plus(min_ms);
                    set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
                    if active.coordinator == peer {
                        self.send(peer, ToCoordinator::DecisionQuery { txn });
                    } else {
                        self.ask_peers(txn, Some(peer));
                    }
                }
                // A recovered 3PC txn starts a round with whoever is up now.
                Protocol::ThreePhase => self.start_round(now, txn),
            }
        }
    }

    pub(super) fn on_peer_down(&mut self, now: Millis, peer: NodeId) {
        self.peers_up.remove(&peer);
        let concerned: Vec<TxnId> = self
            .active
            .iter()
            .filter(|(_, active)| {
                active.is_undecided()
                    && (active.coordinator == peer || active.peers.contains(&peer))
            })
            .map(|(txn, _)| *txn)
            .collect();
        let min_ms = self.config.decision_query_backoff_min_ms;
        for txn in concerned {
            let Some(active) = self.active.get_mut(&txn) else {
                continue;
            };
            match active.protocol {
                // 2PC: the coordinator gone, its in-doubt txns ask their peers at once.
                Protocol::TwoPhase if active.coordinator == peer => {
                    active.backoff_ms = min_ms;
                    let at = now.plus(min_ms);
                    set_timer(&mut self.timers, txn, &mut active.timer_at, Some(at));
                    self.ask_peers(txn, None);
                }
                Protocol::TwoPhase => {}
                Protocol::ThreePhase => self.termination_peer_down(now, txn, peer),
            }
        }
    }
}
