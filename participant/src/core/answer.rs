//! The replies the core builds: votes, Acks and states, from an active txn's durable
//! state or a finished txn's end, held or sent at once by the one rule in
//! [`Participant::answer_or_hold`].

use wire::{Decision, FromParticipant, Outcome, Protocol, Read, RequestId, TxnId, TxnState, Vote};

use super::state::{Active, Done, End, Waiter, Wants, push_waiter};
use super::{LogEntry, Participant, ReplyTo};

impl Participant {
    /// Answers a request (a vote or an Ack) about an active txn from its durable state if
    /// that answers it, else holds it until the pending record is durable, when
    /// [`Participant::advance`] answers it. One rule, the one `check_invariants` holds
    /// waiters to: no request waits for a record once what is durable already answers it.
    pub(super) fn answer_or_hold(&mut self, txn: TxnId, to: ReplyTo, id: RequestId, wants: Wants) {
        let Some(active) = self.active.get_mut(&txn) else {
            return self.reply_internal_error(txn, to, id, "is not active");
        };
        let answer = active
            .durable
            .and_then(|durable| active_answer(txn, active, wants, durable));
        match answer {
            Some(msg) => self.reply(to, id, msg),
            None => push_waiter(
                &mut active.waiters,
                &mut self.outputs,
                txn,
                Waiter { to, id, wants },
            ),
        }
    }

    /// Answers a request about an aborted txn: at once, or once `Aborted` is durable (see
    /// [`holds_abort`]).
    pub(super) fn reply_aborted(&mut self, txn: TxnId, to: ReplyTo, id: RequestId, wants: Wants) {
        let Some(done) = self.done.get_mut(&txn) else {
            return self.reply_internal_error(txn, to, id, "is not finished");
        };
        if done.pending.is_some() && holds_abort(done.protocol, wants) {
            push_waiter(
                &mut done.waiters,
                &mut self.outputs,
                txn,
                Waiter { to, id, wants },
            );
        } else {
            let msg = done_answer(txn, done, wants);
            self.reply(to, id, msg);
        }
    }
}

/// Whether a reply saying "aborted" waits for the `Aborted` record. A state told to a peer
/// always does (the peer may decide on it); under 2PC votes and Acks do not (presumed
/// abort: a lost `Aborted` leaves the txn in doubt, and the coordinator answers abort).
pub(super) fn holds_abort(protocol: Protocol, wants: Wants) -> bool {
    protocol == Protocol::ThreePhase || wants == Wants::State
}

/// What an active txn's waiter hears once `state` is durable (`None`: it waits on).
pub(super) fn active_answer(
    txn: TxnId,
    active: &Active,
    wants: Wants,
    state: TxnState,
) -> Option<FromParticipant> {
    match (wants, state) {
        (Wants::Vote, _) => Some(vote_msg(txn, Vote::Yes, active.reads.clone())),
        (Wants::PreCommitAck, TxnState::PreCommitted | TxnState::Committed) => {
            Some(ack_msg(txn, outcome_of(state)))
        }
        (Wants::DecideAck, TxnState::Committed) => Some(ack_msg(txn, Outcome::Committed)),
        (Wants::State, state) => Some(state_msg(txn, state, active.recovered)),
        (Wants::PreCommitAck, TxnState::Prepared | TxnState::Waiting | TxnState::Aborted)
        | (
            Wants::DecideAck,
            TxnState::Prepared | TxnState::Waiting | TxnState::PreCommitted | TxnState::Aborted,
        ) => None,
    }
}

/// What a finished txn's waiter hears.
pub(super) fn done_answer(txn: TxnId, done: &Done, wants: Wants) -> FromParticipant {
    match (&done.end, wants) {
        (End::Aborted { reason }, Wants::Vote) => vote_msg(txn, no(reason), Vec::new()),
        (End::Aborted { .. }, Wants::PreCommitAck | Wants::DecideAck) => {
            ack_msg(txn, Outcome::Aborted)
        }
        (End::Aborted { .. }, Wants::State) => state_msg(txn, TxnState::Aborted, false),
        (End::Committed, Wants::Vote) => vote_msg(txn, Vote::Yes, done.reads.clone()),
        (End::Committed, Wants::PreCommitAck | Wants::DecideAck) => {
            ack_msg(txn, Outcome::Committed)
        }
        (End::Committed, Wants::State) => state_msg(txn, TxnState::Committed, false),
        (End::ReadOnly, Wants::Vote) => vote_msg(txn, Vote::ReadOnly, done.reads.clone()),
        (End::ReadOnly, Wants::State) => read_only_state(txn),
        (End::ReadOnly, Wants::PreCommitAck | Wants::DecideAck) => FromParticipant::Refused {
            reason: format!("txn {txn} was voted read-only here"),
        },
    }
}

/// A read-only voter does not know the outcome: it answers like a 2PC participant in doubt
/// (`Prepared`), which resolves nothing and which a termination leader leaves out.
pub(super) fn read_only_state(txn: TxnId) -> FromParticipant {
    state_msg(txn, TxnState::Prepared, false)
}

/// A `StateReply`: `recovered` only while the txn is undecided after a restart (a decided
/// state is final whoever tells it).
pub(super) fn state_msg(txn: TxnId, state: TxnState, recovered: bool) -> FromParticipant {
    let decided = match state {
        TxnState::Committed | TxnState::Aborted => true,
        TxnState::Prepared | TxnState::Waiting | TxnState::PreCommitted => false,
    };
    FromParticipant::StateReply {
        txn,
        state,
        recovered: recovered && !decided,
    }
}

pub(super) fn outcome_of(state: TxnState) -> Outcome {
    match state {
        TxnState::Committed => Outcome::Committed,
        TxnState::Aborted => Outcome::Aborted,
        TxnState::PreCommitted => Outcome::PreCommitted,
        TxnState::Prepared | TxnState::Waiting => Outcome::Unknown,
    }
}

pub(super) fn decided_outcome(decision: Decision) -> Outcome {
    match decision {
        Decision::Commit => Outcome::Committed,
        Decision::Abort => Outcome::Aborted,
    }
}

pub(super) fn reads_of(entries: &[LogEntry]) -> Vec<Read> {
    entries
        .iter()
        .filter(|entry| !entry.op.writes())
        .map(|entry| Read {
            key: entry.key.clone(),
            value: entry.redo.clone(),
        })
        .collect()
}

pub(super) fn no(reason: &str) -> Vote {
    Vote::No {
        reason: reason.to_string(),
    }
}

pub(super) fn vote_msg(txn: TxnId, vote: Vote, reads: Vec<Read>) -> FromParticipant {
    FromParticipant::Vote { txn, vote, reads }
}

pub(super) fn ack_msg(txn: TxnId, outcome: Outcome) -> FromParticipant {
    FromParticipant::Ack { txn, outcome }
}
