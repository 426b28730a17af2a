//! The one translation from what arrives on a channel to the core's [`Input`]: which
//! messages a participant serves from whom, what the shell must read from its store
//! first, and the `Input` built from the message and those reads.
//!
//! Pure, so the real shell (`shell/`), the simulator and the model checker all call it:
//! a bug in the translation is a bug every one of them exercises. The shell's part is
//! only the IO in between: `plan`, read what `Reads` names, `request_input`.

use std::collections::BTreeMap;

use wire::{Msg, NodeId, RequestId, Role, TxnId, Value};

use super::{Input, Participant, ReplyTo, StoredTxn};

/// What a request from a peer asks of the shell.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Plan {
    /// A protocol request: read what `needs` names, then call [`request_input`].
    Protocol(Needs),
    /// A client's status request, answered by the shell from its own state.
    Status,
    /// Not served from that kind of peer: answer `Msg::Error { reason }`.
    Refuse { reason: String },
}

/// The store reads a protocol request needs before it becomes an `Input`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Needs {
    /// Keys whose committed values a Prepare's evaluation needs (empty when the core
    /// remembers the txn, or refuses the ops on their count before any value matters).
    pub keys: Vec<String>,
    /// The txn whose stored record the core needs (`None` when the core remembers it).
    pub stored: Option<TxnId>,
}

/// What the shell read for a request's [`Needs`].
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Reads {
    /// The committed value of every key in `Needs::keys` (`None`: absent).
    pub values: BTreeMap<String, Option<Value>>,
    pub stored: Option<StoredTxn>,
}

/// Which requests this participant serves from a peer in `role`, and what to read first.
pub fn plan(core: &Participant, role: Role, msg: &Msg) -> Plan {
    let protocol_peer = match role {
        Role::Coordinator | Role::Participant => true,
        Role::Client => false,
    };
    let stored_of = |txn: TxnId| (!core.knows(txn)).then_some(txn);
    let refuse = || Plan::Refuse {
        reason: format!(
            "participant {} does not serve {} requests from a {role:?}",
            core.node_id(),
            msg.kind()
        ),
    };
    match msg {
        Msg::Prepare { txn, ops, .. } if role == Role::Coordinator => {
            // Known txns are answered from memory; ops past the limit are refused by the
            // core before any value matters, so they are not read.
            let read_values = !core.knows(*txn) && ops.len() <= core.config().ops_per_txn_max;
            let keys = if read_values {
                ops.iter().map(|op| op.key().to_string()).collect()
            } else {
                Vec::new()
            };
            Plan::Protocol(Needs {
                keys,
                stored: stored_of(*txn),
            })
        }
        Msg::PreCommit { txn } | Msg::Decide { txn, .. } | Msg::StateQuery { txn }
            if protocol_peer =>
        {
            Plan::Protocol(Needs {
                keys: Vec::new(),
                stored: stored_of(*txn),
            })
        }
        // Only memory is involved: no stored state to read.
        Msg::Release { .. } if protocol_peer => Plan::Protocol(Needs::default()),
        Msg::Status if role == Role::Client => Plan::Status,
        // Requests from the wrong kind of peer.
        Msg::Prepare { .. }
        | Msg::PreCommit { .. }
        | Msg::Decide { .. }
        | Msg::StateQuery { .. }
        | Msg::Release { .. }
        | Msg::Status
        // Responses, the coordinator's own requests, and client traffic for a coordinator.
        | Msg::Vote { .. }
        | Msg::Ack { .. }
        | Msg::DecisionQuery { .. }
        | Msg::DecisionAnswer { .. }
        | Msg::StateReply { .. }
        | Msg::Released { .. }
        | Msg::Submit { .. }
        | Msg::Result { .. }
        | Msg::StatusReport { .. }
        | Msg::Error { .. } => refuse(),
    }
}

/// The `Input` for a request [`plan`] called `Protocol`, with what the shell read.
/// `Err` (the reason) for a message `plan` does not call a protocol request.
pub fn request_input(
    from: ReplyTo,
    id: RequestId,
    msg: Msg,
    reads: Reads,
) -> Result<Input, String> {
    let Reads { values, stored } = reads;
    Ok(match msg {
        Msg::Prepare {
            txn,
            protocol,
            ops,
            timeout_ms,
            participants,
        } => Input::Prepare {
            from,
            id,
            txn,
            protocol,
            ops,
            timeout_ms,
            participants,
            values,
            stored,
        },
        Msg::PreCommit { txn } => Input::PreCommit {
            from,
            id,
            txn,
            stored,
        },
        Msg::Decide { txn, decision } => Input::Decide {
            from,
            id,
            txn,
            decision,
            stored,
        },
        Msg::StateQuery { txn } => Input::StateQuery {
            from,
            id,
            txn,
            stored,
        },
        Msg::Release { txn } => Input::Release { from, id, txn },
        other @ (Msg::Vote { .. }
        | Msg::Ack { .. }
        | Msg::DecisionQuery { .. }
        | Msg::DecisionAnswer { .. }
        | Msg::StateReply { .. }
        | Msg::Released { .. }
        | Msg::Submit { .. }
        | Msg::Result { .. }
        | Msg::Status
        | Msg::StatusReport { .. }
        | Msg::Error { .. }) => {
            return Err(format!("{} is not a protocol request", other.kind()));
        }
    })
}

/// The `Input` for a response from `from` to a request this core sent; `Err` (what to
/// log) for an error reply or a message that is no answer to anything the core sends.
pub fn response_input(from: NodeId, msg: Msg) -> Result<Input, String> {
    match msg {
        Msg::DecisionAnswer { txn, answer } => Ok(Input::DecisionAnswer { from, txn, answer }),
        Msg::StateReply {
            txn,
            state,
            recovered,
        } => Ok(Input::StateReply {
            from,
            txn,
            state,
            recovered,
        }),
        Msg::Ack { txn, outcome } => Ok(Input::Ack { from, txn, outcome }),
        Msg::Error { reason } => Err(format!("peer refused a request: {reason}")),
        other @ (Msg::Prepare { .. }
        | Msg::PreCommit { .. }
        | Msg::Vote { .. }
        | Msg::Decide { .. }
        | Msg::DecisionQuery { .. }
        | Msg::StateQuery { .. }
        | Msg::Release { .. }
        | Msg::Released { .. }
        | Msg::Submit { .. }
        | Msg::Result { .. }
        | Msg::Status
        | Msg::StatusReport { .. }) => Err(format!("unexpected response {} dropped", other.kind())),
    }
}

#[cfg(test)]
mod tests {
    use wire::{Decision, Op, Protocol};

    use super::*;
    use crate::core::Config;

    fn core() -> Participant {
        Participant::new(NodeId(1), Config::default()).expect("valid config")
    }

    fn prepare(ops: Vec<Op>) -> Msg {
        Msg::Prepare {
            txn: TxnId(uuid::Uuid::from_u128(7)),
            protocol: Protocol::TwoPhase,
            ops,
            timeout_ms: 1_000,
            participants: vec![NodeId(1)],
        }
    }

    #[test]
    fn a_prepare_from_a_coordinator_reads_its_keys_and_the_stored_txn() {
        let msg = prepare(vec![
            Op::Get { key: "a".into() },
            Op::Delete { key: "b".into() },
        ]);
        assert_eq!(
            plan(&core(), Role::Coordinator, &msg),
            Plan::Protocol(Needs {
                keys: vec!["a".to_string(), "b".to_string()],
                stored: Some(TxnId(uuid::Uuid::from_u128(7))),
            })
        );
    }

    #[test]
    fn a_prepare_with_too_many_ops_reads_no_value() {
        let ops = (0..=Config::default().ops_per_txn_max)
            .map(|i| Op::Get {
                key: format!("k{i}"),
            })
            .collect();
        assert_eq!(
            plan(&core(), Role::Coordinator, &prepare(ops)),
            Plan::Protocol(Needs {
                keys: Vec::new(),
                stored: Some(TxnId(uuid::Uuid::from_u128(7))),
            })
        );
    }

    #[test]
    fn prepares_come_only_from_coordinators_and_status_only_from_clients() {
        let refused =
            |role: Role, msg: &Msg| matches!(plan(&core(), role, msg), Plan::Refuse { .. });
        assert!(refused(Role::Participant, &prepare(Vec::new())));
        assert!(refused(Role::Client, &prepare(Vec::new())));
        assert!(refused(Role::Coordinator, &Msg::Status));
        assert_eq!(plan(&core(), Role::Client, &Msg::Status), Plan::Status);
        let decide = Msg::Decide {
            txn: TxnId(uuid::Uuid::from_u128(7)),
            decision: Decision::Commit,
        };
        assert!(refused(Role::Client, &decide));
        assert!(matches!(
            plan(&core(), Role::Participant, &decide),
            Plan::Protocol(_)
        ));
    }

    #[test]
    fn only_answers_to_the_cores_requests_become_inputs() {
        let from = NodeId(2);
        assert!(response_input(from, Msg::Error { reason: "x".into() }).is_err());
        assert!(response_input(from, Msg::Status).is_err());
        assert!(
            request_input(
                ReplyTo {
                    peer: from,
                    conn: 1
                },
                RequestId(1),
                Msg::Status,
                Reads::default()
            )
            .is_err()
        );
    }
}
