//! The checks `Node::start` makes before it touches anything: the database's directory
//! and the `--peer` list.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use wire::NodeId;

use super::ShellError;

pub(super) fn check_db_dir(db: &Path) -> Result<(), ShellError> {
    match db.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(ShellError::NoDbDir {
            db: db.to_path_buf(),
            dir: dir.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// `--peer` lists: not ourselves, not the clients' id 0 (duplicates are merged by the map;
/// the binary refuses them before).
pub(super) fn validate_peers(
    node_id: NodeId,
    peers: &BTreeMap<NodeId, SocketAddr>,
) -> Result<(), ShellError> {
    if peers.contains_key(&node_id) {
        return Err(ShellError::Config(format!(
            "--peer lists this participant's own id {node_id}"
        )));
    }
    if peers.contains_key(&NodeId(0)) {
        return Err(ShellError::Config(
            "--peer id 0 is the clients' id, not a participant's".to_string(),
        ));
    }
    Ok(())
}
