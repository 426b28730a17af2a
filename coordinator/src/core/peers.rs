//! Participants' channels: `PeerUp` (re-send what is unanswered, unanswered `Release`s
//! included: every message is idempotent), `PeerDown` (abort what cannot finish
//! collecting, give up on a PreCommit ack) and `SendFailed` (a Prepare that never reached
//! the channel aborts).

use wire::{Decision, NodeId, Protocol, ToParticipant, TxnId};

use super::Coordinator;
use super::io::{Millis, Output, SendFailure};
use super::recovery::asks_state;
use super::submit::prepare;
use super::txn::{PartState, Phase, decide};

impl Coordinator {
    pub(super) fn on_send_failed(&mut self, to: NodeId, id: TxnId, failure: SendFailure) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        // A later-phase message that could not be queued is re-sent by the resend timer
        // or on PeerUp.
        if !matches!(txn.phase, Phase::Collecting { .. }) {
            return;
        }
        let Some(part) = txn.part_mut(to) else {
            return;
        };
        if part.state != PartState::AwaitingVote {
            return;
        }
        part.state = PartState::Unsent;
        let reason = match failure {
            SendFailure::Overloaded => {
                format!("participant {to} is overloaded: its send queue is full")
            }
            SendFailure::Closed => format!("participant {to} is down"),
            SendFailure::TooLarge { len, max } => format!(
                "the Prepare for participant {to} is {len} bytes, over its frame limit of {max} bytes"
            ),
        };
        self.abort(id, reason);
    }

    pub(super) fn on_peer_up(&mut self, peer: NodeId) {
        self.up.insert(peer);
        // A new connection: whatever the old one carried may be lost. Every message is
        // idempotent at the participant, so re-send what is still unanswered.
        for (&id, txn) in &self.txns {
            let Some(part) = txn.parts.iter().find(|p| p.node == peer) else {
                continue;
            };
            let msg = match txn.phase {
                Phase::Collecting { .. } => (part.state == PartState::AwaitingVote)
                    .then(|| prepare(id, txn.protocol, txn.timeout_ms, &part.ops, &txn.nodes())),
                Phase::PreCommitting { .. } => {
                    matches!(part.state, PartState::AwaitingPreAck | PartState::Silent)
                        .then_some(ToParticipant::PreCommit { txn: id })
                }
                Phase::Committing { .. } => (part.state == PartState::AwaitingAck)
                    .then(|| decide(id, Decision::Commit, None)),
                // A participant that reported an operational state may have restarted.
                Phase::Resolving { .. } => {
                    asks_state(part.state).then_some(ToParticipant::StateQuery { txn: id })
                }
                // Nothing is owed while a record is written: its `Persisted` sends what
                // follows to every participant that is up then.
                Phase::Logging { .. } | Phase::LoggingAbort { .. } => None,
            };
            let Some(msg) = msg else {
                continue;
            };
            self.outputs.push_back(Output::Send { to: peer, msg });
        }
        // Releases it has not answered (the txns may be over: a release outlives them).
        for txn in self.releases.of(peer) {
            self.outputs.push_back(Output::Send {
                to: peer,
                msg: ToParticipant::Release { txn },
            });
        }
    }

    pub(super) fn on_peer_down(&mut self, now: Millis, peer: NodeId) {
        self.up.remove(&peer);
        let mut aborts = Vec::new();
        let mut silent = Vec::new();
        for (&id, txn) in &self.txns {
            let Some(part) = txn.parts.iter().find(|p| p.node == peer) else {
                continue;
            };
            match txn.phase {
                Phase::Collecting { .. } => {
                    let aborts_now = match part.state {
                        PartState::AwaitingVote => true,
                        // A read-only voter that went down may restart before every vote
                        // is in; it takes its shared locks again from its record, but
                        // aborting costs little and leaves the lock point to no clock.
                        PartState::ReadOnly => txn.parts.len() > 1,
                        PartState::Yes => match txn.protocol {
                            // Prepared durably: it learns the outcome when it is back.
                            Protocol::TwoPhase => false,
                            // A YES voter that is down could not get its PreCommit in time.
                            Protocol::ThreePhase => true,
                        },
                        // Not states of a collecting transaction between inputs.
                        PartState::Unsent
                        | PartState::No
                        | PartState::AwaitingPreAck
                        | PartState::PreAcked
                        | PartState::Silent
                        | PartState::AwaitingState
                        | PartState::Reported { .. }
                        | PartState::Aborted
                        | PartState::AwaitingAck
                        | PartState::Acked => false,
                    };
                    if aborts_now {
                        aborts.push(id);
                    }
                }
                Phase::PreCommitting { acks_due, .. } => {
                    if acks_due.is_some() && part.state == PartState::AwaitingPreAck {
                        silent.push(id);
                    }
                }
                // Past the votes: what it still needs is re-sent when it is back
                // (`on_peer_up`, the resend timer).
                Phase::Logging { .. }
                | Phase::Committing { .. }
                | Phase::Resolving { .. }
                | Phase::LoggingAbort { .. } => {}
            }
        }
        for id in aborts {
            self.abort(id, format!("participant {peer} is down"));
        }
        for id in silent {
            self.precommit_failed(now, id, peer);
        }
    }
}
