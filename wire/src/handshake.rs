//! The handshake: the `Hello` we send, the checks on the one we receive (pure), and the
//! exchange itself on a fresh connection, both sides. The first frame read from a peer is
//! capped at `HELLO_LEN_MAX` bytes and is read exactly (nothing past it is buffered),
//! so a peer that has not shown it belongs to the cluster can make us hold only that.

use std::net::{Shutdown, SocketAddr};

use futures::{AsyncReadExt, AsyncWriteExt};
use tracing::debug;

use crate::config::{ChannelConfig, HELLO_LEN_MAX};
use crate::frame::{self, FrameError, HEADER_LEN};
use crate::memory::Held;
use crate::msg::{Frame, Hello, MAGIC, NodeId, PROTOCOL_VERSION, Role};
use crate::quote::{ERROR_TEXT_CHARS_MAX, quote, truncate};
use crate::runtime::TcpStream;

/// Our first frame on every connection.
pub fn hello(node_id: NodeId, role: Role, cluster_id: &str) -> Hello {
    Hello {
        magic: MAGIC,
        protocol_version: PROTOCOL_VERSION,
        node_id,
        role,
        cluster_id: cluster_id.to_owned(),
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

/// Between two participants (we and the peer), the mesh rule applies.
pub(crate) fn is_mesh_connection(config: &ChannelConfig, peer: &Hello) -> bool {
    config.role == Role::Participant && peer.role == Role::Participant
}

/// A connection whose handshake succeeded. Nothing past the peer's `Hello` was read.
pub(crate) struct Handshaken {
    pub(crate) stream: TcpStream,
    pub(crate) local_addr: SocketAddr,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) peer: Hello,
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
    /// The peer refused ours.
    #[error("rejected by peer: {0}")]
    Rejected(String),
}

/// Reads the peer's first frame: its header, then exactly its body if that is at most
/// `HELLO_LEN_MAX` bytes; a longer one is refused from its header alone.
async fn read_first_frame(
    stream: &mut TcpStream,
    config: &ChannelConfig,
) -> Result<Frame, HandshakeError> {
    let mut header = [0u8; HEADER_LEN];
    read_exact(stream, &mut header).await?;
    let len = frame::frame_len(&header).unwrap_or(HEADER_LEN) - HEADER_LEN;
    if len > HELLO_LEN_MAX {
        let reason =
            format!("first frame of {len} bytes is over the Hello limit of {HELLO_LEN_MAX} bytes");
        return Err(refuse(stream, reason).await);
    }
    let mut held = Held::new(&config.memory);
    held.set(HEADER_LEN + len);
    let mut buf = vec![0u8; HEADER_LEN + len];
    buf[..HEADER_LEN].copy_from_slice(&header);
    read_exact(stream, &mut buf[HEADER_LEN..]).await?;
    match frame::decode(&buf, HELLO_LEN_MAX) {
        Ok(Some((frame, _))) => Ok(frame),
        Ok(None) => Err(HandshakeError::Io("first frame incomplete".into())),
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

async fn write_frame(stream: &mut TcpStream, frame: &Frame) -> Result<(), HandshakeError> {
    let bytes = frame::encode(frame, HELLO_LEN_MAX).map_err(HandshakeError::Frame)?;
    stream
        .write_all(&bytes)
        .await
        .map_err(|error| HandshakeError::Io(format!("write failed: {error}")))?;
    stream
        .flush()
        .await
        .map_err(|error| HandshakeError::Io(format!("flush failed: {error}")))
}

/// Sends `Reject{reason}` and reports the refusal. The reason is cut to fit a first
/// frame, so the Reject always goes out unless the peer is gone.
async fn refuse(stream: &mut TcpStream, reason: String) -> HandshakeError {
    let reason = truncate(reason, ERROR_TEXT_CHARS_MAX * 4);
    let reject = Frame::Reject {
        reason: reason.clone(),
    };
    if let Err(error) = write_frame(stream, &reject).await {
        debug!(%error, "cannot send Reject; the peer may be gone");
    }
    let _ = stream.shutdown(Shutdown::Both);
    HandshakeError::Refused(reason)
}

/// Acceptor side: wait for the peer's Hello, check it, answer with ours or a Reject.
pub(crate) async fn accept(
    mut stream: TcpStream,
    peer_addr: SocketAddr,
    config: &ChannelConfig,
    accept_roles: &[Role],
) -> Result<Handshaken, HandshakeError> {
    let peer = match read_first_frame(&mut stream, config).await? {
        Frame::Hello(hello) => hello,
        other => {
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
    let ours = hello(config.node_id, config.role, &config.cluster_id);
    write_frame(&mut stream, &Frame::Hello(ours)).await?;
    Ok(Handshaken {
        local_addr: local_addr_of(&stream)?,
        stream,
        peer_addr,
        peer,
    })
}

/// Dialler side: connect, send our Hello, check the answer.
pub(crate) async fn dial(
    addr: SocketAddr,
    accept_roles: &[Role],
    expected_node: Option<NodeId>,
    config: &ChannelConfig,
) -> Result<Handshaken, HandshakeError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|error| HandshakeError::Io(format!("connect failed: {error}")))?;
    if let Err(error) = stream.set_nodelay(true) {
        tracing::warn!(%addr, %error, "cannot set TCP_NODELAY");
    }
    let ours = hello(config.node_id, config.role, &config.cluster_id);
    write_frame(&mut stream, &Frame::Hello(ours)).await?;
    let peer = match read_first_frame(&mut stream, config).await? {
        Frame::Hello(hello) => hello,
        Frame::Reject { reason } => return Err(HandshakeError::Rejected(reason)),
        other => {
            let reason = format!("expected Hello, got {}", frame_kind(&other));
            return Err(refuse(&mut stream, reason).await);
        }
    };
    if let Err(reason) = check(&peer, &config.cluster_id, accept_roles, expected_node) {
        return Err(refuse(&mut stream, reason).await);
    }
    Ok(Handshaken {
        local_addr: local_addr_of(&stream)?,
        stream,
        peer_addr: addr,
        peer,
    })
}

fn local_addr_of(stream: &TcpStream) -> Result<SocketAddr, HandshakeError> {
    stream
        .local_addr()
        .map_err(|error| HandshakeError::Io(format!("no local address: {error}")))
}

fn frame_kind(frame: &Frame) -> &'static str {
    match frame {
        Frame::Hello(_) => "Hello",
        Frame::Reject { .. } => "Reject",
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
        hello(NodeId(4), Role::Coordinator, "c1")
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
    fn wrong_node_id_is_refused() {
        assert_eq!(refusal(&good(), Some(NodeId(5))), "node id 4, expected 5");
    }
}
