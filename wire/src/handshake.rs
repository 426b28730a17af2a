//! The handshake: the `Hello` we send, the checks on the one we receive (pure), and the
//! exchange itself on a fresh connection, both sides: Hellos, then (when both sides hold
//! the connection's secret) the `Auth` proofs of `auth`, then the duplicate-id check of
//! `registry`. Every frame read before the handshake is done is capped at
//! `HELLO_LEN_MAX` bytes and read exactly (nothing past it is buffered), so a peer that
//! has not shown it belongs to the cluster can make us hold only that.

use std::net::{Shutdown, SocketAddr};

use futures::{AsyncReadExt, AsyncWriteExt};
use tracing::debug;

use crate::auth::{self, Secret, Side};
use crate::config::{ChannelConfig, HELLO_LEN_MAX, MIN_MAX_FRAME_LEN};
use crate::frame::{self, DEFAULT_MAX_FRAME_LEN, FrameError, HEADER_LEN};
use crate::memory::Held;
use crate::msg::{Frame, Hello, MAGIC, NodeId, PROTOCOL_VERSION, Role};
use crate::quote::{ERROR_TEXT_CHARS_MAX, quote, truncate};
use crate::registry::Claim;
use crate::runtime::TcpStream;
use crate::slots::{Slot, Slots};

/// A Hello with a fresh nonce, instance 0 and the default frame limit (`ours` sets the
/// node's own).
pub fn hello(node_id: NodeId, role: Role, cluster_id: &str, auth: bool) -> Hello {
    Hello {
        magic: MAGIC,
        protocol_version: PROTOCOL_VERSION,
        node_id,
        role,
        cluster_id: cluster_id.to_owned(),
        instance: 0,
        nonce: auth::nonce(),
        auth,
        max_frame_len: announced(DEFAULT_MAX_FRAME_LEN),
    }
}

/// The largest frame body we send on a connection: never more than the peer announced
/// it accepts, nor more than our own limit (our send queue is sized for our frames).
pub(crate) fn send_frame_len_max(ours: usize, peer_announced: u32) -> usize {
    ours.min(peer_announced as usize)
}

/// A frame limit as the Hello carries it (validated configs are far under `u32::MAX`).
fn announced(max_frame_len: usize) -> u32 {
    u32::try_from(max_frame_len).unwrap_or(u32::MAX)
}

/// Our first frame on a connection whose secret is `secret`.
fn ours(config: &ChannelConfig, secret: Option<&Secret>) -> Hello {
    Hello {
        instance: config.instance,
        max_frame_len: announced(config.max_frame_len),
        ..hello(
            config.node_id,
            config.role,
            &config.cluster_id,
            secret.is_some(),
        )
    }
}

/// Checks a peer's `Hello`: magic, protocol version, cluster, that its role is one we
/// accept and, when we dialled a known node, its node id. `Err` is the reason sent in
/// the `Reject` frame and logged; it quotes at most a short prefix of the peer's text.
pub fn check(
    peer: &Hello,
    cluster_id: &str,
    accept_roles: &[Role],
    expected_node: Option<NodeId>,
) -> Result<(), String> {
    if peer.magic != MAGIC {
        return Err(format!(
            "wrong magic {:#010x}, expected {MAGIC:#010x}",
            peer.magic
        ));
    }
    if peer.protocol_version != PROTOCOL_VERSION {
        return Err(format!(
            "unsupported protocol version {}, expected {PROTOCOL_VERSION}",
            peer.protocol_version
        ));
    }
    if peer.cluster_id != cluster_id {
        return Err(format!(
            "wrong cluster {}, expected {}",
            quote(&peer.cluster_id),
            quote(cluster_id)
        ));
    }
    // We could send such a peer nothing but heartbeats.
    if (peer.max_frame_len as usize) < MIN_MAX_FRAME_LEN {
        return Err(format!(
            "frame limit of {} bytes announced, under the minimum of {MIN_MAX_FRAME_LEN}",
            peer.max_frame_len
        ));
    }
    if !accept_roles.contains(&peer.role) {
        return Err(format!(
            "role {:?} not accepted here (accepted: {accept_roles:?})",
            peer.role
        ));
    }
    if let Some(expected) = expected_node
        && peer.node_id != expected
    {
        return Err(format!("node id {}, expected {expected}", peer.node_id));
    }
    Ok(())
}

/// Both sides must agree on authenticating a connection between a dialler of role
/// `dialler` and the acceptor: `peer_auth` is what the peer announced, `we_auth` whether
/// we hold the secret. `Err` names what is missing where.
pub fn check_auth(dialler: Role, peer_auth: bool, we_auth: bool) -> Result<(), String> {
    let what = match dialler {
        Role::Client => "client token",
        Role::Coordinator | Role::Participant => "cluster secret",
    };
    match (peer_auth, we_auth) {
        (true, false) => Err(format!(
            "authentication mismatch: the peer proves a {what}, but this node has none configured"
        )),
        (false, true) => Err(format!(
            "authentication required: this node requires a {what}, and the peer has none configured"
        )),
        _ => Ok(()),
    }
}

/// Between two participants (we and the peer), the mesh rule applies.
pub(crate) fn is_mesh_connection(config: &ChannelConfig, peer: &Hello) -> bool {
    config.role == Role::Participant && peer.role == Role::Participant
}

/// ZooKeeper's QuorumCnxManager rule: of the connections between two participants only
/// the one dialled by the larger id survives, so a pair dialling each other at once
/// still ends with exactly one channel.
pub(crate) fn dialled_by_smaller_id(config: &ChannelConfig, peer: &Hello) -> bool {
    is_mesh_connection(config, peer) && peer.node_id < config.node_id
}

/// A connection whose handshake succeeded. Nothing past the handshake was read.
pub(crate) struct Handshaken {
    pub(crate) stream: TcpStream,
    pub(crate) local_addr: SocketAddr,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) peer: Hello,
    /// The peer's registry claim while the connection lives (`None` for clients and
    /// connections about to be dropped).
    pub(crate) claim: Option<Claim>,
    /// The listener's connection slot this connection holds (accepted ones only).
    pub(crate) slot: Option<Slot>,
}

/// Why a handshake failed.
#[derive(thiserror::Error, Debug)]
pub(crate) enum HandshakeError {
    #[error("{0}")]
    Io(String),
    #[error("protocol error: {0}")]
    Frame(FrameError),
    /// We refused the peer's Hello (and told it so with a Reject).
    #[error("refused peer: {0}")]
    Refused(String),
    /// We refused a second process with a live member's id (and told it so).
    #[error("refused peer: {0}")]
    Duplicate(String),
    /// We refused the peer's missing or wrong proof of the secret (and told it so).
    #[error("refused peer: {0}")]
    Unauthenticated(String),
    /// The peer refused ours.
    #[error("rejected by peer: {0}")]
    Rejected(String),
}

/// Reads a frame of the handshake: its header, then exactly its body if that is at most
/// `HELLO_LEN_MAX` bytes; a longer one is refused from its header alone. Returns the
/// frame and its bytes as received (the `Auth` proofs cover them).
async fn read_handshake_frame(
    stream: &mut TcpStream,
    config: &ChannelConfig,
) -> Result<(Frame, Vec<u8>), HandshakeError> {
    let mut header = [0u8; HEADER_LEN];
    read_exact(stream, &mut header).await?;
    let len = frame::frame_len(&header).unwrap_or(HEADER_LEN) - HEADER_LEN;
    if len > HELLO_LEN_MAX {
        let reason = format!(
            "handshake frame of {len} bytes is over the Hello limit of {HELLO_LEN_MAX} bytes"
        );
        return Err(refuse(stream, reason).await);
    }
    let mut held = Held::new(&config.memory);
    held.set(HEADER_LEN + len);
    let mut buf = vec![0u8; HEADER_LEN + len];
    buf[..HEADER_LEN].copy_from_slice(&header);
    read_exact(stream, &mut buf[HEADER_LEN..]).await?;
    match frame::decode(&buf, HELLO_LEN_MAX) {
        Ok(Some((frame, _))) => Ok((frame, buf)),
        Ok(None) => Err(HandshakeError::Io("handshake frame incomplete".into())),
        Err(error) => Err(HandshakeError::Frame(error)),
    }
}

async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), HandshakeError> {
    stream.read_exact(buf).await.map_err(|error| {
        if error.kind() == std::io::ErrorKind::UnexpectedEof {
            HandshakeError::Io("connection closed during handshake".into())
        } else {
            HandshakeError::Io(format!("read failed: {error}"))
        }
    })
}

/// Writes a handshake frame; returns its bytes as sent.
async fn write_frame(stream: &mut TcpStream, frame: &Frame) -> Result<Vec<u8>, HandshakeError> {
    let bytes = frame::encode(frame, HELLO_LEN_MAX).map_err(HandshakeError::Frame)?;
    stream
        .write_all(&bytes)
        .await
        .map_err(|error| HandshakeError::Io(format!("write failed: {error}")))?;
    stream
        .flush()
        .await
        .map_err(|error| HandshakeError::Io(format!("flush failed: {error}")))?;
    Ok(bytes)
}

/// Sends `Reject{reason}` and reports the refusal. The reason is cut to fit a first
/// frame, so the Reject always goes out unless the peer is gone.
async fn refuse(stream: &mut TcpStream, reason: String) -> HandshakeError {
    HandshakeError::Refused(send_reject(stream, reason).await)
}

async fn send_reject(stream: &mut TcpStream, reason: String) -> String {
    let reason = truncate(reason, ERROR_TEXT_CHARS_MAX * 4);
    let reject = Frame::Reject {
        reason: reason.clone(),
    };
    if let Err(error) = write_frame(stream, &reject).await {
        debug!(%error, "cannot send Reject; the peer may be gone");
    }
    let _ = stream.shutdown(Shutdown::Both);
    reason
}

/// Claims the peer in the registry (a connection about to be dropped for the mesh rule
/// is only checked, leaving the registry untouched); a live member's id from another
/// process gets a Reject.
async fn claim(
    stream: &mut TcpStream,
    config: &ChannelConfig,
    peer: &Hello,
    peer_addr: SocketAddr,
    keep: bool,
) -> Result<Option<Claim>, HandshakeError> {
    let (registry, dead_after) = (&config.registry, config.dead_after());
    let claimed = match keep {
        true => registry.claim(peer, peer_addr, dead_after),
        false => registry.check(peer, peer_addr, dead_after).map(|()| None),
    };
    match claimed {
        Ok(claim) => Ok(claim),
        Err(reason) => Err(HandshakeError::Duplicate(send_reject(stream, reason).await)),
    }
}

/// Reads the peer's `Auth` and checks its proof for `side`.
async fn receive_proof(
    stream: &mut TcpStream,
    config: &ChannelConfig,
    secret: &Secret,
    side: Side,
    hellos: (&[u8], &[u8]),
) -> Result<(), HandshakeError> {
    match read_handshake_frame(stream, config).await? {
        (Frame::Auth { proof }, _) if auth::verify(secret, side, hellos.0, hellos.1, &proof) => {
            Ok(())
        }
        (Frame::Auth { .. }, _) => {
            let reason = "authentication failed: the proof does not match this node's secret";
            Err(HandshakeError::Unauthenticated(
                send_reject(stream, reason.into()).await,
            ))
        }
        (Frame::Reject { reason }, _) => Err(HandshakeError::Rejected(reason)),
        (other, _) => {
            let reason = format!("expected Auth, got {}", frame_kind(&other));
            Err(refuse(stream, reason).await)
        }
    }
}

async fn send_proof(
    stream: &mut TcpStream,
    secret: &Secret,
    side: Side,
    hellos: (&[u8], &[u8]),
) -> Result<(), HandshakeError> {
    let proof = auth::proof(secret, side, hellos.0, hellos.1);
    write_frame(stream, &Frame::Auth { proof }).await.map(drop)
}

/// Takes a slot of the pool for the peer's role, or refuses it (a connection about to be
/// dropped for the mesh rule needs none).
async fn take_slot(
    stream: &mut TcpStream,
    slots: &Slots,
    peer: &Hello,
    keep: bool,
) -> Result<Option<Slot>, HandshakeError> {
    if !keep {
        return Ok(None);
    }
    match slots.for_role(peer.role).take() {
        Ok(slot) => Ok(Some(slot)),
        Err(reason) => Err(refuse(stream, reason).await),
    }
}

/// Acceptor side: wait for the peer's Hello, check it, answer with ours or a Reject;
/// then the proofs (theirs first), then a connection slot and the duplicate check.
pub(crate) async fn accept(
    mut stream: TcpStream,
    peer_addr: SocketAddr,
    config: &ChannelConfig,
    accept_roles: &[Role],
    slots: &Slots,
) -> Result<Handshaken, HandshakeError> {
    let (peer, peer_bytes) = match read_handshake_frame(&mut stream, config).await? {
        (Frame::Hello(hello), bytes) => (hello, bytes),
        (other, _) => {
            let reason = format!("expected Hello, got {}", frame_kind(&other));
            return Err(refuse(&mut stream, reason).await);
        }
    };
    if let Err(reason) = check(&peer, &config.cluster_id, accept_roles, None) {
        return Err(refuse(&mut stream, reason).await);
    }
    if is_mesh_connection(config, &peer) && peer.node_id == config.node_id {
        let reason = format!("node id {} is our own", peer.node_id);
        return Err(refuse(&mut stream, reason).await);
    }
    let secret = config.auth.secret_for(peer.role);
    if let Err(reason) = check_auth(peer.role, peer.auth, secret.is_some()) {
        let reason = send_reject(&mut stream, reason).await;
        return Err(HandshakeError::Unauthenticated(reason));
    }
    let keep = !dialled_by_smaller_id(config, &peer);
    let Some(secret) = secret else {
        let slot = take_slot(&mut stream, slots, &peer, keep).await?;
        let claim = claim(&mut stream, config, &peer, peer_addr, keep).await?;
        write_frame(&mut stream, &Frame::Hello(ours(config, None))).await?;
        return handshaken(stream, peer_addr, peer, claim, slot);
    };
    let our_bytes = write_frame(&mut stream, &Frame::Hello(ours(config, Some(secret)))).await?;
    let hellos = (&peer_bytes[..], &our_bytes[..]);
    receive_proof(&mut stream, config, secret, Side::Dialler, hellos).await?;
    let slot = take_slot(&mut stream, slots, &peer, keep).await?;
    let claim = claim(&mut stream, config, &peer, peer_addr, keep).await?;
    send_proof(&mut stream, secret, Side::Acceptor, hellos).await?;
    handshaken(stream, peer_addr, peer, claim, slot)
}

impl HandshakeError {
    /// One side refused the other: a `Reject` received or sent (a bad Hello or proof, a
    /// duplicate id), as opposed to a connection that failed or timed out.
    pub(crate) fn is_refusal(&self) -> bool {
        match self {
            HandshakeError::Refused(_)
            | HandshakeError::Duplicate(_)
            | HandshakeError::Unauthenticated(_)
            | HandshakeError::Rejected(_) => true,
            HandshakeError::Io(_) | HandshakeError::Frame(_) => false,
        }
    }
}

/// Dialler side: connect, send our Hello, check the answer, prove and check proofs.
/// `keep` claims the peer in the registry (a nudge, closed at once, does not). A refusal
/// either way counts in the config's `Traffic`, as the listener counts its own.
pub(crate) async fn dial(
    addr: SocketAddr,
    accept_roles: &[Role],
    expected_node: Option<NodeId>,
    config: &ChannelConfig,
    keep: bool,
) -> Result<Handshaken, HandshakeError> {
    let dialled = dial_once(addr, accept_roles, expected_node, config, keep).await;
    if let Err(error) = &dialled
        && error.is_refusal()
    {
        config.traffic.handshake_rejected();
    }
    dialled
}

async fn dial_once(
    addr: SocketAddr,
    accept_roles: &[Role],
    expected_node: Option<NodeId>,
    config: &ChannelConfig,
    keep: bool,
) -> Result<Handshaken, HandshakeError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|error| HandshakeError::Io(format!("connect failed: {error}")))?;
    if let Err(error) = stream.set_nodelay(true) {
        tracing::warn!(%addr, %error, "cannot set TCP_NODELAY");
    }
    let secret = config.auth.secret_for(config.role);
    let our_bytes = write_frame(&mut stream, &Frame::Hello(ours(config, secret))).await?;
    let (peer, peer_bytes) = match read_handshake_frame(&mut stream, config).await? {
        (Frame::Hello(hello), bytes) => (hello, bytes),
        (Frame::Reject { reason }, _) => return Err(HandshakeError::Rejected(reason)),
        (other, _) => {
            let reason = format!("expected Hello, got {}", frame_kind(&other));
            return Err(refuse(&mut stream, reason).await);
        }
    };
    if let Err(reason) = check(&peer, &config.cluster_id, accept_roles, expected_node)
        .and_then(|()| check_auth(config.role, peer.auth, secret.is_some()))
    {
        return Err(refuse(&mut stream, reason).await);
    }
    if let Some(secret) = secret {
        let hellos = (&our_bytes[..], &peer_bytes[..]);
        send_proof(&mut stream, secret, Side::Dialler, hellos).await?;
        receive_proof(&mut stream, config, secret, Side::Acceptor, hellos).await?;
    }
    let claim = match keep {
        true => claim(&mut stream, config, &peer, addr, true).await?,
        false => None,
    };
    handshaken(stream, addr, peer, claim, None)
}

fn handshaken(
    stream: TcpStream,
    peer_addr: SocketAddr,
    peer: Hello,
    claim: Option<Claim>,
    slot: Option<Slot>,
) -> Result<Handshaken, HandshakeError> {
    let local_addr = stream
        .local_addr()
        .map_err(|error| HandshakeError::Io(format!("no local address: {error}")))?;
    Ok(Handshaken {
        stream,
        local_addr,
        peer_addr,
        peer,
        claim,
        slot,
    })
}

fn frame_kind(frame: &Frame) -> &'static str {
    match frame {
        Frame::Hello(_) => "Hello",
        Frame::Reject { .. } => "Reject",
        Frame::Auth { .. } => "Auth",
        Frame::Heartbeat => "Heartbeat",
        Frame::Request { .. } => "Request",
        Frame::Response { .. } => "Response",
        Frame::SequenceError { .. } => "SequenceError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: &[Role] = &[Role::Coordinator];

    fn good() -> Hello {
        hello(NodeId(4), Role::Coordinator, "c1", false)
    }

    fn refusal(peer: &Hello, expected_node: Option<NodeId>) -> String {
        check(peer, "c1", ROLES, expected_node).unwrap_err()
    }

    #[test]
    fn a_matching_hello_is_accepted() {
        assert_eq!(check(&good(), "c1", ROLES, None), Ok(()));
        assert_eq!(check(&good(), "c1", ROLES, Some(NodeId(4))), Ok(()));
    }

    #[test]
    fn wrong_magic_is_refused() {
        let peer = Hello {
            magic: 0x4854_5450,
            ..good()
        };
        assert!(refusal(&peer, None).contains("wrong magic"));
    }

    #[test]
    fn wrong_version_is_refused() {
        let peer = Hello {
            protocol_version: PROTOCOL_VERSION + 1,
            ..good()
        };
        assert!(refusal(&peer, None).contains("protocol version"));
    }

    #[test]
    fn wrong_cluster_is_refused() {
        let peer = Hello {
            cluster_id: "c2".into(),
            ..good()
        };
        assert!(refusal(&peer, None).contains("wrong cluster"));
    }

    #[test]
    fn unexpected_role_is_refused() {
        let peer = Hello {
            role: Role::Client,
            ..good()
        };
        assert!(refusal(&peer, None).contains("role Client not accepted"));
    }

    #[test]
    fn a_huge_cluster_id_is_quoted_as_a_short_prefix() {
        let peer = Hello {
            cluster_id: "\"".repeat(1 << 20),
            ..good()
        };
        let reason = refusal(&peer, None);
        assert!(reason.starts_with("wrong cluster"), "{reason}");
        assert!(reason.len() < 300, "reason of {} bytes", reason.len());
    }

    #[test]
    fn a_frame_limit_under_the_minimum_is_refused() {
        let peer = Hello {
            max_frame_len: MIN_MAX_FRAME_LEN as u32 - 1,
            ..good()
        };
        assert!(refusal(&peer, None).contains("frame limit of 1023 bytes"));
    }

    #[test]
    fn wrong_node_id_is_refused() {
        assert_eq!(refusal(&good(), Some(NodeId(5))), "node id 4, expected 5");
    }
}

#[cfg(test)]
mod frame_limit_tests {
    use super::*;

    #[test]
    fn each_side_sends_at_most_the_smaller_of_both_limits() {
        let mut small = ChannelConfig::new(NodeId(1), Role::Participant, "c1");
        small.set_max_frame_len(64 * 1024);
        let large = ChannelConfig::new(NodeId(2), Role::Coordinator, "c1");
        let (small_hello, large_hello) = (ours(&small, None), ours(&large, None));
        assert_eq!(small_hello.max_frame_len, 64 * 1024);
        assert_eq!(large_hello.max_frame_len as usize, DEFAULT_MAX_FRAME_LEN);
        // Both ends of one connection agree on what the small side can take...
        let large_sends = send_frame_len_max(large.max_frame_len, small_hello.max_frame_len);
        assert_eq!(large_sends, 64 * 1024);
        // ...and the small side never sends past its own limit either.
        let small_sends = send_frame_len_max(small.max_frame_len, large_hello.max_frame_len);
        assert_eq!(small_sends, 64 * 1024);
        // Raising the limit keeps room for two frames in the send queue.
        let mut huge = ChannelConfig::new(NodeId(3), Role::Participant, "c1");
        huge.set_max_frame_len(crate::config::MAX_FRAME_LEN_LIMIT);
        assert_eq!(huge.validate(), Ok(()));
        huge.max_frame_len = crate::config::MAX_FRAME_LEN_LIMIT + 1;
        assert!(huge.validate().unwrap_err().contains("outside 1024..="));
    }
}

#[cfg(test)]
mod auth_tests {
    use super::*;

    #[test]
    fn both_sides_must_agree_on_authenticating() {
        assert_eq!(check_auth(Role::Participant, true, true), Ok(()));
        assert_eq!(check_auth(Role::Client, false, false), Ok(()));
        let missing = check_auth(Role::Coordinator, false, true).unwrap_err();
        assert!(missing.contains("requires a cluster secret"), "{missing}");
        let extra = check_auth(Role::Client, true, false).unwrap_err();
        assert!(extra.contains("proves a client token"), "{extra}");
    }
}
