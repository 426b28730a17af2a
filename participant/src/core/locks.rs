//! The participant's lock table: per key, shared by the txns that only read it or held
//! exclusively by the one txn that writes it. No-wait: a conflict is reported, never queued.

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

    /// Drops whatever `txn` holds on `key`.
    pub fn release(&mut self, txn: TxnId, key: &str) {
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

    /// Keys locked.
    pub fn len(&self) -> usize {
        self.locks.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Lock)> {
        self.locks.iter()
    }
}
