//! The participant's lock table: per key, shared by the txns that only read it or held
//! exclusively by the one txn that writes it. No-wait: a conflict is reported, never queued.
//!
//! A txn whose commit is decided but not yet durable here ("committing") no longer blocks
//! anyone: its locks move aside, in the order txns committed, and a later txn may take
//! the key and read its committed-to-be value (controlled lock violation, Graefe et al.,
//! 2013). That is safe because the commit can no longer change and every record the later
//! txn writes (its vote among them) comes after the commit record in the log, so nothing
//! it announces can be durable before the commit it depends on. The keys stay locked
//! until the commit is durable, so nothing reads around it from the store.

use std::collections::{BTreeMap, BTreeSet};

use wire::{Op, TxnId};

use super::record::LogEntry;

/// How a txn holds a key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Mode {
    /// The txn only reads the key: other readers may hold it too.
    Shared,
    /// The txn writes the key (and may also read it): nobody else may hold it.
    Exclusive,
}

/// One key's lock.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Lock {
    /// Never empty: the last reader's release removes the key.
    Shared(BTreeSet<TxnId>),
    Exclusive(TxnId),
}

/// The lock modes a txn needs, one per key it names: exclusive if any of its ops on the key
/// writes, else shared (a txn that reads and writes a key takes it exclusively).
pub(crate) fn modes_of_ops(ops: &[Op]) -> BTreeMap<String, Mode> {
    let mut modes = BTreeMap::new();
    for op in ops {
        let mode = match op {
            Op::Get { .. } => Mode::Shared,
            Op::Put { .. } | Op::Delete { .. } | Op::Add { .. } => Mode::Exclusive,
        };
        merge(&mut modes, op.key(), mode);
    }
    modes
}

/// The same for a txn's log entries (a recovered or voted txn).
pub(crate) fn modes_of_entries(entries: &[LogEntry]) -> BTreeMap<String, Mode> {
    let mut modes = BTreeMap::new();
    for entry in entries {
        let mode = if entry.op.writes() {
            Mode::Exclusive
        } else {
            Mode::Shared
        };
        merge(&mut modes, &entry.key, mode);
    }
    modes
}

fn merge(modes: &mut BTreeMap<String, Mode>, key: &str, mode: Mode) {
    let slot = modes.entry(key.to_string()).or_insert(mode);
    if mode == Mode::Exclusive {
        *slot = Mode::Exclusive;
    }
}

/// Key -> lock. Bounded by its holders: every holder is an active txn or a read-only hold,
/// both bounded by `active_txns_max`, each naming at most `ops_per_txn_max` keys.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub(crate) struct LockTable {
    locks: BTreeMap<String, Lock>,
    /// Key -> the committing txns that held it, in the order they committed (which is the
    /// order they held it, so the last writer's value is the key's next one). They
    /// conflict with nobody; they leave when their commit is durable.
    committing: BTreeMap<String, Vec<TxnId>>,
}

impl LockTable {
    /// Another txn whose lock on `key` conflicts with `txn` taking it in `mode`.
    pub fn conflict(&self, txn: TxnId, key: &str, mode: Mode) -> Option<TxnId> {
        match (self.locks.get(key)?, mode) {
            (Lock::Exclusive(holder), _) => (*holder != txn).then_some(*holder),
            (Lock::Shared(_), Mode::Shared) => None,
            (Lock::Shared(holders), Mode::Exclusive) => {
                holders.iter().copied().find(|holder| *holder != txn)
            }
        }
    }

    /// Takes `key` for `txn` in `mode`. The caller checked [`LockTable::conflict`]; on a
    /// conflict anyway (recovery of a hand-edited store) the earlier holder keeps the key
    /// and the holder is returned.
    pub fn acquire(&mut self, txn: TxnId, key: &str, mode: Mode) -> Option<TxnId> {
        if let Some(holder) = self.conflict(txn, key, mode) {
            return Some(holder);
        }
        match (self.locks.get_mut(key), mode) {
            (Some(Lock::Shared(holders)), Mode::Shared) => {
                holders.insert(txn);
            }
            // Exclusive already ours, or a shared lock held by us alone: upgrade.
            (Some(lock), _) => {
                if mode == Mode::Exclusive {
                    *lock = Lock::Exclusive(txn);
                }
            }
            (None, Mode::Shared) => {
                self.locks
                    .insert(key.to_string(), Lock::Shared(BTreeSet::from([txn])));
            }
            (None, Mode::Exclusive) => {
                self.locks.insert(key.to_string(), Lock::Exclusive(txn));
            }
        }
        None
    }

    /// Drops whatever `txn` holds on `key`, committing or not.
    pub fn release(&mut self, txn: TxnId, key: &str) {
        self.release_live(txn, key);
        if let Some(txns) = self.committing.get_mut(key) {
            txns.retain(|holder| *holder != txn);
            if txns.is_empty() {
                self.committing.remove(key);
            }
        }
    }

    fn release_live(&mut self, txn: TxnId, key: &str) {
        let empty = match self.locks.get_mut(key) {
            Some(Lock::Exclusive(holder)) => *holder == txn,
            Some(Lock::Shared(holders)) => {
                holders.remove(&txn);
                holders.is_empty()
            }
            None => false,
        };
        if empty {
            self.locks.remove(key);
        }
    }

    /// `txn`'s commit is decided: its locks on `keys` stop conflicting (see the module
    /// docs) but stay until [`LockTable::release`].
    pub fn commit(&mut self, txn: TxnId, keys: impl IntoIterator<Item = String>) {
        for key in keys {
            self.release_live(txn, &key);
            let txns = self.committing.entry(key).or_default();
            if !txns.contains(&txn) {
                txns.push(txn);
            }
        }
    }

    /// The committing txns that hold `key`, in the order they committed.
    pub fn committing(&self, key: &str) -> &[TxnId] {
        self.committing.get(key).map_or(&[], Vec::as_slice)
    }

    /// Every key with committing holders, and them.
    pub fn iter_committing(&self) -> impl Iterator<Item = (&String, &Vec<TxnId>)> {
        self.committing.iter()
    }

    /// Keys locked (by live or committing holders).
    pub fn len(&self) -> usize {
        self.locks.len()
            + self
                .committing
                .keys()
                .filter(|key| !self.locks.contains_key(*key))
                .count()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Lock)> {
        self.locks.iter()
    }
}
