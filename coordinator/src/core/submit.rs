//! `Input::Submit`: a client's transaction is checked against the limits and the cluster,
//! then Prepare (3PC: CanCommit) goes to every participant and the votes are awaited.

use wire::{NodeId, Op, Protocol, ToParticipant, TxnId, TxnResult, TxnSpec};

use super::io::{ClientRef, Millis, Output};
use super::txn::{Part, PartState, Phase, Txn};
use super::{Coordinator, validate};

impl Coordinator {
    pub(super) fn on_submit(&mut self, now: Millis, client: ClientRef, id: TxnId, spec: TxnSpec) {
        let valid = validate(&spec, &self.config.participants, &self.config.limits)
            .and_then(|()| self.validate_three_phase(&spec))
            .and_then(|()| self.check_frame_limits(id, &spec));
        let rejected = if let Err(reason) = valid {
            Some(reason)
        } else if self.txns.contains_key(&id) {
            Some(format!("duplicate transaction id {id}"))
        } else if self.txns_in_flight() >= self.config.limits.txns_in_flight_max {
            Some(format!(
                "coordinator overloaded: {} transactions in flight",
                self.txns_in_flight()
            ))
        } else {
            None
        };
        if let Some(reason) = rejected {
            self.outputs.push_back(Output::ClientResult {
                client,
                txn: id,
                result: TxnResult::Rejected { reason },
            });
            return;
        }
        if let Some((down, _)) = spec.parts.iter().find(|(node, _)| !self.up.contains(node)) {
            self.outputs.push_back(Output::ClientResult {
                client,
                txn: id,
                result: TxnResult::Aborted {
                    reason: format!("participant {down} is down"),
                },
            });
            return;
        }
        let parts: Vec<Part> = spec
            .parts
            .into_iter()
            .map(|(node, ops)| Part {
                node,
                ops,
                state: PartState::AwaitingVote,
                reads: Vec::new(),
            })
            .collect();
        let nodes: Vec<NodeId> = parts.iter().map(|part| part.node).collect();
        for part in &parts {
            self.outputs.push_back(Output::Send {
                to: part.node,
                msg: prepare(id, spec.protocol, spec.timeout_ms, &part.ops, &nodes),
            });
        }
        let votes_due = match spec.protocol {
            Protocol::TwoPhase => now.plus(spec.timeout_ms),
            Protocol::ThreePhase => self.precommit_deadline(now, spec.timeout_ms),
        };
        self.txns.insert(
            id,
            Txn {
                protocol: spec.protocol,
                timeout_ms: spec.timeout_ms,
                client: Some(client),
                parts,
                phase: Phase::Collecting { votes_due },
                wake_at: None,
                abort_reason: None,
                precommit_late: false,
                released: false,
            },
        );
        self.arm(id, Some(votes_due));
    }
}

/// The `Prepare` (3PC: CanCommit) for one participant of `txn`.
pub(super) fn prepare(
    txn: TxnId,
    protocol: Protocol,
    timeout_ms: u64,
    ops: &[Op],
    participants: &[NodeId],
) -> ToParticipant {
    ToParticipant::Prepare {
        txn,
        protocol,
        ops: ops.to_vec(),
        timeout_ms,
        participants: participants.to_vec(),
    }
}
