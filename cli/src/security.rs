//! The options both `serve` commands share for authentication and connection limits, and
//! the client token option of the client commands. Secrets come from files or the
//! environment, never from a flag's value (that would show in `ps`).

use std::path::PathBuf;

use wire::config::{
    DEFAULT_CLIENT_CONNECTIONS_MAX, DEFAULT_HANDSHAKES_MAX, DEFAULT_PEER_CONNECTIONS_MAX,
};
use wire::{Auth, ConnectionLimits, Secret};

/// `serve`: cluster secret, client token and connection limits.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeSecurityArgs {
    /// File holding the cluster secret (at least 16 bytes; surrounding whitespace is
    /// ignored), else the ATOMIC_COMMIT_CLUSTER_SECRET environment variable. Every
    /// coordinator and participant of the cluster must hold the same one; they prove it
    /// to each other in the handshake (HMAC challenge-response, the secret is never sent).
    /// Without it cluster members are not authenticated.
    #[arg(long, value_name = "PATH")]
    pub cluster_secret_file: Option<PathBuf>,
    /// File holding the token clients must prove (`submit`, `status`), else the
    /// ATOMIC_COMMIT_CLIENT_TOKEN environment variable. Without it clients are not
    /// authenticated.
    #[arg(long, value_name = "PATH")]
    pub client_token_file: Option<PathBuf>,
    /// Connections held before their handshake is done; past it new ones are closed at
    /// once. Each is cut off after the handshake timeout (5 s).
    #[arg(long, default_value_t = DEFAULT_HANDSHAKES_MAX, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub handshakes_max: usize,
    /// Client connections served at once; past it a client gets a Reject.
    #[arg(long, default_value_t = DEFAULT_CLIENT_CONNECTIONS_MAX, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub client_connections_max: usize,
    /// Coordinator and participant connections served at once: a pool of their own that
    /// clients cannot take.
    #[arg(long, default_value_t = DEFAULT_PEER_CONNECTIONS_MAX, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub peer_connections_max: usize,
}

impl ServeSecurityArgs {
    /// The node's secrets, read now; `Err` names the file or variable at fault.
    pub fn auth(&self) -> Result<Auth, String> {
        Auth::load(
            self.cluster_secret_file.as_deref(),
            self.client_token_file.as_deref(),
        )
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            handshakes_max: self.handshakes_max,
            client_connections_max: self.client_connections_max,
            peer_connections_max: self.peer_connections_max,
        }
    }
}

/// Client commands: the token to prove, when the node requires one.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientTokenArgs {
    /// File holding the node's client token, else the ATOMIC_COMMIT_CLIENT_TOKEN
    /// environment variable; needed only if the node was started with one.
    #[arg(long, value_name = "PATH")]
    pub client_token_file: Option<PathBuf>,
}

impl ClientTokenArgs {
    pub fn token(&self) -> Result<Option<Secret>, String> {
        Auth::load_client_token(self.client_token_file.as_deref())
    }
}
