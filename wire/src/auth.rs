//! Cluster authentication (pure, except `Secret::load`): the shared secrets a node may
//! hold and the HMAC-SHA256 challenge–response proofs of the handshake.
//!
//! Each side's `Hello` carries a fresh random nonce. When both announce `auth`, each
//! sends `Auth { proof }` with `proof = HMAC(secret, label ‖ dialler's Hello ‖ acceptor's
//! Hello)` over the Hello frames exactly as they were sent. The secret never crosses the
//! wire; both nonces are covered, so a recorded handshake cannot be replayed to a node
//! (its new nonce changes what must be proved); the labels differ per direction, so a
//! proof cannot be reflected back to the node that sent it. Nothing is encrypted: the
//! frames after the handshake travel in the clear and are not authenticated per frame.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::msg::{NONCE_LEN, PROOF_LEN, Role};

/// Environment variable holding the cluster secret (`--cluster-secret-file` wins).
pub const CLUSTER_SECRET_ENV: &str = "ATOMIC_COMMIT_CLUSTER_SECRET";
/// Environment variable holding the client token (`--client-token-file` wins).
pub const CLIENT_TOKEN_ENV: &str = "ATOMIC_COMMIT_CLIENT_TOKEN";
/// A shorter secret is refused at start: it could be guessed offline from one recorded
/// handshake.
pub const SECRET_BYTES_MIN: usize = 16;
/// A longer one is a wrong file (HMAC hashes long keys down anyway).
pub const SECRET_BYTES_MAX: usize = 4096;

const DIALLER_LABEL: &[u8] = b"atomic-commit auth v1: dialler";
const ACCEPTOR_LABEL: &[u8] = b"atomic-commit auth v1: acceptor";

/// A shared secret. Its bytes are never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<[u8]>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes, redacted)", self.0.len())
    }
}

impl Secret {
    /// The secret in `text`, without surrounding whitespace (a file's final newline).
    pub fn new(text: &str) -> Result<Secret, String> {
        let trimmed = text.trim();
        if trimmed.len() < SECRET_BYTES_MIN || trimmed.len() > SECRET_BYTES_MAX {
            return Err(format!(
                "a secret must have {SECRET_BYTES_MIN}..={SECRET_BYTES_MAX} bytes (without surrounding whitespace), got {}",
                trimmed.len()
            ));
        }
        Ok(Secret(trimmed.as_bytes().into()))
    }

    /// A fresh random secret (hex), for a cluster one process starts (demo, bench).
    pub fn generate() -> Secret {
        let bytes: [u8; 32] = rand::random();
        let text: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        Secret(text.as_bytes().into())
    }

    /// The secret as text, to hand to a child process through its environment.
    pub fn expose(&self) -> &str {
        // Built from a `&str` (or hex) only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Reads the secret from `file` if given, else from the environment variable `env`;
    /// `None` if neither is set. Never from a flag's value (that shows in `ps`).
    pub fn load(file: Option<&Path>, env: &str) -> Result<Option<Secret>, String> {
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .map_err(|error| format!("cannot read {}: {error}", file.display()))?;
            return Secret::new(&text)
                .map(Some)
                .map_err(|error| format!("{}: {error}", file.display()));
        }
        match std::env::var(env) {
            Ok(text) => Secret::new(&text)
                .map(Some)
                .map_err(|error| format!("${env}: {error}")),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!("${env} is not UTF-8")),
        }
    }
}

/// The secrets of a node. Without a cluster secret, cluster members are not
/// authenticated (anyone who knows the cluster id may join); without a client token,
/// clients are not.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Auth {
    /// Proved by coordinators and participants to each other.
    pub cluster_secret: Option<Secret>,
    /// Proved by clients to the nodes they call (and by those nodes back).
    pub client_token: Option<Secret>,
}

impl Auth {
    /// A node's secrets: each from its file if given, else from its environment variable
    /// (`CLUSTER_SECRET_ENV`, `CLIENT_TOKEN_ENV`).
    pub fn load(
        cluster_secret_file: Option<&Path>,
        client_token_file: Option<&Path>,
    ) -> Result<Auth, String> {
        Ok(Auth {
            cluster_secret: Secret::load(cluster_secret_file, CLUSTER_SECRET_ENV)?,
            client_token: Secret::load(client_token_file, CLIENT_TOKEN_ENV)?,
        })
    }

    /// A client's token: from `file` if given, else from `CLIENT_TOKEN_ENV`.
    pub fn load_client_token(file: Option<&Path>) -> Result<Option<Secret>, String> {
        Secret::load(file, CLIENT_TOKEN_ENV)
    }

    /// The secret a connection between a dialler of `dialler` role and us uses: a client's
    /// connection uses the client token, any other the cluster secret.
    pub fn secret_for(&self, dialler: Role) -> Option<&Secret> {
        match dialler {
            Role::Client => self.client_token.as_ref(),
            Role::Coordinator | Role::Participant => self.cluster_secret.as_ref(),
        }
    }
}

/// Which side of the handshake a proof is from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    Dialler,
    Acceptor,
}

/// The proof `side` sends on a connection whose Hello frames (as sent, length prefix
/// included) were `dialler_hello` and `acceptor_hello`.
pub fn proof(
    secret: &Secret,
    side: Side,
    dialler_hello: &[u8],
    acceptor_hello: &[u8],
) -> [u8; PROOF_LEN] {
    mac(secret, side, dialler_hello, acceptor_hello)
        .finalize()
        .into_bytes()
        .into()
}

/// Checks a proof in constant time.
pub fn verify(
    secret: &Secret,
    side: Side,
    dialler_hello: &[u8],
    acceptor_hello: &[u8],
    proof: &[u8; PROOF_LEN],
) -> bool {
    mac(secret, side, dialler_hello, acceptor_hello)
        .verify_slice(proof)
        .is_ok()
}

fn mac(secret: &Secret, side: Side, dialler_hello: &[u8], acceptor_hello: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret.0).expect("HMAC accepts any key length");
    mac.update(match side {
        Side::Dialler => DIALLER_LABEL,
        Side::Acceptor => ACCEPTOR_LABEL,
    });
    // Lengths first, so no two splits of the same bytes give the same input.
    mac.update(&(dialler_hello.len() as u64).to_be_bytes());
    mac.update(dialler_hello);
    mac.update(&(acceptor_hello.len() as u64).to_be_bytes());
    mac.update(acceptor_hello);
    mac
}

/// A fresh nonce for our Hello.
pub fn nonce() -> [u8; NONCE_LEN] {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        Secret::new(text).unwrap()
    }

    #[test]
    fn a_proof_verifies_only_with_the_same_secret_side_and_hellos() {
        let key = secret("0123456789abcdef-cluster");
        let proved = proof(&key, Side::Dialler, b"hello d", b"hello a");
        assert!(verify(&key, Side::Dialler, b"hello d", b"hello a", &proved));
        let other = secret("0123456789abcdef-another");
        assert!(!verify(
            &other,
            Side::Dialler,
            b"hello d",
            b"hello a",
            &proved
        ));
        // Reflected back as the acceptor's proof.
        assert!(!verify(
            &key,
            Side::Acceptor,
            b"hello d",
            b"hello a",
            &proved
        ));
        // Replayed on a connection where the acceptor sent a new nonce.
        assert!(!verify(
            &key,
            Side::Dialler,
            b"hello d",
            b"hello b",
            &proved
        ));
        // The same bytes split differently between the two Hellos.
        assert!(!verify(
            &key,
            Side::Dialler,
            b"hello ",
            b"dhello a",
            &proved
        ));
    }

    #[test]
    fn short_secrets_are_refused_and_whitespace_is_trimmed() {
        assert!(Secret::new("short").unwrap_err().contains("16..=4096"));
        assert_eq!(secret("  0123456789abcdef\n"), secret("0123456789abcdef"));
        assert_eq!(
            format!("{:?}", secret("0123456789abcdef")),
            "Secret(16 bytes, redacted)"
        );
        assert_ne!(Secret::generate(), Secret::generate());
        assert_eq!(Secret::generate().expose().len(), 64);
    }

    #[test]
    fn a_file_wins_over_the_environment_and_neither_means_none() {
        let dir = std::env::temp_dir().join(format!("wire-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "from-the-file-0123456789\n").unwrap();
        let unset = "WIRE_AUTH_TEST_UNSET_VARIABLE";
        assert_eq!(Secret::load(None, unset), Ok(None));
        assert_eq!(
            Secret::load(Some(&file), unset),
            Ok(Some(secret("from-the-file-0123456789")))
        );
        let missing = dir.join("missing");
        assert!(
            Secret::load(Some(&missing), unset)
                .unwrap_err()
                .contains("cannot read")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
