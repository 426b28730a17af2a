//! The one translation from what arrives on a channel to the core's [`Input`]: which
//! messages a participant serves from whom, what the shell must read from its store
//! first, and the `Input` built from the message and those reads.
//!
//! Pure, so the real shell (`shell/`), the simulator and the model checker all call it:
//! a bug in the translation is a bug every one of them exercises. The shell's part is
//! only the IO in between: `plan`, read what `Reads` names, `request_input`.

use std::collections::BTreeMap;

use wire::{
    ClientRequest, Decision, FromCoordinator, FromParticipant, NodeId, Request, RequestId,
    Response, Role, ToParticipant, TxnId, Value,
};

use super::{Input, Participant, ReplyTo, StoredTxn};

/// What a request from a peer asks of the shell.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Plan {
    /// A protocol request: read what `needs` names, then call [`request_input`].
    Protocol { msg: ToParticipant, needs: Needs },
    /// A client's status request, answered by the shell from its own state.
    Status,
    /// An operator's lookup, answered by the shell from its store.
    Lookup(Lookup),
    /// An operator's heuristic decision: read what `needs` names, then call
    /// [`resolve_input`].
    Resolve {
        txn: TxnId,
        decision: Decision,
        note: String,
        needs: Needs,
    },
    /// Not served from that kind of peer: answer `reply` (a refusal in the request's own
    /// family, saying `reason`).
    Refuse { reason: String, reply: Response },
}

/// What an operator looks up (`participant in-doubt --addr`, `participant txn --addr`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lookup {
    InDoubt,
    Txn(TxnId),
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
/// Exhaustive over every request family: a new request must say who may send it.
pub fn plan(core: &Participant, role: Role, msg: Request) -> Plan {
    let stored_of = |txn: TxnId| core.may_be_stored(txn).then_some(txn);
    let served = match (role, &msg) {
        (Role::Coordinator, Request::Participant(ToParticipant::Prepare { txn, ops, .. })) => {
            // Known txns are answered from memory; ops past the limit are refused by the
            // core before any value matters, so they are not read.
            let read_values = !core.knows(*txn) && ops.len() <= core.config().ops_per_txn_max;
            let keys = if read_values {
                ops.iter().map(|op| op.key().to_string()).collect()
            } else {
                Vec::new()
            };
            Some(Needs {
                keys,
                stored: stored_of(*txn),
            })
        }
        (
            Role::Coordinator | Role::Participant,
            Request::Participant(
                ToParticipant::PreCommit { txn }
                | ToParticipant::Decide { txn, .. }
                | ToParticipant::StateQuery { txn },
            ),
        ) => Some(Needs {
            keys: Vec::new(),
            stored: stored_of(*txn),
        }),
        // Only memory is involved: no stored state to read.
        (Role::Coordinator, Request::Participant(ToParticipant::Release { .. })) => {
            Some(Needs::default())
        }
        (Role::Client, Request::Client(ClientRequest::Status)) => return Plan::Status,
        (Role::Client, Request::Client(ClientRequest::InDoubt)) => {
            return Plan::Lookup(Lookup::InDoubt);
        }
        (Role::Client, Request::Client(ClientRequest::Txn { txn })) => {
            return Plan::Lookup(Lookup::Txn(*txn));
        }
        (
            Role::Client,
            Request::Client(ClientRequest::Resolve {
                txn,
                decision,
                note,
            }),
        ) => {
            return Plan::Resolve {
                txn: *txn,
                decision: *decision,
                note: note.clone(),
                needs: Needs {
                    keys: Vec::new(),
                    stored: stored_of(*txn),
                },
            };
        }
        (
            Role::Participant | Role::Client,
            Request::Participant(ToParticipant::Prepare { .. } | ToParticipant::Release { .. }),
        )
        | (
            Role::Client,
            Request::Participant(
                ToParticipant::PreCommit { .. }
                | ToParticipant::Decide { .. }
                | ToParticipant::StateQuery { .. },
            ),
        )
        | (_, Request::Coordinator(_))
        | (_, Request::Client(ClientRequest::Submit { .. }))
        | (
            Role::Coordinator | Role::Participant,
            Request::Client(
                ClientRequest::Status
                | ClientRequest::InDoubt
                | ClientRequest::Txn { .. }
                | ClientRequest::Resolve { .. },
            ),
        ) => None,
    };
    match (served, msg) {
        (Some(needs), Request::Participant(msg)) => Plan::Protocol { msg, needs },
        (_, msg) => {
            let reason = format!(
                "participant {} does not serve {} requests from a {role:?}",
                core.node_id(),
                msg.kind()
            );
            let reply = msg.refused(reason.clone());
            Plan::Refuse { reason, reply }
        }
    }
}

/// The `Input` for a request [`plan`] called `Protocol`, with what the shell read.
pub fn request_input(from: ReplyTo, id: RequestId, msg: ToParticipant, reads: Reads) -> Input {
    let Reads { values, stored } = reads;
    match msg {
        ToParticipant::Prepare {
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
        ToParticipant::PreCommit { txn } => Input::PreCommit {
            from,
            id,
            txn,
            stored,
        },
        ToParticipant::Decide {
            txn,
            decision,
            reason,
        } => Input::Decide {
            from,
            id,
            txn,
            decision,
            reason,
            stored,
        },
        ToParticipant::StateQuery { txn } => Input::StateQuery {
            from,
            id,
            txn,
            stored,
        },
        ToParticipant::Release { txn } => Input::Release { from, id, txn },
    }
}

/// The `Input` for a resolve [`plan`] called `Resolve`, with what the shell read.
pub fn resolve_input(
    from: ReplyTo,
    id: RequestId,
    txn: TxnId,
    decision: Decision,
    note: String,
    reads: Reads,
) -> Input {
    Input::Resolve {
        from,
        id,
        txn,
        decision,
        note,
        stored: reads.stored,
    }
}

/// The `Input` for a response from `from` to a request this core sent; `Err` (what to
/// log) for a refusal or a message that is no answer to anything the core sends.
pub fn response_input(from: NodeId, msg: Response) -> Result<Input, String> {
    match msg {
        Response::Coordinator(FromCoordinator::DecisionAnswer { txn, answer }) => {
            Ok(Input::DecisionAnswer { from, txn, answer })
        }
        Response::Participant(FromParticipant::StateReply {
            txn,
            state,
            recovered,
        }) => Ok(Input::StateReply {
            from,
            txn,
            state,
            recovered,
        }),
        Response::Participant(FromParticipant::Ack { txn, outcome }) => {
            Ok(Input::Ack { from, txn, outcome })
        }
        Response::Participant(FromParticipant::Refused { reason })
        | Response::Coordinator(FromCoordinator::Refused { reason }) => {
            Err(format!("peer refused a request: {reason}"))
        }
        // A participant sends no Prepare, Release or client request: these answer nothing.
        Response::Participant(FromParticipant::Vote { .. } | FromParticipant::Released { .. })
        | Response::Client(_) => Err(format!("unexpected response {} dropped", msg.kind())),
    }
}

#[cfg(test)]
mod tests {
    use wire::{ClientResponse, Decision, Op, Protocol};

    use super::*;
    use crate::core::{Config, Millis};

    fn core() -> Participant {
        Participant::new(NodeId(1), Config::default()).expect("valid config")
    }

    fn txn() -> TxnId {
        TxnId(uuid::Uuid::from_u128(7))
    }

    fn prepare(ops: Vec<Op>) -> ToParticipant {
        ToParticipant::Prepare {
            txn: txn(),
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
            plan(&core(), Role::Coordinator, msg.clone().into()),
            Plan::Protocol {
                msg,
                needs: Needs {
                    keys: vec!["a".to_string(), "b".to_string()],
                    stored: Some(txn()),
                }
            }
        );
    }

    /// The stored txn a Prepare for `id` asks to read, on `core`.
    fn stored_read(core: &Participant, id: u128) -> Option<TxnId> {
        let msg = ToParticipant::Prepare {
            txn: TxnId(uuid::Uuid::from_u128(id)),
            protocol: Protocol::TwoPhase,
            ops: vec![Op::Get { key: "a".into() }],
            timeout_ms: 1_000,
            participants: vec![NodeId(1)],
        };
        match plan(core, Role::Coordinator, msg.into()) {
            Plan::Protocol { needs, .. } => needs.stored,
            Plan::Refuse { .. } | Plan::Status | Plan::Lookup(_) | Plan::Resolve { .. } => None,
        }
    }

    #[test]
    fn only_ids_the_store_may_hold_are_read() {
        let id = |n: u128| TxnId(uuid::Uuid::from_u128(n));
        let mut core = core();
        // Before recovery every unknown txn may be stored.
        assert_eq!(stored_read(&core, 9), Some(id(9)));
        core.handle(
            Millis(0),
            Input::Recover {
                txns: Vec::new(),
                holds: Vec::new(),
                wall_ms: 0,
                stored_max: Some(id(5)),
            },
        );
        assert_eq!(stored_read(&core, 5), Some(id(5)));
        assert_eq!(
            stored_read(&core, 6),
            None,
            "above what the store held: new"
        );
        // A record persisted for txn 8 puts 6 and 7 back among the possibly stored ones
        // (once 8 is forgotten from memory, nothing tells them apart any more).
        let prepare8 = ToParticipant::Prepare {
            txn: id(8),
            protocol: Protocol::TwoPhase,
            ops: vec![Op::Get { key: "a".into() }],
            timeout_ms: 1_000,
            participants: vec![NodeId(1)],
        };
        let from = ReplyTo {
            peer: NodeId(9),
            conn: 1,
        };
        core.handle(
            Millis(0),
            request_input(from, RequestId(1), prepare8, Reads::default()),
        );
        assert!(
            std::iter::from_fn(|| core.poll_output())
                .any(|output| matches!(output, crate::core::Output::Persist { .. })),
            "the Prepare was logged"
        );
        assert_eq!(stored_read(&core, 7), Some(id(7)));
        assert_eq!(stored_read(&core, 8), None, "known in memory");
        assert_eq!(stored_read(&core, 9), None);
    }

    #[test]
    fn a_prepare_with_too_many_ops_reads_no_value() {
        let ops = (0..=Config::default().ops_per_txn_max)
            .map(|i| Op::Get {
                key: format!("k{i}"),
            })
            .collect();
        let msg = prepare(ops);
        assert_eq!(
            plan(&core(), Role::Coordinator, msg.clone().into()),
            Plan::Protocol {
                msg,
                needs: Needs {
                    keys: Vec::new(),
                    stored: Some(txn()),
                }
            }
        );
    }

    #[test]
    fn prepares_come_only_from_coordinators_and_status_only_from_clients() {
        // Each refusal answers in the family of its request.
        let refusal = |role: Role, msg: Request| match plan(&core(), role, msg) {
            Plan::Refuse { reply, .. } => Some(reply),
            Plan::Protocol { .. } | Plan::Status | Plan::Lookup(_) | Plan::Resolve { .. } => None,
        };
        let is_participant_refusal = |reply: Option<Response>| {
            matches!(
                reply,
                Some(Response::Participant(FromParticipant::Refused { .. }))
            )
        };
        assert!(is_participant_refusal(refusal(
            Role::Participant,
            prepare(Vec::new()).into()
        )));
        assert!(is_participant_refusal(refusal(
            Role::Client,
            prepare(Vec::new()).into()
        )));
        assert!(matches!(
            refusal(Role::Coordinator, ClientRequest::Status.into()),
            Some(Response::Client(ClientResponse::Refused { .. }))
        ));
        assert_eq!(
            plan(&core(), Role::Client, ClientRequest::Status.into()),
            Plan::Status
        );
        let decide = ToParticipant::Decide {
            txn: txn(),
            decision: Decision::Commit,
            reason: None,
        };
        assert!(is_participant_refusal(refusal(
            Role::Client,
            decide.clone().into()
        )));
        assert!(matches!(
            plan(&core(), Role::Participant, decide.into()),
            Plan::Protocol { .. }
        ));
        assert!(matches!(
            refusal(
                Role::Participant,
                wire::ToCoordinator::DecisionQuery { txn: txn() }.into()
            ),
            Some(Response::Coordinator(FromCoordinator::Refused { .. }))
        ));
    }

    #[test]
    fn only_answers_to_the_cores_requests_become_inputs() {
        let from = NodeId(2);
        let refused = FromParticipant::Refused { reason: "x".into() };
        assert!(response_input(from, refused.into()).is_err());
        let released = FromParticipant::Released { txn: txn() };
        assert!(response_input(from, released.into()).is_err());
        let report = ClientResponse::StatusReport { text: "x".into() };
        assert!(response_input(from, report.into()).is_err());
        let ack = FromParticipant::Ack {
            txn: txn(),
            outcome: wire::Outcome::Committed,
        };
        assert!(matches!(
            response_input(from, ack.into()),
            Ok(Input::Ack {
                from: NodeId(2),
                outcome: wire::Outcome::Committed,
                ..
            })
        ));
    }
}
