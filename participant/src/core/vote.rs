//! Prepare (3PC: CanCommit): the checks, the vote, and a repeated Prepare's same vote.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use tracing::{debug, info, warn};
use wire::{NodeId, Op, OpLimits, Protocol, RequestId, TxnId, Value, Vote};

use super::answer::{no, reads_of, vote_msg};
use super::eval;
use super::locks::{self, Mode};
use super::state::{Active, Done, End, ReadHold, Waiter, Wants, push_waiter, voted_state};
use super::{
    Millis, PARTICIPANTS_PER_TXN_MAX, Participant, Record, ReplyTo, StoredState, StoredTxn,
};

/// The fields of a Prepare, passed to [`Participant::vote`].
pub(super) struct PrepareRequest<'a> {
    pub(super) from: ReplyTo,
    pub(super) id: RequestId,
    pub(super) txn: TxnId,
    pub(super) protocol: Protocol,
    pub(super) ops: &'a [Op],
    pub(super) timeout_ms: u64,
    pub(super) participants: &'a [NodeId],
    pub(super) values: &'a BTreeMap<String, Option<Value>>,
}

impl Participant {
    /// Answers a Prepare for a txn voted on before (in memory or in the store) with the
    /// same vote; false if the txn is new.
    pub(super) fn repeat_vote(
        &mut self,
        from: ReplyTo,
        id: RequestId,
        txn: TxnId,
        ops: &[Op],
        values: &BTreeMap<String, Option<Value>>,
        stored: Option<StoredTxn>,
    ) -> bool {
        if self.active.contains_key(&txn) {
            self.answer_or_hold(txn, from, id, Wants::Vote);
            return true;
        }
        if let Some(done) = self.done.get_mut(&txn) {
            let msg = match &done.end {
                End::Committed => vote_msg(txn, Vote::Yes, done.reads.clone()),
                End::Aborted { reason } => vote_msg(txn, no(reason), Vec::new()),
                End::ReadOnly if done.pending.is_some() => {
                    push_waiter(
                        &mut done.waiters,
                        &mut self.outputs,
                        txn,
                        Waiter {
                            to: from,
                            id,
                            wants: Wants::Vote,
                        },
                    );
                    return true;
                }
                End::ReadOnly => vote_msg(txn, Vote::ReadOnly, done.reads.clone()),
            };
            self.reply(from, id, msg);
            return true;
        }
        let Some(stored) = stored else {
            return false;
        };
        let msg = match stored.state {
            StoredState::Aborted | StoredState::HeuristicAbort => {
                let reason = stored.reason.as_deref().unwrap_or("aborted");
                vote_msg(txn, no(reason), Vec::new())
            }
            StoredState::Prepared
            | StoredState::Waiting
            | StoredState::PreCommitted
            | StoredState::Committed
            | StoredState::HeuristicCommit => vote_msg(txn, Vote::Yes, reads_of(&stored.entries)),
            // The reads are not logged for a ReadOnly vote: read them again (no locks are
            // involved; the coordinator keeps the first vote it got).
            StoredState::ReadOnly => {
                let reads = eval::evaluate(ops, values)
                    .map(|evaluated| evaluated.reads)
                    .unwrap_or_default();
                vote_msg(txn, Vote::ReadOnly, reads)
            }
        };
        self.reply(from, id, msg);
        true
    }

    /// Votes on a new txn: NO (recorded, sent at once), ReadOnly (sent at once when the txn
    /// has no other participant, else once its record is durable), or YES (locks taken,
    /// `Prepared` persisted, the vote held until it is durable).
    pub(super) fn vote(&mut self, now: Millis, request: PrepareRequest<'_>) {
        let peers = self.peers_of(request.participants);
        let checked = self.check_prepare(now, &request, &peers);
        let PrepareRequest {
            from,
            id,
            txn,
            protocol,
            timeout_ms,
            participants,
            ..
        } = request;
        let coordinator = from.peer;
        if !participants.is_empty() && !participants.contains(&self.node_id) {
            warn!(%txn, peer = %coordinator, ?participants, "the Prepare's participants do not name this participant");
        }
        match checked {
            Err(reason) => {
                info!(%txn, peer = %coordinator, %reason, "voting no");
                let lsn = self.persist(Record::Aborted {
                    txn,
                    protocol,
                    coordinator,
                    reason: reason.clone(),
                });
                self.done.insert(
                    txn,
                    Done {
                        protocol,
                        end: End::Aborted {
                            reason: reason.clone(),
                        },
                        reads: Vec::new(),
                        pending: Some(lsn),
                        waiters: Vec::new(),
                    },
                );
                self.reply(from, id, vote_msg(txn, Vote::No { reason }, Vec::new()));
            }
            Ok(evaluated) if evaluated.is_read_only() && peers.is_empty() => {
                debug!(%txn, peer = %coordinator, "voting read-only");
                self.reply(from, id, vote_msg(txn, Vote::ReadOnly, evaluated.reads));
            }
            Ok(evaluated) if evaluated.is_read_only() => {
                debug!(%txn, peer = %coordinator, "read-only; vote waits for its record, locks held until every vote is in");
                let keys: BTreeSet<String> = evaluated
                    .entries
                    .iter()
                    .map(|entry| entry.key.clone())
                    .collect();
                for key in &keys {
                    self.locks.acquire(txn, key, Mode::Shared);
                }
                let keys: Vec<String> = keys.into_iter().collect();
                let until = now.plus(timeout_ms);
                self.hold_timers.insert((until, txn));
                self.read_holds.insert(
                    txn,
                    ReadHold {
                        keys: keys.clone(),
                        until,
                    },
                );
                // The keys and the hold's length go with the record, so a restart before
                // every vote is in takes the hold again (`release.rs`).
                let lsn = self.persist(Record::ReadOnly {
                    txn,
                    protocol,
                    coordinator,
                    keys,
                    hold_ms: timeout_ms,
                });
                self.done.insert(
                    txn,
                    Done {
                        protocol,
                        end: End::ReadOnly,
                        reads: evaluated.reads,
                        pending: Some(lsn),
                        waiters: vec![Waiter {
                            to: from,
                            id,
                            wants: Wants::Vote,
                        }],
                    },
                );
            }
            Ok(evaluated) => {
                debug!(%txn, peer = %coordinator, "voting yes; the vote waits for its record");
                for (key, mode) in locks::modes_of_entries(&evaluated.entries) {
                    self.locks.acquire(txn, &key, mode);
                }
                let waiting_timeout_ms = self.config.waiting_timeout_ms(timeout_ms);
                let lsn = self.persist(Record::Prepared {
                    txn,
                    protocol,
                    coordinator,
                    entries: evaluated.entries.clone(),
                    participants: participants.to_vec(),
                });
                debug!(%txn, %lsn, "vote record pending");
                self.active.insert(
                    txn,
                    Active {
                        protocol,
                        coordinator,
                        peers,
                        entries: evaluated.entries,
                        reads: evaluated.reads,
                        since: now,
                        waiting_timeout_ms,
                        recovered: false,
                        durable: None,
                        target: voted_state(protocol),
                        waiters: vec![Waiter {
                            to: from,
                            id,
                            wants: Wants::Vote,
                        }],
                        timer_at: None,
                        backoff_ms: self.config.decision_query_backoff_min_ms,
                        termination: None,
                        undecided_peers: BTreeSet::new(),
                    },
                );
            }
        }
    }

    /// The limits, the lock table, the operations themselves, then (3PC) the mesh: the
    /// reason for NO, or what a YES (or ReadOnly) vote would log.
    pub(super) fn check_prepare(
        &self,
        now: Millis,
        request: &PrepareRequest<'_>,
        peers: &[NodeId],
    ) -> Result<eval::Evaluated, String> {
        let &PrepareRequest {
            txn,
            protocol,
            ops,
            timeout_ms,
            participants,
            values,
            ..
        } = request;
        let config = &self.config;
        if participants.len() > PARTICIPANTS_PER_TXN_MAX {
            return Err(format!(
                "txn names {} participants; the limit is {PARTICIPANTS_PER_TXN_MAX}",
                participants.len()
            ));
        }
        if ops.len() > config.ops_per_txn_max {
            return Err(format!(
                "txn has {} ops for this participant; the limit is {}",
                ops.len(),
                config.ops_per_txn_max
            ));
        }
        // The same rule the coordinator applied at submit, with this participant's limits.
        let limits = OpLimits {
            key_bytes_max: config.key_bytes_max,
            value_bytes_max: config.value_bytes_max,
        };
        for op in ops {
            op.check(&limits)?;
        }
        // Read holds count too: they keep locks, and so bound the lock table with `active`.
        let holding = self.active.len() + self.read_holds.len();
        if holding >= config.active_txns_max {
            return Err(format!(
                "participant overloaded: {holding} active txns (limit {})",
                config.active_txns_max
            ));
        }
        for (key, mode) in locks::modes_of_ops(ops) {
            if let Some(holder) = self.locks.conflict(txn, &key, mode) {
                return Err(format!("lock conflict on key {key:?} held by txn {holder}"));
            }
            if mode == Mode::Exclusive
                && let Some(until) = self.writes_fenced_until.filter(|until| now < *until)
            {
                return Err(format!(
                    "writes refused until {} ms: this participant restarted with more \
                     read-only holds than it can track (active_txns_max {})",
                    until.0, config.active_txns_max
                ));
            }
        }
        // A key a committing txn writes is read as that commit leaves it (`locks.rs`).
        let mut committed = Cow::Borrowed(values);
        let mut behind = None;
        for op in ops {
            if let Some((writer, value)) = self.committing_value(op.key()) {
                committed.to_mut().insert(op.key().to_string(), value);
                behind = Some((op.key(), writer));
            }
        }
        let evaluated = eval::evaluate(ops, &committed)?;
        // A read of this participant alone is answered at once, with no record to order
        // after the commit it would read: it may not see a value not yet durable here.
        if let Some((key, writer)) = behind
            && evaluated.is_read_only()
            && peers.is_empty()
        {
            return Err(format!(
                "lock conflict on key {key:?} held by txn {writer}, whose commit is not yet durable"
            ));
        }
        // The coordinator sends PreCommit only while a voter's waiting timeout cannot
        // have fired, assuming that timeout is the one it asked for. A shorter one (our
        // maximum clamps it) could fire first: this node would abort alone while the
        // coordinator precommits the others. A longer wait is safe.
        if protocol == Protocol::ThreePhase
            && !evaluated.is_read_only()
            && config.waiting_timeout_ms(timeout_ms) < timeout_ms
        {
            return Err(format!(
                "the coordinator asks for a 3pc waiting timeout of {timeout_ms} ms, above this \
                 participant's maximum of {} ms (--waiting-timeout-max-ms): it would give up \
                 before the coordinator's PreCommit deadline",
                config.waiting_timeout_max_ms
            ));
        }
        // A 3PC YES commits this participant to the termination protocol, whose failure
        // detector is the mesh: a peer not up is taken as failed, and with none up the
        // card's alone rules decide. Right after a restart (ours or the peer's) a live peer
        // can be not up yet; a YES then could decide alone against it. With every peer up
        // at the vote, under crash-only faults a channel only goes down when its peer
        // crashes, so "not up" means "failed" for the rest of the txn. NO is always safe.
        if protocol == Protocol::ThreePhase
            && !evaluated.is_read_only()
            && let Some(peer) = peers.iter().find(|peer| !self.peers_up.contains(peer))
        {
            return Err(format!(
                "3pc needs the participant mesh: peer {peer} is not connected, so the \
                 termination protocol could not reach it"
            ));
        }
        Ok(evaluated)
    }
}
