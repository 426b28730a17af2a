//! The text a `Status` request gets: what an operator asks first about a participant.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::time::Duration;

use wire::{NodeId, Role, TxnState};

use super::EventLoop;
use crate::core::{InDoubtTxn, Millis, Participant};
use crate::store::RetentionStatus;

/// In-doubt txns listed one per line; the rest are counted.
pub const STATUS_IN_DOUBT_LINES_MAX: usize = 20;

/// One peer participant of the mesh as the status shows it.
#[derive(Clone, Debug)]
pub struct MeshPeer {
    pub addr: SocketAddr,
    pub connected: bool,
    /// Which side's connection the mesh kept (the larger id dials).
    pub dialled_by_us: bool,
    pub last_heard_ago: Option<Duration>,
    pub phi: Option<f64>,
}

impl MeshPeer {
    pub fn down(addr: SocketAddr) -> MeshPeer {
        MeshPeer {
            addr,
            connected: false,
            dialled_by_us: false,
            last_heard_ago: None,
            phi: None,
        }
    }
}

/// What the node has done since it started, for `status` and the benchmark's
/// per-transaction figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct IoCounts {
    /// SQLite transactions the writer committed (each one fsync of the WAL).
    pub sqlite_txns: u64,
    pub records: u64,
    /// Protocol messages (requests and responses; heartbeats and handshakes are not
    /// counted) received and sent.
    pub messages_in: u64,
    pub messages_out: u64,
}

pub struct Report<'a> {
    pub node_id: NodeId,
    pub addr: SocketAddr,
    pub now: Millis,
    pub core: &'a Participant,
    /// The `txn_counts` view, or why it could not be read.
    pub stored: Result<Vec<(String, i64)>, String>,
    pub coordinators: Vec<(NodeId, SocketAddr)>,
    pub mesh: BTreeMap<NodeId, MeshPeer>,
    pub clients: usize,
    pub writer_outstanding: usize,
    pub io: IoCounts,
    /// The retention figures, or why they could not be read; and the window in force.
    pub retention: Result<RetentionStatus, String>,
    pub window: Duration,
}

pub fn report(report: Report<'_>) -> String {
    let mut text = String::new();
    let counts = report.core.counts();
    // Writing to a String cannot fail.
    let _ = writeln!(text, "participant {} at {}", report.node_id, report.addr);
    let _ = writeln!(
        text,
        "active txns: {} preparing, {} in doubt, {} committing; locks held: {}",
        counts.preparing,
        counts.in_doubt,
        counts.committing,
        report.core.locks_held()
    );
    let _ = writeln!(
        text,
        "in doubt by state: {} prepared (2pc), {} waiting, {} precommitted (3pc); \
         {} in the termination protocol; {} blocked",
        counts.prepared, counts.waiting, counts.precommitted, counts.terminating, counts.blocked
    );
    let _ = writeln!(
        text,
        "recent outcomes in memory: {} committed, {} aborted, {} read-only; records being written: {}",
        counts.committed, counts.aborted, counts.read_only, report.writer_outstanding
    );
    match &report.stored {
        Ok(rows) if rows.is_empty() => {
            let _ = writeln!(text, "stored txns: none");
        }
        Ok(rows) => {
            let rows: Vec<String> = rows
                .iter()
                .map(|(state, n)| format!("{state} {n}"))
                .collect();
            let _ = writeln!(text, "stored txns: {}", rows.join(", "));
        }
        Err(error) => {
            let _ = writeln!(text, "stored txns: unavailable ({error})");
        }
    }
    let in_doubt = report.core.in_doubt(report.now);
    let _ = writeln!(text, "in doubt: {}", in_doubt.len());
    for txn in in_doubt.iter().take(STATUS_IN_DOUBT_LINES_MAX) {
        let _ = writeln!(text, "  {}", in_doubt_line(txn));
    }
    if in_doubt.len() > STATUS_IN_DOUBT_LINES_MAX {
        let _ = writeln!(
            text,
            "  ... and {} more",
            in_doubt.len() - STATUS_IN_DOUBT_LINES_MAX
        );
    }
    let _ = writeln!(text, "mesh: {} peers", report.mesh.len());
    for (peer, mesh_peer) in &report.mesh {
        let _ = writeln!(text, "  {}", mesh_line(*peer, mesh_peer));
    }
    let _ = writeln!(text, "{}", retention_line(&report.retention, report.window));
    let mut coordinators = report.coordinators;
    coordinators.sort();
    let coordinators: Vec<String> = coordinators
        .iter()
        .map(|(node, addr)| format!("{node} ({addr})"))
        .collect();
    let _ = writeln!(
        text,
        "connected coordinators: {}; clients: {}",
        if coordinators.is_empty() {
            "none".to_string()
        } else {
            coordinators.join(", ")
        },
        report.clients
    );
    let io = report.io;
    let _ = writeln!(
        text,
        "io since start: {} sqlite transactions, {} records, {} messages in, {} messages out",
        io.sqlite_txns, io.records, io.messages_in, io.messages_out
    );
    text
}

/// Oldest kept txn, rows pruned, database and WAL sizes.
pub fn retention_line(retention: &Result<RetentionStatus, String>, window: Duration) -> String {
    let status = match retention {
        Ok(status) => status,
        Err(error) => return format!("retention: unavailable ({error})"),
    };
    let oldest = match &status.oldest_kept {
        Some((txn, created_at)) => format!("{txn} (voted {created_at})"),
        None => "none".to_string(),
    };
    format!(
        "retention: window {:.1} s; kept txns {}, oldest kept {oldest}; pruned {} txns, {} \
         txn_log rows, {} read-only votes; db {} bytes, wal {} bytes",
        window.as_secs_f64(),
        status.kept_txns,
        status.pruned_txns,
        status.pruned_log_rows,
        status.pruned_read_only,
        status.db_bytes,
        status.wal_bytes
    )
}

fn in_doubt_line(txn: &InDoubtTxn) -> String {
    let state = match txn.state {
        TxnState::Prepared => "prepared",
        TxnState::Waiting => "waiting",
        TxnState::PreCommitted => "precommitted",
        TxnState::Committed => "committing",
        TxnState::Aborted => "aborting",
    };
    let peers: Vec<String> = txn.peers.iter().map(ToString::to_string).collect();
    let mut line = format!(
        "{} {} {state}, coordinator {}, peers [{}], for {:.1} s",
        txn.txn,
        txn.protocol.as_str(),
        txn.coordinator,
        peers.join(","),
        txn.age_ms as f64 / 1000.0
    );
    if txn.recovered {
        line.push_str(", recovered");
    }
    if let Some(leader) = txn.leader {
        let _ = write!(line, ", terminating (leader {leader})");
    }
    if txn.blocked {
        line.push_str(", BLOCKED: nobody reachable knows the outcome");
    }
    line
}

fn mesh_line(peer: NodeId, mesh_peer: &MeshPeer) -> String {
    if !mesh_peer.connected {
        return format!("peer {peer} ({}): not connected", mesh_peer.addr);
    }
    let mut line = format!(
        "peer {peer} ({}): connected, dialled by {}",
        mesh_peer.addr,
        if mesh_peer.dialled_by_us {
            "us"
        } else {
            "the peer"
        }
    );
    if let Some(ago) = mesh_peer.last_heard_ago {
        let _ = write!(line, ", last heard {:.2} s ago", ago.as_secs_f64());
    }
    if let Some(phi) = mesh_peer.phi {
        let _ = write!(line, ", phi {phi:.2}");
    }
    line
}

impl EventLoop {
    /// Gathers the report's parts from the loop's state and the store.
    pub(super) async fn status_report(&self) -> String {
        let stored = self
            .store
            .txn_counts()
            .await
            .map_err(|error| error.to_string());
        let coordinators: Vec<(NodeId, SocketAddr)> = self
            .peers
            .values()
            .filter(|channel| channel.peer_role() == Role::Coordinator)
            .map(|channel| (channel.peer(), channel.peer_addr()))
            .collect();
        // Every configured peer, and any participant that connected without being listed.
        let mut mesh: BTreeMap<NodeId, MeshPeer> = self
            .mesh_peers
            .iter()
            .map(|(peer, addr)| (*peer, MeshPeer::down(*addr)))
            .collect();
        for channel in self.peers.values() {
            if channel.peer_role() == Role::Participant {
                let liveness = channel.liveness();
                mesh.insert(
                    channel.peer(),
                    MeshPeer {
                        addr: channel.peer_addr(),
                        connected: true,
                        // The mesh keeps the connection dialled by the larger id.
                        dialled_by_us: channel.peer() < self.node_id,
                        last_heard_ago: Some(liveness.last_heard_ago),
                        phi: Some(liveness.phi),
                    },
                );
            }
        }
        report(Report {
            node_id: self.node_id,
            addr: self.local_addr,
            now: self.now(),
            core: &self.core,
            stored,
            coordinators,
            mesh,
            clients: self.clients.len(),
            writer_outstanding: self.outstanding,
            io: self.io,
            retention: self
                .store
                .retention_status()
                .await
                .map_err(|error| error.to_string()),
            window: self.retention.window(),
        })
    }
}
