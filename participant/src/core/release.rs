//! Lock release: an ended txn's keys, and a ReadOnly voter's read hold once every vote is
//! in (`Release`, a decision, or its timeout).

use wire::TxnId;

use super::{LogEntry, Participant};

impl Participant {
    pub(super) fn release_locks(&mut self, txn: TxnId, entries: &[LogEntry]) {
        for entry in entries {
            self.locks.release(txn, &entry.key);
        }
    }

    /// Drops the read hold of `txn`, if any (a duplicate or unknown release does nothing).
    pub(super) fn release_hold(&mut self, txn: TxnId) {
        if let Some(hold) = self.read_holds.remove(&txn) {
            self.hold_timers.remove(&(hold.until, txn));
            for key in &hold.keys {
                self.locks.release(txn, key);
            }
        }
    }
}
