//! Client commands against a running node: submit one transaction, fetch a status report.
//! The one place the client commands, the demo and the benchmark name messages.

use std::net::SocketAddr;
use std::time::Duration;

use wire::{
    Client, ClientRequest, ClientResponse, Protocol, Response, Secret, TxnId, TxnResult, TxnSpec,
};

/// How long connecting (TCP + handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Extra wait beyond the coordinator's own deadlines (vote timeout, then the same again
/// after the decision) for the log write and the network.
pub const RESULT_MARGIN: Duration = Duration::from_secs(5);
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a command got no usable answer.
#[derive(thiserror::Error, Debug)]
pub enum CallError {
    /// Nothing was sent: the transaction certainly did not run.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    /// The node refused the handshake (a wrong cluster id, say): nothing was sent.
    #[error("{addr} rejected the connection: {reason}")]
    Rejected { addr: SocketAddr, reason: String },
    /// Sent, but no answer: it may or may not have committed.
    #[error(
        "outcome UNKNOWN: {reason} (the transaction may have committed; look it up with \
         `coordinator txn {txn} --db COORDINATOR_DB`, or on each participant with \
         `participant txn {txn} --db PARTICIPANT_DB`)"
    )]
    OutcomeUnknown { txn: TxnId, reason: String },
    /// The coordinator answered, but not with what was asked for.
    #[error("coordinator refused the request: {reason}")]
    Refused { reason: String },
}

/// How long to wait for the result of a 2PC transaction with this timeout.
pub fn result_timeout(txn_timeout_ms: u64) -> Duration {
    Duration::from_millis(txn_timeout_ms.saturating_mul(2)) + RESULT_MARGIN
}

/// How long to wait for the result of `spec`: 3PC has one more round (PreCommit, bounded
/// by the coordinator's precommit ack timeout, which `RESULT_MARGIN` covers by default)
/// than 2PC, so it gets one more timeout.
pub fn result_timeout_for(spec: &TxnSpec) -> Duration {
    match spec.protocol {
        Protocol::TwoPhase => result_timeout(spec.timeout_ms),
        Protocol::ThreePhase => {
            result_timeout(spec.timeout_ms) + Duration::from_millis(spec.timeout_ms)
        }
    }
}

/// A node to call: its address, the cluster id and the client token, if it needs one.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub addr: SocketAddr,
    pub cluster_id: &'a str,
    pub token: Option<&'a Secret>,
}

/// Connects to a node that needs no client token.
pub async fn connect(addr: SocketAddr, cluster_id: &str) -> Result<Client, CallError> {
    let target = Target {
        addr,
        cluster_id,
        token: None,
    };
    connect_to(target).await
}

pub async fn connect_to(target: Target<'_>) -> Result<Client, CallError> {
    let addr = target.addr;
    let token = target.token.cloned();
    Client::connect_with_token(addr, target.cluster_id, token, CONNECT_TIMEOUT)
        .await
        .map_err(|error| match error {
            wire::ClientError::Rejected(reason) => CallError::Rejected { addr, reason },
            error => CallError::Unreachable {
                addr,
                reason: error.to_string(),
            },
        })
}

/// Submits `spec` as transaction `txn` on an open client and waits for its result.
pub async fn submit_on(client: &Client, txn: TxnId, spec: TxnSpec) -> Result<TxnResult, CallError> {
    let wait = result_timeout_for(&spec);
    match client.call(ClientRequest::Submit { txn, spec }, wait).await {
        Ok(Response::Client(ClientResponse::Result {
            txn: answered,
            result,
        })) if answered == txn => Ok(result),
        Ok(Response::Client(ClientResponse::Refused { reason })) => {
            Err(CallError::Refused { reason })
        }
        Ok(other) => Err(CallError::Refused {
            reason: format!("unexpected answer {}", other.kind()),
        }),
        Err(wire::ClientError::QueueFull) => Err(CallError::Unreachable {
            addr: client.channel().peer_addr(),
            reason: "too many calls in flight".to_string(),
        }),
        // Refused by our own end before anything was sent: certainly not committed.
        Err(wire::ClientError::TooLarge(reason)) => Err(CallError::Refused { reason }),
        Err(wire::ClientError::Timeout) => Err(CallError::OutcomeUnknown {
            txn,
            reason: format!("no result within {} ms", wait.as_millis()),
        }),
        Err(error) => Err(CallError::OutcomeUnknown {
            txn,
            reason: error.to_string(),
        }),
    }
}

/// `coordinator submit`: connect, submit, wait for the result.
pub async fn submit(target: Target<'_>, txn: TxnId, spec: TxnSpec) -> Result<TxnResult, CallError> {
    let client = connect_to(target).await?;
    submit_on(&client, txn, spec).await
}

/// `coordinator status`: the coordinator's report text.
pub async fn status(target: Target<'_>) -> Result<String, CallError> {
    let client = connect_to(target).await?;
    status_on(&client).await
}

/// The status report of the node at the other end of an open client (a coordinator or a
/// participant: both answer `Status`).
pub async fn status_on(client: &Client) -> Result<String, CallError> {
    let addr = client.channel().peer_addr();
    match client.call(ClientRequest::Status, STATUS_TIMEOUT).await {
        Ok(Response::Client(ClientResponse::StatusReport { text })) => Ok(text),
        Ok(Response::Client(ClientResponse::Refused { reason })) => {
            Err(CallError::Refused { reason })
        }
        Ok(other) => Err(CallError::Refused {
            reason: format!("unexpected answer {}", other.kind()),
        }),
        Err(error) => Err(CallError::Unreachable {
            addr,
            reason: error.to_string(),
        }),
    }
}
