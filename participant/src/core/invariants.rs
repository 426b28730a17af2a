//! The core's invariants, checked by tests and the simulator after every input.

use std::collections::{BTreeMap, BTreeSet};

use wire::{Protocol, TxnId, TxnState};

use super::answer::active_answer;
use super::locks::{self, Mode};
use super::state::{Active, End, Wants, rank, voted_state};
use super::{Millis, PARTICIPANTS_PER_TXN_MAX, Participant, WAITERS_PER_TXN_MAX};

impl Participant {
    /// Panics if the core's state is inconsistent. Tests and the simulator call it after
    /// every input.
    pub fn check_invariants(&self) {
        self.check_locks();
        let mut timers = BTreeSet::new();
        for (txn, active) in &self.active {
            assert!(
                !self.done.contains_key(txn),
                "txn {txn} both active and done"
            );
            self.check_active(*txn, active);
            if let Some(at) = active.timer_at {
                timers.insert((at, *txn));
            }
        }
        assert_eq!(timers, self.timers, "timers differ from the txns' timers");
        for (lsn, (txn, _)) in &self.pending {
            assert!(*lsn < self.next_lsn, "lsn {lsn} pending but never issued");
            assert!(self.knows(*txn), "pending record of forgotten txn {txn}");
        }
        for (lsn, sends) in &self.held {
            assert!(
                self.pending.contains_key(lsn),
                "sends held on lsn {lsn}, which is not pending"
            );
            assert!(sends.len() <= PARTICIPANTS_PER_TXN_MAX);
        }
        let mut durable = 0;
        for (txn, done) in &self.done {
            assert!(done.waiters.len() <= WAITERS_PER_TXN_MAX);
            match done.pending {
                Some(lsn) => {
                    assert_eq!(
                        self.pending.get(&lsn).map(|(txn, _)| txn),
                        Some(txn),
                        "done record not pending"
                    );
                    assert!(
                        done.end != End::Committed,
                        "committed before its record was durable"
                    );
                }
                None => {
                    assert!(done.waiters.is_empty(), "waiters on a durable outcome");
                    durable += 1;
                }
            }
        }
        assert_eq!(durable, self.finished.len(), "finished list out of step");
        assert!(self.finished.len() <= self.config.finished_txns_max);
    }

    /// The lock table holds exactly what the lock holders need: each active txn holds every
    /// key it touches, exclusively iff it writes it; each read hold its keys, shared; and
    /// nothing else holds a lock.
    fn check_locks(&self) {
        let mut expected: BTreeMap<String, (BTreeSet<TxnId>, Option<TxnId>)> = BTreeMap::new();
        for (txn, active) in &self.active {
            for (key, mode) in locks::modes_of_entries(&active.entries) {
                let slot = expected.entry(key).or_default();
                match mode {
                    Mode::Shared => {
                        slot.0.insert(*txn);
                    }
                    Mode::Exclusive => slot.1 = Some(*txn),
                }
            }
        }
        for (txn, hold) in &self.read_holds {
            assert!(
                !self.active.contains_key(txn),
                "txn {txn} both active and read-holding"
            );
            for key in &hold.keys {
                expected.entry(key.clone()).or_default().0.insert(*txn);
            }
        }
        let hold_timers: BTreeSet<(Millis, TxnId)> = self
            .read_holds
            .iter()
            .map(|(txn, hold)| (hold.until, *txn))
            .collect();
        assert_eq!(
            hold_timers, self.hold_timers,
            "hold timers differ from the holds"
        );
        assert!(
            self.active.len() + self.read_holds.len() <= self.config.active_txns_max,
            "more lock holders than active_txns_max"
        );
        let mut seen = 0;
        for (key, lock) in self.locks.iter() {
            let (readers, writer) = expected
                .get(key)
                .unwrap_or_else(|| panic!("lock on {key:?} held by no txn that touches it"));
            match lock {
                locks::Lock::Exclusive(holder) => {
                    assert!(
                        readers.is_empty(),
                        "{key:?}: readers {readers:?} beside writer {holder}"
                    );
                    assert_eq!(writer, &Some(*holder), "{key:?}: exclusive holder");
                }
                locks::Lock::Shared(holders) => {
                    assert!(!holders.is_empty(), "{key:?}: empty shared lock kept");
                    assert_eq!(writer, &None, "{key:?}: writer holds no exclusive lock");
                    assert_eq!(holders, readers, "{key:?}: shared holders");
                }
            }
            seen += 1;
        }
        assert_eq!(seen, expected.len(), "some touched key is not locked");
        assert!(
            self.locks.len()
                <= self
                    .config
                    .active_txns_max
                    .saturating_mul(self.config.ops_per_txn_max),
            "lock table beyond its bound"
        );
    }

    fn check_active(&self, txn: TxnId, active: &Active) {
        let allowed: &[TxnState] = match active.protocol {
            Protocol::TwoPhase => &[TxnState::Prepared, TxnState::Committed],
            Protocol::ThreePhase => &[
                TxnState::Waiting,
                TxnState::PreCommitted,
                TxnState::Committed,
            ],
        };
        assert!(
            allowed.contains(&active.target),
            "txn {txn}: target {:?} not a {} state",
            active.target,
            active.protocol.as_str()
        );
        if let Some(durable) = active.durable {
            assert!(allowed.contains(&durable), "txn {txn}: durable {durable:?}");
            assert!(
                rank(durable) <= rank(active.target),
                "txn {txn}: durable {durable:?} beyond target {:?}",
                active.target
            );
        } else {
            assert_eq!(
                active.target,
                voted_state(active.protocol),
                "txn {txn} moved on before its vote was durable"
            );
        }
        if active.durable != Some(active.target) {
            assert!(
                self.pending.values().any(|(pending, _)| *pending == txn),
                "txn {txn} moving to {:?} with no record pending",
                active.target
            );
        }
        assert_eq!(
            active.timer_at.is_some(),
            active.is_undecided(),
            "txn {txn}: a timer iff voted and undecided"
        );
        assert!(active.termination.is_none() || active.is_undecided());
        assert!(
            active.termination.is_none() || active.protocol == Protocol::ThreePhase,
            "txn {txn}: termination protocol under 2PC"
        );
        if let Some(termination) = &active.termination {
            termination.check(self.node_id, active.recovered, &active.peers);
        }
        assert!(active.waiters.len() <= WAITERS_PER_TXN_MAX);
        for waiter in &active.waiters {
            if let Some(durable) = active.durable {
                assert!(
                    waiter.wants == Wants::State
                        || active_answer(txn, active, waiter.wants, durable).is_none(),
                    "txn {txn}: waiter {waiter:?} could have been answered"
                );
            }
        }
        assert!(active.backoff_ms <= self.config.decision_query_backoff_max_ms);
        assert!(!active.peers.contains(&self.node_id));
        assert!(
            active
                .undecided_peers
                .iter()
                .all(|p| active.peers.contains(p))
        );
    }
}
