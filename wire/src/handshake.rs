//! The handshake rules (pure): the `Hello` we send and the checks on the one we receive.
//! The async exchange itself lives in `channel`.

use crate::msg::{Hello, MAGIC, NodeId, PROTOCOL_VERSION, Role};

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
/// the `Reject` frame and logged.
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
            "wrong cluster {:?}, expected {cluster_id:?}",
            peer.cluster_id
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
    fn wrong_node_id_is_refused() {
        assert_eq!(refusal(&good(), Some(NodeId(5))), "node id 4, expected 5");
    }
}
