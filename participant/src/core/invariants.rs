//! The core's invariants, checked by tests and the simulator after every input. A broken
//! one is reported as an [`InvariantViolation`] (the coordinator core's convention too),
//! so the simulator and the model checker can report it with their trace.

use std::collections::{BTreeMap, BTreeSet};

use wire::{Protocol, TxnId, TxnState};

use super::answer::active_answer;
use super::locks::{self, Mode};
use super::state::{Active, End, Wants, rank, voted_state};
use super::{
    Millis, PARTICIPANTS_PER_TXN_MAX, Participant, RESOLVE_WAITERS_MAX, RESOLVING_MAX,
    WAITERS_PER_TXN_MAX,
};

use super::violation::{InvariantViolation, ensure};

impl Participant {
    /// Checks the core's state for consistency. Tests and the simulator call it after
    /// every input.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        self.check_locks()?;
        let mut timers = BTreeSet::new();
        for (txn, active) in &self.active {
            ensure!(
                !self.done.contains_key(txn),
                "txn {txn} both active and done"
            );
            self.check_active(*txn, active)?;
            if let Some(at) = active.timer_at {
                timers.insert((at, *txn));
            }
        }
        ensure!(
            timers == self.timers,
            "timers differ from the txns' timers: {timers:?} != {:?}",
            self.timers
        );
        for (lsn, (txn, _)) in &self.pending {
            ensure!(*lsn < self.next_lsn, "lsn {lsn} pending but never issued");
            ensure!(self.knows(*txn), "pending record of forgotten txn {txn}");
        }
        for (lsn, sends) in &self.held {
            ensure!(
                self.pending.contains_key(lsn),
                "sends held on lsn {lsn}, which is not pending"
            );
            ensure!(
                sends.len() <= PARTICIPANTS_PER_TXN_MAX,
                "{} sends held on lsn {lsn}",
                sends.len()
            );
        }
        self.check_resolving()?;
        let mut durable = 0;
        for (txn, done) in &self.done {
            ensure!(
                done.waiters.len() <= WAITERS_PER_TXN_MAX,
                "txn {txn}: {} waiters",
                done.waiters.len()
            );
            match done.pending {
                Some(lsn) => {
                    ensure!(
                        self.pending.get(&lsn).map(|(txn, _)| txn) == Some(txn),
                        "txn {txn}: done record {lsn} not pending"
                    );
                    ensure!(
                        done.end != End::Committed,
                        "txn {txn} committed before its record was durable"
                    );
                }
                None => {
                    ensure!(
                        done.waiters.is_empty(),
                        "txn {txn}: waiters on a durable outcome"
                    );
                    durable += 1;
                }
            }
        }
        ensure!(
            durable == self.finished.len(),
            "finished list out of step: {durable} durable, {} finished",
            self.finished.len()
        );
        ensure!(
            self.finished.len() <= self.config.finished_txns_max,
            "{} finished txns remembered",
            self.finished.len()
        );
        Ok(())
    }

    /// A txn decided by hand is neither active nor done, its `Heuristic` record is
    /// pending, and its waiters are within their bound.
    fn check_resolving(&self) -> Result<(), InvariantViolation> {
        ensure!(
            self.resolving.len() <= RESOLVING_MAX,
            "{} resolves in flight",
            self.resolving.len()
        );
        for (txn, resolving) in &self.resolving {
            ensure!(
                !self.active.contains_key(txn) && !self.done.contains_key(txn),
                "txn {txn} resolving and also active or done"
            );
            ensure!(
                self.pending.get(&resolving.lsn).map(|(txn, _)| txn) == Some(txn),
                "txn {txn}: heuristic record {} not pending",
                resolving.lsn
            );
            ensure!(
                !resolving.waiters.is_empty() && resolving.waiters.len() <= RESOLVE_WAITERS_MAX,
                "txn {txn}: {} resolve waiters",
                resolving.waiters.len()
            );
        }
        Ok(())
    }

    /// The lock table holds exactly what the lock holders need: each active txn holds every
    /// key it touches, exclusively iff it writes it; each read hold its keys, shared; and
    /// nothing else holds a lock.
    fn check_locks(&self) -> Result<(), InvariantViolation> {
        let mut expected: BTreeMap<String, (BTreeSet<TxnId>, Option<TxnId>)> = BTreeMap::new();
        let mut committing: BTreeMap<String, BTreeSet<TxnId>> = BTreeMap::new();
        for (txn, active) in &self.active {
            if active.target == TxnState::Committed {
                for key in locks::modes_of_entries(&active.entries).into_keys() {
                    committing.entry(key).or_default().insert(*txn);
                }
                continue;
            }
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
        for (txn, resolving) in &self.resolving {
            for (key, mode) in locks::modes_of_entries(&resolving.entries) {
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
            ensure!(
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
        ensure!(
            hold_timers == self.hold_timers,
            "hold timers differ from the holds: {hold_timers:?} != {:?}",
            self.hold_timers
        );
        ensure!(
            self.active.len() + self.read_holds.len() <= self.config.active_txns_max,
            "more lock holders than active_txns_max"
        );
        let mut seen = 0;
        for (key, lock) in self.locks.iter() {
            let Some((readers, writer)) = expected.get(key) else {
                return Err(InvariantViolation(format!(
                    "lock on {key:?} held by no txn that touches it"
                )));
            };
            match lock {
                locks::Lock::Exclusive(holder) => {
                    ensure!(
                        readers.is_empty(),
                        "{key:?}: readers {readers:?} beside writer {holder}"
                    );
                    ensure!(
                        writer == &Some(*holder),
                        "{key:?}: exclusive holder {holder}, writer {writer:?}"
                    );
                }
                locks::Lock::Shared(holders) => {
                    ensure!(!holders.is_empty(), "{key:?}: empty shared lock kept");
                    ensure!(
                        writer.is_none(),
                        "{key:?}: writer {writer:?} holds no exclusive lock"
                    );
                    ensure!(
                        holders == readers,
                        "{key:?}: shared holders {holders:?}, readers {readers:?}"
                    );
                }
            }
            seen += 1;
        }
        let held: BTreeMap<String, BTreeSet<TxnId>> = self
            .locks
            .iter_committing()
            .map(|(key, txns)| (key.clone(), txns.iter().copied().collect()))
            .collect();
        ensure!(
            held == committing,
            "committing lock holders {held:?}, committing txns {committing:?}"
        );
        ensure!(
            seen == expected.len(),
            "some touched key is not locked: {seen} locked, {} touched",
            expected.len()
        );
        ensure!(
            self.locks.len()
                <= (self.config.active_txns_max + RESOLVING_MAX)
                    .saturating_mul(self.config.ops_per_txn_max),
            "lock table beyond its bound"
        );
        Ok(())
    }

    fn check_active(&self, txn: TxnId, active: &Active) -> Result<(), InvariantViolation> {
        let allowed: &[TxnState] = match active.protocol {
            Protocol::TwoPhase => &[TxnState::Prepared, TxnState::Committed],
            Protocol::ThreePhase => &[
                TxnState::Waiting,
                TxnState::PreCommitted,
                TxnState::Committed,
            ],
        };
        ensure!(
            allowed.contains(&active.target),
            "txn {txn}: target {:?} not a {} state",
            active.target,
            active.protocol.as_str()
        );
        if let Some(durable) = active.durable {
            ensure!(allowed.contains(&durable), "txn {txn}: durable {durable:?}");
            ensure!(
                rank(durable) <= rank(active.target),
                "txn {txn}: durable {durable:?} beyond target {:?}",
                active.target
            );
        } else {
            ensure!(
                active.target == voted_state(active.protocol),
                "txn {txn} moved on to {:?} before its vote was durable",
                active.target
            );
        }
        if active.durable != Some(active.target) {
            ensure!(
                self.pending.values().any(|(pending, _)| *pending == txn),
                "txn {txn} moving to {:?} with no record pending",
                active.target
            );
        }
        ensure!(
            active.timer_at.is_some() == active.is_undecided(),
            "txn {txn}: a timer iff voted and undecided"
        );
        ensure!(
            active.termination.is_none() || active.is_undecided(),
            "txn {txn}: termination protocol of a decided txn"
        );
        ensure!(
            active.termination.is_none() || active.protocol == Protocol::ThreePhase,
            "txn {txn}: termination protocol under 2PC"
        );
        if let Some(termination) = &active.termination {
            termination
                .check(self.node_id, active.recovered, &active.peers)
                .map_err(|InvariantViolation(what)| {
                    InvariantViolation(format!("txn {txn}: {what}"))
                })?;
        }
        ensure!(
            active.waiters.len() <= WAITERS_PER_TXN_MAX,
            "txn {txn}: {} waiters",
            active.waiters.len()
        );
        for waiter in &active.waiters {
            if let Some(durable) = active.durable {
                ensure!(
                    waiter.wants == Wants::State
                        || active_answer(txn, active, waiter.wants, durable).is_none(),
                    "txn {txn}: waiter {waiter:?} could have been answered"
                );
            }
        }
        ensure!(
            active.backoff_ms <= self.config.decision_query_backoff_max_ms,
            "txn {txn}: backoff {} ms beyond the max",
            active.backoff_ms
        );
        ensure!(
            !active.peers.contains(&self.node_id),
            "txn {txn}: this node among its own peers"
        );
        ensure!(
            active
                .undecided_peers
                .iter()
                .all(|p| active.peers.contains(p)),
            "txn {txn}: undecided peers {:?} not all peers",
            active.undecided_peers
        );
        Ok(())
    }
}
