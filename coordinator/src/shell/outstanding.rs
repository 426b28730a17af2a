//! The requests to one participant still outstanding on its current connection, so that
//! the core's periodic re-sends do not queue a new copy behind an identical one (pure).
//!
//! The core re-emits Decide, PreCommit, StateQuery and Prepare every `decide_resend_ms`
//! until it hears back. Against a participant that stopped answering, every re-send used
//! to take one more in-flight slot or queue entry, per transaction, until the channel was
//! full. A copy is now sent only once the earlier one was answered, expired (the channel's
//! `request_timeout`), or the connection changed (the table is cleared then).
//!
//! Whether a request is still outstanding is the channel's knowledge (`is_pending`), passed
//! in as a closure so this table holds no connection and is tested alone.

use foldhash::{HashMap, HashMapExt};
use wire::{RequestId, ToParticipant, TxnId};

/// What makes two requests the same one: the message kind and its transaction (the body
/// is compared too, so a changed request is never held back).
type Key = (&'static str, TxnId);

/// Outstanding requests of one connection, at most `entries_max` of them.
#[derive(Debug)]
pub struct Outstanding {
    by_key: HashMap<Key, (RequestId, ToParticipant)>,
    /// The reverse index, so a response (which names only the request id) clears its entry.
    by_id: HashMap<RequestId, Key>,
    /// The channel's `in_flight_max + send_queue_max`: it never holds more requests than
    /// that, so once the entries it no longer holds are pruned, there is room.
    entries_max: usize,
}

impl Outstanding {
    pub fn new(entries_max: usize) -> Outstanding {
        Outstanding {
            by_key: HashMap::new(),
            by_id: HashMap::new(),
            entries_max,
        }
    }

    /// The id of an identical request still outstanding (`is_pending` says so): `msg`
    /// need not be sent again. `None`: send it.
    pub fn duplicate_of(
        &self,
        msg: &ToParticipant,
        is_pending: impl Fn(RequestId) -> bool,
    ) -> Option<RequestId> {
        let (id, earlier) = self.by_key.get(&key(msg))?;
        (earlier == msg && is_pending(*id)).then_some(*id)
    }

    /// `msg` was queued as request `id`. Entries the channel no longer holds are pruned
    /// when the table is full; `false` if there is still no room (the channel then holds
    /// more than `entries_max` requests, which it never does), and `msg` is not recorded.
    pub fn sent(
        &mut self,
        msg: ToParticipant,
        id: RequestId,
        is_pending: impl Fn(RequestId) -> bool,
    ) -> bool {
        let key = key(&msg);
        if let Some((replaced, _)) = self.by_key.remove(&key) {
            self.by_id.remove(&replaced);
        }
        if self.by_key.len() >= self.entries_max {
            self.by_key.retain(|_, (id, _)| is_pending(*id));
            self.by_id.retain(|id, _| is_pending(*id));
        }
        if self.by_key.len() >= self.entries_max {
            return false;
        }
        self.by_id.insert(id, key);
        self.by_key.insert(key, (id, msg));
        true
    }

    /// The response to request `id` arrived: an identical request may be sent again.
    pub fn answered(&mut self, id: RequestId) {
        if let Some(key) = self.by_id.remove(&id) {
            self.by_key.remove(&key);
        }
    }

    /// The connection changed: nothing sent on the old one is outstanding on the new one.
    pub fn clear(&mut self) {
        self.by_key.clear();
        self.by_id.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_key.len()
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        assert!(self.by_key.len() <= self.entries_max);
        assert_eq!(self.by_key.len(), self.by_id.len());
        for (key, (id, msg)) in &self.by_key {
            assert_eq!(self.by_id.get(id), Some(key));
            assert_eq!(*key, self::key(msg));
        }
    }
}

/// Requests about a transaction are tracked; any other message is never held back.
fn key(msg: &ToParticipant) -> Key {
    (msg.kind(), msg.txn())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use uuid::Uuid;
    use wire::Decision;

    use super::*;

    fn txn(n: u128) -> TxnId {
        TxnId(Uuid::from_u128(n))
    }

    fn commit(n: u128) -> ToParticipant {
        ToParticipant::Decide {
            txn: txn(n),
            decision: Decision::Commit,
            reason: None,
        }
    }

    fn query(n: u128) -> ToParticipant {
        ToParticipant::StateQuery { txn: txn(n) }
    }

    /// A stand-in for the channel: the ids it still holds.
    fn pending(ids: &[u64]) -> impl Fn(RequestId) -> bool {
        let ids: HashSet<u64> = ids.iter().copied().collect();
        move |id| ids.contains(&id.0)
    }

    #[test]
    fn an_identical_request_still_pending_is_a_duplicate() {
        let mut table = Outstanding::new(8);
        assert_eq!(table.duplicate_of(&commit(1), pending(&[])), None);
        assert!(table.sent(commit(1), RequestId(1), pending(&[1])));
        assert_eq!(
            table.duplicate_of(&commit(1), pending(&[1])),
            Some(RequestId(1))
        );
        // Another kind, another txn, or another body is not the same request.
        assert_eq!(table.duplicate_of(&query(1), pending(&[1])), None);
        assert_eq!(table.duplicate_of(&commit(2), pending(&[1])), None);
        let abort = ToParticipant::Decide {
            txn: txn(1),
            decision: Decision::Abort,
            reason: None,
        };
        assert_eq!(table.duplicate_of(&abort, pending(&[1])), None);
        table.check_invariants();
    }

    #[test]
    fn an_answered_or_expired_request_may_be_sent_again() {
        let mut table = Outstanding::new(8);
        table.sent(commit(1), RequestId(1), pending(&[1]));
        table.sent(commit(2), RequestId(2), pending(&[1, 2]));
        table.answered(RequestId(1));
        assert_eq!(table.duplicate_of(&commit(1), pending(&[2])), None);
        assert_eq!(table.len(), 1);
        // Expired: still in the table, but the channel no longer holds it.
        assert_eq!(table.duplicate_of(&commit(2), pending(&[])), None);
        // Sent again: the new id replaces the old one.
        table.sent(commit(2), RequestId(3), pending(&[3]));
        assert_eq!(
            table.duplicate_of(&commit(2), pending(&[3])),
            Some(RequestId(3))
        );
        table.answered(RequestId(2));
        assert_eq!(
            table.len(),
            1,
            "an answer to the replaced id changes nothing"
        );
        table.check_invariants();
    }

    #[test]
    fn clear_forgets_the_old_connection() {
        let mut table = Outstanding::new(8);
        table.sent(commit(1), RequestId(1), pending(&[1]));
        table.clear();
        assert_eq!(table.duplicate_of(&commit(1), pending(&[1])), None);
        assert_eq!(table.len(), 0);
        table.check_invariants();
    }

    #[test]
    fn a_full_table_prunes_what_the_channel_no_longer_holds() {
        let mut table = Outstanding::new(2);
        assert!(table.sent(commit(1), RequestId(1), pending(&[1])));
        assert!(table.sent(commit(2), RequestId(2), pending(&[1, 2])));
        // Request 1 expired: pruned to make room.
        assert!(table.sent(commit(3), RequestId(3), pending(&[2, 3])));
        assert_eq!(table.len(), 2);
        assert_eq!(table.duplicate_of(&commit(1), pending(&[1, 2, 3])), None);
        table.check_invariants();
        // A channel claiming to hold more than the bound: the table stays at its bound.
        assert!(!table.sent(commit(4), RequestId(4), pending(&[2, 3, 4])));
        assert_eq!(table.len(), 2);
        table.check_invariants();
    }
}
