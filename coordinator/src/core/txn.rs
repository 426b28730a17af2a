//! One transaction as the core tracks it: its `Phase`, each participant's `PartState`,
//! the records still being written (`Pending`), and the small helpers every handler uses.

use std::collections::BTreeSet;

use wire::{Decision, NodeId, Op, Protocol, Read, ToParticipant, TxnId, TxnState};

use super::io::{ClientRef, Lsn, Millis};

/// Where one participant of a transaction stands, as far as the coordinator knows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum PartState {
    /// The Prepare never reached the channel: the participant cannot have prepared.
    Unsent,
    AwaitingVote,
    Yes,
    ReadOnly,
    No,
    /// 3PC: PreCommit sent (or owed while it is down); no ack yet.
    AwaitingPreAck,
    /// 3PC: acked the PreCommit (PreCommitted, or Committed by a termination leader).
    PreAcked,
    /// 3PC: no PreCommit ack by the ack timeout, or went down: treated as failed, it
    /// gets DoCommit with the others (and PreCommit again if it comes back first).
    Silent,
    /// 3PC recovery: StateQuery sent (or owed while it is down); no reply yet.
    AwaitingState,
    /// 3PC recovery: replied Waiting or PreCommitted (Prepared is taken as Waiting).
    /// `recovered`: the participant restarted since its vote, so it never decides on its
    /// own again (an operational one may still lead a termination round and decide).
    Reported {
        state: TxnState,
        recovered: bool,
    },
    /// 3PC: the participant reported that it aborted (or, answering a DoCommit, that it
    /// has no record of the transaction): it will never commit.
    Aborted,
    AwaitingAck,
    /// The commit is applied there: it acked the DoCommit (3PC: or answered a PreCommit
    /// or a StateQuery with Committed). 2PC also counts a contradicting ack here (logged).
    Acked,
}

/// One participant of a transaction: its operations, its state and what it read.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(super) struct Part {
    pub(super) node: NodeId,
    /// Kept while collecting votes (for a re-sent Prepare), dropped at the decision.
    pub(super) ops: Vec<Op>,
    pub(super) state: PartState,
    pub(super) reads: Vec<Read>,
}

/// Where a transaction stands as a whole; the deadlines its one timer serves.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Phase {
    Collecting {
        /// 2PC: submission + timeout. 3PC: CanCommit + timeout - precommit margin, the
        /// last moment a PreCommit is safe (see `three_phase.rs`).
        votes_due: Millis,
    },
    Logging {
        lsn: Lsn,
        /// 3PC: the PreCommit deadline (`Collecting::votes_due`), kept while the
        /// precommit is written: a record durable at or after it sends no PreCommit.
        precommit_due: Option<Millis>,
    },
    PreCommitting {
        /// `None` in recovery: every PreCommit must be acked (nobody is presumed failed).
        acks_due: Option<Millis>,
        resend_at: Millis,
    },
    Committing {
        client_due: Option<Millis>,
        resend_at: Millis,
    },
    Resolving {
        resend_at: Millis,
    },
    LoggingAbort {
        lsn: Lsn,
    },
}

impl Phase {
    /// Whether the decision (3PC: the precommit) is durable: every phase after `Logging`.
    pub(super) fn is_decided(self) -> bool {
        match self {
            Phase::Collecting { .. } | Phase::Logging { .. } => false,
            Phase::PreCommitting { .. }
            | Phase::Committing { .. }
            | Phase::Resolving { .. }
            | Phase::LoggingAbort { .. } => true,
        }
    }
}

/// A transaction the coordinator tracks, from Submit (or recovery) until it is forgotten.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(super) struct Txn {
    pub(super) protocol: Protocol,
    pub(super) timeout_ms: u64,
    /// `None` once the client has its result (or for a recovered transaction).
    pub(super) client: Option<ClientRef>,
    pub(super) parts: Vec<Part>,
    pub(super) phase: Phase,
    /// The entry this transaction has in `Coordinator::timers`.
    pub(super) wake_at: Option<Millis>,
    /// 3PC: why the commit was turned into an abort (set in `LoggingAbort`).
    pub(super) abort_reason: Option<String>,
    /// 3PC: the precommit record became durable after the PreCommit deadline, so no
    /// PreCommit went out and the abort is adopted with no participant reporting one.
    pub(super) precommit_late: bool,
    /// `Release` went to the ReadOnly voters (every vote was in): not sent again at an abort.
    pub(super) released: bool,
}

impl Txn {
    pub(super) fn part_mut(&mut self, node: NodeId) -> Option<&mut Part> {
        self.parts.iter_mut().find(|part| part.node == node)
    }

    pub(super) fn reads(&self) -> Vec<(NodeId, Vec<Read>)> {
        self.parts
            .iter()
            .filter(|part| !part.reads.is_empty())
            .map(|part| (part.node, part.reads.clone()))
            .collect()
    }

    pub(super) fn nodes(&self) -> Vec<NodeId> {
        self.parts.iter().map(|part| part.node).collect()
    }

    /// The participants in `state`, by id (for reasons and logs).
    pub(super) fn nodes_in(&self, state: PartState) -> Vec<NodeId> {
        let nodes: BTreeSet<NodeId> = self
            .parts
            .iter()
            .filter(|part| part.state == state)
            .map(|part| part.node)
            .collect();
        nodes.into_iter().collect()
    }

    /// Whether the client may hear "committed" before every ack is in. 2PC: yes, the
    /// logged commit is final. 3PC: only once a participant confirmed that it committed
    /// and none refused: until then the participants' termination protocol may have
    /// aborted the precommit (and a recovering coordinator would adopt that abort).
    pub(super) fn commit_known(&self) -> bool {
        let has = |state| self.parts.iter().any(|part| part.state == state);
        match self.protocol {
            Protocol::TwoPhase => true,
            Protocol::ThreePhase => has(PartState::Acked) && !has(PartState::Aborted),
        }
    }
}

/// A record handed out as `Persist` whose `Persisted` is awaited, by kind.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Pending {
    Decided(TxnId),
    Ended(TxnId),
    AbortAdopted(TxnId),
}

/// The `Decide` message for `txn`; an abort says why, and the participants record it.
pub(super) fn decide(txn: TxnId, decision: Decision, reason: Option<&str>) -> ToParticipant {
    ToParticipant::Decide {
        txn,
        decision,
        reason: reason.map(str::to_string),
    }
}

/// The earlier of an optional deadline and a resend time.
pub(super) fn earliest(a: Option<Millis>, b: Millis) -> Millis {
    a.map_or(b, |a| a.min(b))
}

/// "participant 2" or "participants 2, 3".
pub(super) fn participants_text(nodes: &[NodeId]) -> String {
    let list: Vec<String> = nodes.iter().map(NodeId::to_string).collect();
    match list.len() {
        1 => format!("participant {}", list[0]),
        _ => format!("participants {}", list.join(", ")),
    }
}
