//! Compact text for the event trace: one line per event, short names for nodes (`c`,
//! `p1`), transactions (`t7`) and messages.

use std::fmt::Write as _;

use wire::{
    Answer, ClientResponse, Decision, FromCoordinator, FromParticipant, NodeId, Op, Outcome,
    Request, Response, ToCoordinator, ToParticipant, TxnResult, Value, Vote,
};

use coordinator::core::Record as CoordinatorRecord;

use super::history::txn_name;
use super::net::Frame;

/// The simulated coordinator's node id (as the real-process harness uses); further
/// coordinators take the next ids.
pub const COORDINATOR: NodeId = NodeId(100);

/// `c` for the first coordinator, `c1`, `c2` for the next ones, `p3` for participant 3.
pub fn node_name(node: NodeId) -> String {
    if node == COORDINATOR {
        "c".to_string()
    } else if node.0 > COORDINATOR.0 {
        format!("c{}", node.0 - COORDINATOR.0)
    } else {
        format!("p{}", node.0)
    }
}

/// A request's trace text: its kind, transaction and what matters in its payload.
pub fn request(msg: &Request) -> String {
    let txn = msg.txn().map(txn_name).unwrap_or_default();
    match msg {
        Request::Participant(ToParticipant::Prepare { protocol, ops, .. }) => {
            format!("Prepare({txn} {} {})", protocol.as_str(), ops_text(ops))
        }
        Request::Participant(ToParticipant::Decide { decision, .. }) => {
            format!("Decide({txn} {})", decision_text(*decision))
        }
        Request::Participant(
            ToParticipant::PreCommit { .. }
            | ToParticipant::StateQuery { .. }
            | ToParticipant::Release { .. },
        )
        | Request::Coordinator(ToCoordinator::DecisionQuery { .. })
        | Request::Client(_) => format!("{}({txn})", msg.kind()),
    }
}

/// A response's trace text.
pub fn response(msg: &Response) -> String {
    let txn = msg.txn().map(txn_name).unwrap_or_default();
    match msg {
        Response::Participant(FromParticipant::Vote { vote, .. }) => {
            format!("Vote({txn} {})", vote_text(vote))
        }
        Response::Participant(FromParticipant::Ack { outcome, .. }) => {
            format!("Ack({txn} {})", outcome_text(*outcome))
        }
        Response::Participant(FromParticipant::StateReply {
            state, recovered, ..
        }) => {
            let recovered = if *recovered { " recovered" } else { "" };
            format!("StateReply({txn} {state:?}{recovered})")
        }
        Response::Coordinator(FromCoordinator::DecisionAnswer { answer, .. }) => {
            format!("Answer({txn} {})", answer_text(*answer))
        }
        Response::Participant(FromParticipant::Refused { reason })
        | Response::Coordinator(FromCoordinator::Refused { reason })
        | Response::Client(ClientResponse::Refused { reason }) => format!("Refused({reason})"),
        Response::Participant(FromParticipant::Released { .. })
        | Response::Client(
            ClientResponse::Result { .. }
            | ClientResponse::StatusReport { .. }
            | ClientResponse::InDoubt { .. }
            | ClientResponse::Txn { .. }
            | ClientResponse::Resolved { .. },
        ) => {
            format!("{}({txn})", msg.kind())
        }
    }
}

/// A frame's trace text.
pub fn frame(frame: &Frame) -> String {
    match frame {
        Frame::Request { msg, .. } => request(msg),
        Frame::Response { msg, .. } => response(msg),
    }
}

pub fn ops_text(ops: &[Op]) -> String {
    let mut text = String::new();
    for (index, op) in ops.iter().enumerate() {
        if index > 0 {
            text.push(';');
        }
        let _ = match op {
            Op::Get { key } => write!(text, "get {key}"),
            Op::Put { key, value } => write!(text, "put {key}={}", value_text(value)),
            Op::Delete { key } => write!(text, "del {key}"),
            Op::Add {
                key,
                delta,
                min,
                max,
            } => {
                let _ = write!(text, "add {key} {delta:+}");
                if let Some(min) = min {
                    let _ = write!(text, " min{min}");
                }
                if let Some(max) = max {
                    let _ = write!(text, " max{max}");
                }
                Ok(())
            }
        };
    }
    text
}

pub fn value_text(value: &Value) -> String {
    match value {
        Value::Int(int) => int.to_string(),
        Value::Text(text) => text.clone(),
    }
}

fn vote_text(vote: &Vote) -> String {
    match vote {
        Vote::Yes => "yes".to_string(),
        Vote::ReadOnly => "read-only".to_string(),
        Vote::No { reason } => format!("no: {reason}"),
    }
}

pub fn decision_text(decision: Decision) -> &'static str {
    match decision {
        Decision::Commit => "commit",
        Decision::Abort => "abort",
    }
}

fn outcome_text(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Committed => "committed",
        Outcome::Aborted => "aborted",
        Outcome::PreCommitted => "precommitted",
        Outcome::Unknown => "unknown",
        Outcome::HeuristicCommitted => "heuristic-committed",
        Outcome::HeuristicAborted => "heuristic-aborted",
    }
}

fn answer_text(answer: Answer) -> &'static str {
    match answer {
        Answer::Commit => "commit",
        Answer::Abort => "abort",
        Answer::Undecided => "undecided",
    }
}

/// A coordinator log record: `decided t3 commit [p1,p2]`, `ended t3`.
pub fn coordinator_record(record: &CoordinatorRecord) -> String {
    match record {
        CoordinatorRecord::Decided {
            txn,
            protocol,
            decision,
            participants,
        } => {
            let nodes: Vec<String> = participants.iter().map(|node| node_name(*node)).collect();
            format!(
                "decided {} {} {} [{}]",
                txn_name(*txn),
                protocol.as_str(),
                decision_text(*decision),
                nodes.join(",")
            )
        }
        CoordinatorRecord::Ended { txn } => format!("ended {}", txn_name(*txn)),
        CoordinatorRecord::AbortAdopted { txn, reason } => {
            format!("abort-adopted {} ({reason})", txn_name(*txn))
        }
        CoordinatorRecord::Hazard {
            txn, participant, ..
        } => format!("hazard {} {}", txn_name(*txn), node_name(*participant)),
    }
}

pub fn result_text(result: &TxnResult) -> String {
    match result {
        TxnResult::Committed { .. } => "committed".to_string(),
        TxnResult::Aborted { reason } => format!("aborted: {reason}"),
        TxnResult::Rejected { reason } => format!("rejected: {reason}"),
    }
}
