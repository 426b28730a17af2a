//! Lock release: an ended txn's keys, and a ReadOnly voter's read hold once every vote is
//! in (`Release`, a decision, or its timeout); and the holds a restart takes again.
//!
//! A read hold is what makes the moment the last vote arrives a lock point (see the module
//! docs of `core`), so it must outlive a crash: a voter that restarts before its
//! coordinator notices (another coordinator may have noticed, redialled, and sent a
//! writer) would otherwise let that writer in between, and a read across participants
//! could see half of a transfer. The `ReadOnly` record therefore carries the
//! keys read, and the store stamps the hold's deadline by its wall clock when it writes
//! the record (after the vote was taken, before it is sent, so no earlier than vote +
//! timeout). Recovery holds each key again until the earlier of that deadline and one
//! `hold_ms` from the restart. The second bound is the conservative rule that needs no
//! clock at all (the vote came before the restart, so vote + timeout is before restart +
//! timeout): it caps what a wall clock set backwards can cost, and makes a record's hold
//! last no longer than it would have without the crash, plus the outage. A wall clock set
//! forwards while the node was down by more than the hold had left would end the hold
//! early; that is the same bounded-clock assumption the timeouts make.
//!
//! Release is not made durable (it would cost a write per read-only txn), so a hold
//! released before the crash is taken again: conservative, and over by the deadline. One
//! case is recognised: a key of the hold now locked exclusively by a recovered in-doubt
//! txn proves the hold had ended (that writer could only lock the key afterwards), and
//! the whole hold is skipped, since a hold's keys are released together.

use tracing::{debug, info, warn};
use wire::TxnId;

use super::locks::Mode;
use super::state::ReadHold;
use super::{LogEntry, Millis, Participant, StoredReadHold};

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

    /// At startup, after the in-doubt txns: takes again every stored read hold whose
    /// deadline has not passed (the store's wall clock read `wall_ms`). Past
    /// `active_txns_max` lock holders, the rest are covered by refusing every exclusive
    /// lock until the last of their deadlines (`writes_fenced_until`).
    pub(super) fn recover_holds(&mut self, now: Millis, holds: Vec<StoredReadHold>, wall_ms: u64) {
        let mut taken = 0_usize;
        for stored in holds {
            let txn = stored.txn;
            let left_ms = stored
                .until_wall_ms
                .saturating_sub(wall_ms)
                .min(stored.hold_ms);
            if left_ms == 0 {
                debug!(%txn, "stored read hold past its deadline: nothing taken");
                continue;
            }
            if self.active.contains_key(&txn) || self.read_holds.contains_key(&txn) {
                warn!(%txn, "stored read hold of a txn already holding locks; skipped");
                continue;
            }
            if let Some(key) = stored
                .keys
                .iter()
                .find(|key| self.locks.conflict(txn, key, Mode::Shared).is_some())
            {
                debug!(%txn, %key, "stored read hold had ended: a recovered writer holds its key");
                continue;
            }
            let until = now.plus(left_ms);
            if self.active.len() + self.read_holds.len() >= self.config.active_txns_max {
                let fence = self.writes_fenced_until.map_or(until, |at| at.max(until));
                self.writes_fenced_until = Some(fence);
                continue;
            }
            for key in &stored.keys {
                self.locks.acquire(txn, key, Mode::Shared);
            }
            self.hold_timers.insert((until, txn));
            self.read_holds.insert(
                txn,
                ReadHold {
                    keys: stored.keys,
                    until,
                },
            );
            taken += 1;
        }
        if taken > 0 {
            info!(
                holds = taken,
                "recovered read holds; their keys stay locked shared"
            );
        }
        if let Some(until) = self.writes_fenced_until {
            warn!(
                until_ms = until.0,
                active_txns_max = self.config.active_txns_max,
                "more read holds to recover than can be tracked: writes refused until the last one ends"
            );
        }
    }
}
