//! What a message says about itself for logs, metrics and routing: `kind` (the variant's
//! name) and `txn` (the transaction it is about, if any), for every message family.

use super::*;

impl ToParticipant {
    pub fn kind(&self) -> &'static str {
        match self {
            ToParticipant::Prepare { .. } => "Prepare",
            ToParticipant::PreCommit { .. } => "PreCommit",
            ToParticipant::Decide { .. } => "Decide",
            ToParticipant::StateQuery { .. } => "StateQuery",
            ToParticipant::Release { .. } => "Release",
        }
    }

    pub fn txn(&self) -> TxnId {
        match self {
            ToParticipant::Prepare { txn, .. }
            | ToParticipant::PreCommit { txn }
            | ToParticipant::Decide { txn, .. }
            | ToParticipant::StateQuery { txn }
            | ToParticipant::Release { txn } => *txn,
        }
    }
}

impl FromParticipant {
    pub fn kind(&self) -> &'static str {
        match self {
            FromParticipant::Vote { .. } => "Vote",
            FromParticipant::Ack { .. } => "Ack",
            FromParticipant::StateReply { .. } => "StateReply",
            FromParticipant::Released { .. } => "Released",
            FromParticipant::Refused { .. } => "Refused",
        }
    }

    pub fn txn(&self) -> Option<TxnId> {
        match self {
            FromParticipant::Vote { txn, .. }
            | FromParticipant::Ack { txn, .. }
            | FromParticipant::StateReply { txn, .. }
            | FromParticipant::Released { txn } => Some(*txn),
            FromParticipant::Refused { .. } => None,
        }
    }
}

impl ToCoordinator {
    pub fn kind(&self) -> &'static str {
        match self {
            ToCoordinator::DecisionQuery { .. } => "DecisionQuery",
        }
    }

    pub fn txn(&self) -> TxnId {
        match self {
            ToCoordinator::DecisionQuery { txn } => *txn,
        }
    }
}

impl FromCoordinator {
    pub fn kind(&self) -> &'static str {
        match self {
            FromCoordinator::DecisionAnswer { .. } => "DecisionAnswer",
            FromCoordinator::Refused { .. } => "Refused",
        }
    }

    pub fn txn(&self) -> Option<TxnId> {
        match self {
            FromCoordinator::DecisionAnswer { txn, .. } => Some(*txn),
            FromCoordinator::Refused { .. } => None,
        }
    }
}

impl ClientRequest {
    pub fn kind(&self) -> &'static str {
        match self {
            ClientRequest::Submit { .. } => "Submit",
            ClientRequest::Status => "Status",
            ClientRequest::InDoubt => "InDoubt",
            ClientRequest::Txn { .. } => "Txn",
            ClientRequest::Resolve { .. } => "Resolve",
        }
    }

    pub fn txn(&self) -> Option<TxnId> {
        match self {
            ClientRequest::Submit { txn, .. }
            | ClientRequest::Txn { txn }
            | ClientRequest::Resolve { txn, .. } => Some(*txn),
            ClientRequest::Status | ClientRequest::InDoubt => None,
        }
    }
}

impl ClientResponse {
    pub fn kind(&self) -> &'static str {
        match self {
            ClientResponse::Result { .. } => "Result",
            ClientResponse::StatusReport { .. } => "StatusReport",
            ClientResponse::Refused { .. } => "Refused",
            ClientResponse::InDoubt { .. } => "InDoubt",
            ClientResponse::Txn { .. } => "Txn",
            ClientResponse::Resolved { .. } => "Resolved",
        }
    }

    pub fn txn(&self) -> Option<TxnId> {
        match self {
            ClientResponse::Result { txn, .. }
            | ClientResponse::Txn { txn, .. }
            | ClientResponse::Resolved { txn, .. } => Some(*txn),
            ClientResponse::StatusReport { .. }
            | ClientResponse::Refused { .. }
            | ClientResponse::InDoubt { .. } => None,
        }
    }
}

impl Request {
    /// The message's kind without its payload, for logs and error texts.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Participant(msg) => msg.kind(),
            Request::Coordinator(msg) => msg.kind(),
            Request::Client(msg) => msg.kind(),
        }
    }

    /// The transaction the request is about, if any.
    pub fn txn(&self) -> Option<TxnId> {
        match self {
            Request::Participant(msg) => Some(msg.txn()),
            Request::Coordinator(msg) => Some(msg.txn()),
            Request::Client(msg) => msg.txn(),
        }
    }

    /// The refusal of this request, in its own family (what the requester expects back).
    pub fn refused(&self, reason: String) -> Response {
        match self {
            Request::Participant(_) => FromParticipant::Refused { reason }.into(),
            Request::Coordinator(_) => FromCoordinator::Refused { reason }.into(),
            Request::Client(_) => ClientResponse::Refused { reason }.into(),
        }
    }
}

impl Response {
    /// The message's kind without its payload, for logs and error texts.
    pub fn kind(&self) -> &'static str {
        match self {
            Response::Participant(msg) => msg.kind(),
            Response::Coordinator(msg) => msg.kind(),
            Response::Client(msg) => msg.kind(),
        }
    }

    /// The transaction the response is about, if any.
    pub fn txn(&self) -> Option<TxnId> {
        match self {
            Response::Participant(msg) => msg.txn(),
            Response::Coordinator(msg) => msg.txn(),
            Response::Client(msg) => msg.txn(),
        }
    }
}
