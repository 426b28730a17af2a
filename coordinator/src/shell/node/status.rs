//! The `coordinator status` report: the node, its timings, each participant's channel
//! and liveness, the transactions by phase, and the IO counters.

use std::fmt::Write as _;

use wire::TxnId;

use crate::store::file_len;

use super::{Node, PHI_SUSPECT, STATUS_TXNS_LISTED_MAX};

impl Node {
    /// Oldest kept decision, decisions pruned, database and WAL sizes.
    fn retention_line(&self) -> String {
        let db = &self.config.db;
        let sizes = format!(
            "db {} bytes, wal {} bytes",
            file_len(db, false),
            file_len(db, true)
        );
        let retain_s = self.config.retention.retain.as_secs_f64();
        let figures = self.retention.lock().ok().and_then(|slot| slot.clone());
        match figures {
            None => format!("retention: window {retain_s:.1} s; no prune step yet; {sizes}"),
            Some(figures) => {
                let oldest = match figures.oldest_kept {
                    Some((txn, logged_at)) => format!("{txn} (logged {logged_at})"),
                    None => "none".to_string(),
                };
                format!(
                    "retention: window {retain_s:.1} s; kept decisions {}, oldest kept {oldest}; \
                     pruned {} decisions; {sizes}",
                    figures.kept_decisions, figures.pruned_decisions
                )
            }
        }
    }

    /// The `coordinator status` report.
    pub(super) fn status_text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "coordinator {} (cluster {}) on {}, up {} s",
            self.config.node_id,
            self.config.cluster_id,
            self.local_addr,
            self.start.elapsed().as_secs()
        );
        let core = self.core.config();
        let _ = writeln!(
            text,
            "timing: heartbeat {} ms; txn timeout {}..={} ms; commit resend {} ms; \
             3pc precommit margin {} ms, precommit ack timeout {} ms",
            core.heartbeat_interval_ms,
            core.limits.timeout_ms_min,
            core.limits.timeout_ms_max,
            core.decide_resend_ms,
            core.precommit_margin_ms,
            core.precommit_ack_timeout_ms
        );
        let in_flight = self.core.in_flight_by_peer();
        let _ = writeln!(text, "participants:");
        for (id, slot) in &self.peers {
            let waiting = in_flight.get(id).copied().unwrap_or(0);
            match &slot.channel {
                Some(channel) => {
                    let liveness = channel.liveness();
                    let suspect = if liveness.phi >= PHI_SUSPECT {
                        " SUSPECT"
                    } else {
                        ""
                    };
                    let _ = writeln!(
                        text,
                        "  {id} {} up{suspect}, last heard {} ms ago, phi {:.2}, \
                         {waiting} txns waiting on it, channel {} requests in flight, {} queued",
                        slot.addr,
                        liveness.last_heard_ago.as_millis(),
                        liveness.phi,
                        channel.in_flight(),
                        channel.queued()
                    );
                }
                None => {
                    let since = match &slot.down {
                        Some((at, reason)) => {
                            format!(" for {} ms ({reason})", at.elapsed().as_millis())
                        }
                        None => " (never connected)".to_string(),
                    };
                    let _ = writeln!(
                        text,
                        "  {id} {} DOWN{since}, {waiting} txns waiting on it",
                        slot.addr
                    );
                }
            }
        }
        let _ = writeln!(
            text,
            "txns in flight: {} (limit {})",
            self.core.txns_in_flight(),
            self.config.txns_in_flight_max,
        );
        for ((protocol, phase), count) in self.core.txns_by_protocol_and_phase() {
            let _ = writeln!(text, "  {protocol} {phase}: {count}");
        }
        let (hazards, found) = self.core.hazards();
        if found > 0 {
            let _ = writeln!(
                text,
                "HEURISTIC HAZARDS since start: {found} (a participant resolved by hand \
                 against the logged decision; all in the heuristic_hazard table)"
            );
            for hazard in hazards {
                let _ = writeln!(
                    text,
                    "  txn {} participant {}: decided {:?}, resolved {:?}",
                    hazard.txn, hazard.participant, hazard.decision, hazard.outcome
                );
            }
        }
        let list = |ids: Vec<TxnId>| -> String {
            let shown: Vec<String> = ids
                .iter()
                .take(STATUS_TXNS_LISTED_MAX)
                .map(TxnId::to_string)
                .collect();
            let more = ids.len().saturating_sub(STATUS_TXNS_LISTED_MAX);
            let mut line = format!("{}", ids.len());
            if !shown.is_empty() {
                let _ = write!(line, ": {}", shown.join(" "));
            }
            if more > 0 {
                let _ = write!(line, " (+{more} more)");
            }
            line
        };
        let _ = writeln!(
            text,
            "undecided (no durable commit yet): {}",
            list(self.core.undecided().collect())
        );
        let _ = writeln!(
            text,
            "decided, not ended: {}",
            list(self.core.decided_not_ended().collect())
        );
        let _ = writeln!(text, "{}", self.retention_line());
        let io = self.io;
        let _ = writeln!(
            text,
            "io since start: {} sqlite transactions, {} records, {} messages in, {} messages out",
            io.sqlite_txns, io.records, io.messages_in, io.messages_out
        );
        text
    }
}
