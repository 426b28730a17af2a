//! Simulated durable state: what each node's SQLite file would hold, with the records
//! applied exactly as the real stores apply them (participant `store::write_record`,
//! coordinator `store::append`), and a write queue whose records become durable only at
//! a group commit. A crash drops the queue and keeps the rest.

use std::collections::{BTreeMap, VecDeque};

use coordinator::core::{
    Lsn as CoordinatorLsn, Record as CoordinatorRecord, RecoveredTxn, unfinished,
};
use participant::core::inbound::{Needs, Reads};
use participant::core::{
    LogEntry, Lsn as ParticipantLsn, OpKind, Record as ParticipantRecord, StoredReadHold,
    StoredState, StoredTxn,
};
use wire::{Decision, NodeId, Protocol, TxnId, Value};

/// One `txn` row of a participant database, with its `txn_log` rows.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct TxnRow {
    pub protocol: Protocol,
    pub coordinator: NodeId,
    pub state: StoredState,
    pub reason: Option<String>,
    pub entries: Vec<LogEntry>,
    pub participants: Vec<NodeId>,
    /// Insertion order, standing in for `created_at` (recovery returns oldest first).
    pub created: u64,
}

/// A participant's database: `kv`, `txn` and `txn_log`, plus records not yet durable.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct ParticipantDisk {
    pub kv: BTreeMap<String, Value>,
    pub txns: BTreeMap<TxnId, TxnRow>,
    /// `read_only_vote` rows: (protocol, coordinator).
    pub read_only: BTreeMap<TxnId, (Protocol, NodeId)>,
    /// The hold columns of those rows (`hold_until_ms`, `hold_ms`) and their
    /// `read_only_key` rows, written by [`ParticipantDisk::apply_at`].
    pub read_holds: BTreeMap<TxnId, StoredReadHold>,
    next_created: u64,
    /// Handed to the writer, not yet committed: lost by a crash.
    pub queue: VecDeque<(ParticipantLsn, ParticipantRecord)>,
    /// Retention (`sim/retention.rs`): the stored horizon, and the state of each txn
    /// pruned, for the checkers only (the real store keeps counts).
    pub horizon: wire::retention::Horizon,
    pub pruned: BTreeMap<TxnId, StoredState>,
}

impl ParticipantDisk {
    pub fn with_data(kv: BTreeMap<String, Value>) -> Self {
        ParticipantDisk {
            kv,
            ..ParticipantDisk::default()
        }
    }

    /// `Store::values`: the committed value of each key (`None`: absent).
    pub fn values<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> BTreeMap<String, Option<Value>> {
        keys.into_iter()
            .map(|key| (key.to_string(), self.kv.get(key).cloned()))
            .collect()
    }

    /// `Store::txn`: the `txn` row, else a `read_only_vote` row as `ReadOnly`.
    /// What a request's `Needs` names, as the real shell reads it from SQLite.
    pub fn read(&self, needs: &Needs) -> Reads {
        Reads {
            values: self.values(needs.keys.iter().map(String::as_str)),
            stored: needs.stored.and_then(|txn| self.txn(txn)),
        }
    }

    pub fn txn(&self, txn: TxnId) -> Option<StoredTxn> {
        if let Some(row) = self.txns.get(&txn) {
            return Some(stored(txn, row));
        }
        self.read_only
            .get(&txn)
            .map(|&(protocol, coordinator)| StoredTxn {
                txn,
                protocol,
                coordinator,
                state: StoredState::ReadOnly,
                reason: None,
                entries: Vec::new(),
                participants: Vec::new(),
            })
    }

    /// `Store::max_txn_id`: the largest id of a txn or read-only vote row.
    pub fn max_txn_id(&self) -> Option<TxnId> {
        let txns = self.txns.keys().next_back();
        let read_only = self.read_only.keys().next_back();
        txns.max(read_only).copied()
    }

    /// `Store::in_doubt_txns`: every txn voted YES with no outcome, oldest first.
    pub fn in_doubt_txns(&self) -> Vec<StoredTxn> {
        let mut rows: Vec<(&TxnId, &TxnRow)> = self
            .txns
            .iter()
            .filter(|(_, row)| row.state.is_in_doubt())
            .collect();
        rows.sort_by_key(|(txn, row)| (row.created, **txn));
        rows.into_iter()
            .map(|(txn, row)| stored(*txn, row))
            .collect()
    }

    /// `store::write_record`: applies one durable record, or says why the real store
    /// would refuse it (which stops the real node: a core bug).
    pub fn apply(&mut self, record: &ParticipantRecord) -> Result<(), String> {
        let txn = record.txn();
        let state = self.txns.get(&txn).map(|row| row.state);
        let conflict = |state: StoredState| {
            Err(format!(
                "store refused {} for txn {txn}: it is already {}",
                record.kind(),
                state.as_str()
            ))
        };
        match record {
            ParticipantRecord::Prepared {
                protocol,
                coordinator,
                entries,
                participants,
                ..
            } => {
                if let Some(state) = state {
                    return conflict(state);
                }
                let created = self.next_created();
                let state = match protocol {
                    Protocol::TwoPhase => StoredState::Prepared,
                    Protocol::ThreePhase => StoredState::Waiting,
                };
                self.txns.insert(
                    txn,
                    TxnRow {
                        protocol: *protocol,
                        coordinator: *coordinator,
                        state,
                        reason: None,
                        entries: entries.clone(),
                        participants: participants.clone(),
                        created,
                    },
                );
            }
            // Only an operator's `participant resolve` writes it, never the core.
            ParticipantRecord::Heuristic { .. } => {
                return Err(format!(
                    "store refused a heuristic decision on txn {txn}: the core never takes one"
                ));
            }
            ParticipantRecord::PreCommitted { .. } => match state {
                Some(StoredState::PreCommitted) => {}
                Some(StoredState::Waiting) => {
                    let row = self.txns.get_mut(&txn).expect("state read above");
                    row.state = StoredState::PreCommitted;
                }
                Some(state) => return conflict(state),
                None => {
                    return Err(format!(
                        "store refused precommit of txn {txn}: never voted on"
                    ));
                }
            },
            ParticipantRecord::ReadOnly {
                protocol,
                coordinator,
                ..
            } => {
                if let Some(state) = state {
                    return conflict(state);
                }
                // A repeated Prepare repeats the vote: the first row stays.
                self.read_only
                    .entry(txn)
                    .or_insert((*protocol, *coordinator));
            }
            ParticipantRecord::Committed { .. } => match state {
                Some(StoredState::Committed) => {}
                Some(state) if state.is_in_doubt() => {
                    let row = self.txns.get_mut(&txn).expect("state read above");
                    row.state = StoredState::Committed;
                    // Redo images in seq order; reads are logged but not applied.
                    let mut entries = row.entries.clone();
                    entries.sort_by_key(|entry| entry.seq);
                    for entry in entries.iter().filter(|entry| entry.op != OpKind::Get) {
                        match &entry.redo {
                            Some(value) => self.kv.insert(entry.key.clone(), value.clone()),
                            None => self.kv.remove(&entry.key),
                        };
                    }
                }
                Some(state) => return conflict(state),
                None => return Err(format!("store refused commit of txn {txn}: never prepared")),
            },
            ParticipantRecord::Aborted {
                protocol,
                coordinator,
                reason,
                ..
            } => match state {
                None => {
                    let created = self.next_created();
                    self.txns.insert(
                        txn,
                        TxnRow {
                            protocol: *protocol,
                            coordinator: *coordinator,
                            state: StoredState::Aborted,
                            reason: Some(reason.clone()),
                            entries: Vec::new(),
                            participants: Vec::new(),
                            created,
                        },
                    );
                }
                Some(StoredState::Aborted) => {}
                Some(state) if state.is_in_doubt() => {
                    let row = self.txns.get_mut(&txn).expect("state read above");
                    row.state = StoredState::Aborted;
                    row.reason = Some(reason.clone());
                }
                Some(state) => return conflict(state),
            },
        }
        Ok(())
    }

    /// [`ParticipantDisk::apply`] with the store's wall clock reading `wall_ms` (Unix ms)
    /// as the record is written: a `ReadOnly` record's hold gets its deadline from it, as
    /// the real store stamps `hold_until_ms` with SQLite's clock.
    pub fn apply_at(&mut self, record: &ParticipantRecord, wall_ms: u64) -> Result<(), String> {
        self.apply(record)?;
        if let ParticipantRecord::ReadOnly {
            txn, keys, hold_ms, ..
        } = record
            && !keys.is_empty()
        {
            // A repeated Prepare repeats the vote: the first row stays.
            self.read_holds.entry(*txn).or_insert(StoredReadHold {
                txn: *txn,
                keys: keys.clone(),
                hold_ms: *hold_ms,
                until_wall_ms: wall_ms.saturating_add(*hold_ms),
            });
        }
        Ok(())
    }

    /// `Store::read_holds`: the holds whose deadline is after `wall_ms`, by deadline.
    pub fn read_holds(&self, wall_ms: u64) -> Vec<StoredReadHold> {
        let mut holds: Vec<StoredReadHold> = self
            .read_holds
            .values()
            .filter(|hold| hold.until_wall_ms > wall_ms)
            .cloned()
            .collect();
        holds.sort_by_key(|hold| (hold.until_wall_ms, hold.txn));
        holds
    }

    /// `Writer::write`: one SQLite transaction, so a refused record leaves nothing of the
    /// batch behind (the records before it in the batch are rolled back too). The wall
    /// clock reads `wall_ms` for the whole batch.
    pub fn apply_batch(
        &mut self,
        records: &[ParticipantRecord],
        wall_ms: u64,
    ) -> Result<(), String> {
        let mut next = self.clone();
        for record in records {
            next.apply_at(record, wall_ms)?;
        }
        *self = next;
        Ok(())
    }

    /// A crash: the records handed to the writer and not yet committed are lost, the
    /// rest stays. Returns how many were lost.
    pub fn crash(&mut self) -> usize {
        let lost = self.queue.len();
        self.queue.clear();
        lost
    }

    /// The planted bug: a restart that loses every transaction voted YES and not
    /// decided (`prepared`, `waiting`, `precommitted`).
    pub fn forget_prepared(&mut self) {
        self.txns.retain(|_, row| !row.state.is_in_doubt());
    }

    fn next_created(&mut self) -> u64 {
        self.next_created += 1;
        self.next_created
    }
}

fn stored(txn: TxnId, row: &TxnRow) -> StoredTxn {
    StoredTxn {
        txn,
        protocol: row.protocol,
        coordinator: row.coordinator,
        state: row.state,
        reason: row.reason.clone(),
        entries: row.entries.clone(),
        participants: row.participants.clone(),
    }
}

/// One `decision` row of the coordinator's log.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct DecisionRow {
    pub protocol: Protocol,
    pub decision: Decision,
    pub participants: Vec<NodeId>,
    pub ended: bool,
}

/// The coordinator's decision log: the durable records in log order (recovery is
/// `coordinator::core::unfinished` of them, as the store's contract says) and the
/// `decision` table they amount to; plus records not yet durable.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct CoordinatorDisk {
    pub log: Vec<CoordinatorRecord>,
    pub decisions: BTreeMap<TxnId, DecisionRow>,
    pub queue: VecDeque<(CoordinatorLsn, CoordinatorRecord)>,
}

impl CoordinatorDisk {
    /// `Store::append` for one record, refusing what the real store refuses.
    pub fn apply(&mut self, record: &CoordinatorRecord) -> Result<(), String> {
        match record {
            CoordinatorRecord::Decided {
                txn,
                protocol,
                decision,
                participants,
            } => {
                if self.decisions.contains_key(txn) {
                    return Err(format!("decision log refused a second decision for {txn}"));
                }
                self.decisions.insert(
                    *txn,
                    DecisionRow {
                        protocol: *protocol,
                        decision: *decision,
                        participants: participants.clone(),
                        ended: false,
                    },
                );
            }
            // For the operator only; the simulated participants never report one.
            CoordinatorRecord::Hazard { .. } => {}
            CoordinatorRecord::Ended { txn } => {
                if let Some(row) = self.decisions.get_mut(txn) {
                    row.ended = true;
                }
            }
            CoordinatorRecord::AbortAdopted { txn, .. } => {
                // Only an unfinished 3PC commit may become an abort.
                match self.decisions.get_mut(txn) {
                    Some(row)
                        if row.protocol == Protocol::ThreePhase
                            && row.decision == Decision::Commit
                            && !row.ended =>
                    {
                        row.decision = Decision::Abort;
                        row.ended = true;
                    }
                    _ => {
                        return Err(format!(
                            "decision log refused to adopt an abort for {txn}: no unfinished 3pc commit"
                        ));
                    }
                }
            }
        }
        self.log.push(record.clone());
        Ok(())
    }

    /// `Store::append`: one SQLite transaction, so a refused record leaves nothing of the
    /// batch behind.
    pub fn apply_batch(&mut self, records: &[CoordinatorRecord]) -> Result<(), String> {
        let mut next = self.clone();
        for record in records {
            next.apply(record)?;
        }
        *self = next;
        Ok(())
    }

    /// A crash: the records not yet committed are lost. Returns how many.
    pub fn crash(&mut self) -> usize {
        let lost = self.queue.len();
        self.queue.clear();
        lost
    }

    /// `Store::recover`: logged commits (3PC: precommits) without an end, by txn id.
    pub fn recover(&self) -> Vec<RecoveredTxn> {
        unfinished(&self.log)
    }

    /// A commit (3PC: precommit) for `txn` is durable, and was not turned into an abort.
    pub fn commit_logged(&self, txn: TxnId) -> bool {
        self.decisions
            .get(&txn)
            .is_some_and(|row| row.decision == Decision::Commit)
    }
}
