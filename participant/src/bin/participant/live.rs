//! Asking a running participant over its client port: the connection options every such
//! command shares (`status`, and `txn`, `in-doubt`, `resolve` with `--addr`), one request
//! and its answer, and what each failure means for the exit status.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use wire::{Client, ClientError, ClientRequest, ClientResponse, Response, runtime};

/// How to reach a running participant. `--addr` and `--cluster` go together; the
/// commands that can read a file instead (`--db`) make them optional.
#[derive(Args, Debug)]
pub struct LiveArgs {
    /// A running participant's address, IP:PORT or HOST:PORT (its client port, as for
    /// `status`); with --cluster.
    #[arg(long, value_parser = wire::addr::resolve, requires = "cluster")]
    pub addr: Option<SocketAddr>,
    /// Cluster id (must match the participant's); with --addr.
    #[arg(long, requires = "addr")]
    pub cluster: Option<String>,
    /// With --addr: how long to wait for the connection and the answer.
    #[arg(long, default_value_t = 5_000, value_parser = cli::duration_ms)]
    pub timeout_ms: u64,
    #[command(flatten)]
    pub token: cli::security::ClientTokenArgs,
}

/// Why a request to a running participant got no answer of its own.
#[derive(Debug)]
pub enum CallError {
    /// The participant answered with a refusal, or refused the handshake (a wrong cluster
    /// id, say), or the token could not be read: exit 1.
    Refused(String),
    /// No connection: nothing was sent (exit 4).
    Unreachable(String),
    /// Sent, and no answer in time: for a lookup the same as unreachable (exit 4); a
    /// resolve may have been applied (exit 3).
    Unanswered(String),
}

impl CallError {
    pub fn message(&self) -> &str {
        match self {
            CallError::Refused(message)
            | CallError::Unreachable(message)
            | CallError::Unanswered(message) => message,
        }
    }

    /// The exit status of a lookup (`status`, `txn`, `in-doubt`) that failed this way.
    pub fn lookup_exit(&self) -> u8 {
        match self {
            CallError::Refused(_) => cli::EXIT_FAILED,
            CallError::Unreachable(_) | CallError::Unanswered(_) => cli::EXIT_UNREACHABLE,
        }
    }
}

/// Sends `request` to the participant at `addr` and returns its answer; a refusal (of the
/// request or of the connection) is an error.
pub fn call(
    addr: SocketAddr,
    cluster: &str,
    token: &cli::security::ClientTokenArgs,
    timeout: Duration,
    request: ClientRequest,
) -> Result<ClientResponse, CallError> {
    // A token that cannot be read is reported like a refusal: nothing was sent.
    let token = token.token().map_err(CallError::Refused)?;
    let kind = request.kind();
    let answer = runtime::block_on(async {
        let client = match Client::connect_with_token(addr, cluster, token, timeout).await {
            Ok(client) => client,
            Err(ClientError::Rejected(reason)) => {
                return Err(CallError::Refused(format!(
                    "participant at {addr} rejected the connection: {reason}"
                )));
            }
            Err(error) => {
                return Err(CallError::Unreachable(format!(
                    "cannot reach participant at {addr}: {error}"
                )));
            }
        };
        client.call(request, timeout).await.map_err(|error| {
            CallError::Unanswered(format!(
                "no answer to {kind} from participant at {addr}: {error}"
            ))
        })
    })?;
    match answer {
        Response::Client(ClientResponse::Refused { reason }) => Err(CallError::Refused(format!(
            "participant at {addr} refused: {reason}"
        ))),
        Response::Client(answer) => Ok(answer),
        other => Err(CallError::Refused(format!(
            "unexpected answer from participant at {addr}: {}",
            other.kind()
        ))),
    }
}
