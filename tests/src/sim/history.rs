//! What the simulator observed during a run, for the checkers: every transaction the
//! client submitted and what it was told, every vote a participant emitted, every NO vote
//! the coordinator received, every outcome a participant made durable, and what the
//! serializability checker needs: each key's committed versions in order, which version
//! each evaluation of a Prepare read, and the reads each client was told.

use std::collections::{BTreeMap, BTreeSet};

use wire::{Decision, NodeId, Op, Protocol, Read, TxnId, Value, Vote};

/// What the client knows about its transaction. A client that lost its coordinator
/// treats the outcome as unknown, never as aborted.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ClientView {
    Pending,
    Committed,
    Aborted(String),
    Rejected(String),
    /// The coordinator crashed before answering.
    Unknown,
}

/// The kind of workload a transaction belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TxnKind {
    /// `Add from -x min 0` on one account, `Add to +x` on another.
    Transfer,
    /// Put/Get/Delete/Add on the scratch keys.
    Mixed,
    /// Gets only.
    ReadOnly,
    /// A Get of every account on every participant: its reads must sum to the bank total.
    ReadAll,
}

#[derive(Clone, Debug)]
pub struct TxnInfo {
    /// The short number traces use (`t12`).
    pub number: u64,
    pub kind: TxnKind,
    pub protocol: Protocol,
    pub parts: Vec<(NodeId, Vec<Op>)>,
    pub submitted_ms: u64,
    /// Submitted in the healing phase, when no fault can happen.
    pub in_healing: bool,
    pub client: ClientView,
    /// The reads the client was told with `Committed`.
    pub reads: Vec<(NodeId, Vec<Read>)>,
}

/// One key's value as a Prepare read it, and the committed txn that wrote it (`None`: the
/// initial value).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Observed {
    pub key: String,
    pub value: Option<Value>,
    pub writer: Option<TxnId>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum VoteKind {
    Yes,
    No,
    ReadOnly,
}

impl VoteKind {
    pub fn of(vote: &Vote) -> VoteKind {
        match vote {
            Vote::Yes => VoteKind::Yes,
            Vote::No { .. } => VoteKind::No,
            Vote::ReadOnly => VoteKind::ReadOnly,
        }
    }
}

/// A participant made an outcome durable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Applied {
    pub decision: Decision,
    pub at_ms: u64,
    /// The coordinator's commit record was durable at that moment.
    pub commit_logged: bool,
}

/// A fault outside the model 3PC is safe in (a partition, a reset connection, a clock
/// jump past the bounds), and the time it may affect the protocol.
#[derive(Clone, Debug)]
pub struct Breach {
    pub from_ms: u64,
    /// `u64::MAX` while a partition is not healed.
    pub until_ms: u64,
    pub what: String,
    /// The partitioned link, until it heals.
    pub cut_link: Option<(NodeId, NodeId)>,
}

impl Breach {
    /// Whether it is the partition of the link between `x` and `y` (either way round).
    pub fn cuts(&self, x: NodeId, y: NodeId) -> bool {
        self.cut_link == Some((x, y)) || self.cut_link == Some((y, x))
    }
}

#[derive(Clone, Debug, Default)]
pub struct History {
    pub txns: BTreeMap<TxnId, TxnInfo>,
    /// Every vote each participant emitted, in order.
    pub votes: BTreeMap<(TxnId, NodeId), Vec<VoteKind>>,
    /// Transactions for which a NO vote reached the coordinator core.
    pub no_delivered: BTreeSet<TxnId>,
    /// Every durable `Committed`/`Aborted` record, per transaction and participant.
    pub applied: BTreeMap<(TxnId, NodeId), Vec<Applied>>,
    /// Faults outside 3PC's model, in the order they happened.
    pub breaches: Vec<Breach>,
    /// When each participant first sent a YES vote on each transaction.
    pub voted_yes_ms: BTreeMap<(TxnId, NodeId), u64>,
    /// When each node crashed.
    pub crashed_ms: BTreeMap<NodeId, Vec<u64>>,
    /// Each key's committed writers, per participant, in the order their `Committed`
    /// records became durable there (exclusive locks make that the order they held it).
    pub versions: BTreeMap<(NodeId, String), Vec<TxnId>>,
    /// Every evaluation of a Prepare on committed values (a repeated Prepare the core no
    /// longer remembers reads again): the values and their writers, in evaluation order.
    pub observed: BTreeMap<(TxnId, NodeId), Vec<Vec<Observed>>>,
}

impl History {
    /// Whether any participant made `decision` durable for `txn`.
    pub fn applied_anywhere(&self, txn: TxnId, decision: Decision) -> bool {
        self.applied
            .range((txn, NodeId(0))..=(txn, NodeId(u32::MAX)))
            .any(|(_, applied)| applied.iter().any(|a| a.decision == decision))
    }

    /// The participants that made `decision` durable for `txn`.
    pub fn applied_at(&self, txn: TxnId, decision: Decision) -> Vec<NodeId> {
        self.applied
            .range((txn, NodeId(0))..=(txn, NodeId(u32::MAX)))
            .filter(|(_, applied)| applied.iter().any(|a| a.decision == decision))
            .map(|((_, node), _)| *node)
            .collect()
    }

    /// Whether `node` crashed within `from_ms..=until_ms`.
    pub fn crashed_during(&self, node: NodeId, from_ms: u64, until_ms: u64) -> bool {
        self.crashed_ms
            .get(&node)
            .is_some_and(|times| times.iter().any(|t| (from_ms..=until_ms).contains(t)))
    }

    /// The breaches that overlap `from_ms..=until_ms`.
    pub fn breaches_during(&self, from_ms: u64, until_ms: u64) -> Vec<&Breach> {
        self.breaches
            .iter()
            .filter(|breach| breach.from_ms <= until_ms && breach.until_ms >= from_ms)
            .collect()
    }

    pub fn votes_of(&self, txn: TxnId, node: NodeId) -> &[VoteKind] {
        self.votes.get(&(txn, node)).map_or(&[], Vec::as_slice)
    }

    /// `t12` for traces and reports.
    pub fn name(&self, txn: TxnId) -> String {
        txn_name(txn)
    }
}

/// The simulator makes txn ids from a counter (below the submit time, with retention),
/// so the short name is the counter.
pub fn txn_name(txn: TxnId) -> String {
    format!("t{}", txn.0.as_u128() & ((1 << 80) - 1))
}
