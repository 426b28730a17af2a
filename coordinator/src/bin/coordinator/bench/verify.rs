//! What the benchmark checks and reads from the nodes: the status counters, a quiet
//! cluster before it stops, and, from the participants' SQLite files after it stopped,
//! that every transaction has one outcome everywhere and the bank total is conserved.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cluster::LocalCluster;
use coordinator::shell::commands;
use wire::Client;
use wire::runtime;

use super::load::{Seen, Tracked};

/// How long the coordinator may take to finish the transactions still in flight (phase
/// two of the last ones) before the cluster is stopped anyway.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
const SETTLE_POLL: Duration = Duration::from_millis(50);
/// Violations listed in the summary; the rest are counted.
pub const VIOLATIONS_LISTED_MAX: usize = 10;

/// A node's `io since start:` status line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounts {
    pub sqlite_txns: u64,
    pub records: u64,
    pub messages_in: u64,
    pub messages_out: u64,
}

impl IoCounts {
    /// The counters in a status report, if it has them: "io since start: 12 sqlite
    /// transactions, 40 records, 30 messages in, 31 messages out".
    pub fn parse(report: &str) -> Option<IoCounts> {
        let line = report
            .lines()
            .find_map(|line| line.trim().strip_prefix("io since start: "))?;
        let mut counts = IoCounts::default();
        for item in line.split(", ") {
            let (number, what) = item.split_once(' ')?;
            let number: u64 = number.parse().ok()?;
            match what {
                "sqlite transactions" => counts.sqlite_txns = number,
                "records" => counts.records = number,
                "messages in" => counts.messages_in = number,
                "messages out" => counts.messages_out = number,
                _ => {}
            }
        }
        Some(counts)
    }

    pub fn minus(&self, earlier: &IoCounts) -> IoCounts {
        IoCounts {
            sqlite_txns: self.sqlite_txns.saturating_sub(earlier.sqlite_txns),
            records: self.records.saturating_sub(earlier.records),
            messages_in: self.messages_in.saturating_sub(earlier.messages_in),
            messages_out: self.messages_out.saturating_sub(earlier.messages_out),
        }
    }
}

/// Waits (bounded) until the coordinator has no transaction in flight, so stopping the
/// nodes cuts no phase two short.
pub async fn settle(client: &Client) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while Instant::now() < deadline {
        match commands::status_on(client).await {
            Ok(report)
                if report
                    .lines()
                    .any(|line| line.starts_with("txns in flight: 0 ")) =>
            {
                return;
            }
            Ok(_) => runtime::sleep(SETTLE_POLL).await,
            Err(_) => return,
        }
    }
}

/// The result of the checks.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// `None`: not checked (no access to the participants' files).
    pub atomicity: Option<bool>,
    /// Transactions whose stored states were compared.
    pub checked: u64,
    /// Committed by the client but still in doubt somewhere when the nodes stopped (not a
    /// violation: recovery finishes them).
    pub unsettled: u64,
    /// Parts of client-committed transactions pruned by retention (below that
    /// participant's horizon): their outcome is in `kv`, no longer in `txn`.
    pub pruned: u64,
    /// The bank total summed from the files, if read.
    pub total_in_files: Option<i64>,
    pub violations: Vec<String>,
    pub violations_total: u64,
}

impl Verdict {
    pub fn remote() -> Verdict {
        Verdict::default()
    }

    fn violation(&mut self, text: String) {
        self.violations_total += 1;
        if self.violations.len() < VIOLATIONS_LISTED_MAX {
            self.violations.push(text);
        }
    }
}

/// Reads every participant's file of the stopped cluster: no transaction committed on
/// one and aborted on another; what the client saw committed is committed on both its
/// participants, what it saw aborted is committed on neither; and the bank total they hold.
pub fn from_files(local: &LocalCluster, tracked: &[Tracked]) -> Verdict {
    let mut verdict = Verdict {
        atomicity: Some(true),
        ..Verdict::default()
    };
    let mut states: HashMap<u32, HashMap<String, String>> = HashMap::new();
    // Each participant's retention horizon: ids below it may have been pruned.
    let mut horizons: HashMap<u32, String> = HashMap::new();
    let mut total = 0i64;
    for id in local.participant_ids() {
        let db = local.participant_db(id);
        let rows = match cluster::query(&db, "SELECT txn_id, state FROM txn") {
            Ok(rows) => rows,
            Err(error) => {
                verdict.violation(format!("cannot read participant {id}: {error}"));
                verdict.atomicity = Some(false);
                return verdict;
            }
        };
        let by_txn = rows
            .into_iter()
            .filter_map(|row| match <[String; 2]>::try_from(row) {
                Ok([txn, state]) => Some((txn, state)),
                Err(_) => None,
            })
            .collect();
        states.insert(id, by_txn);
        if let Ok(rows) = cluster::query(&db, "SELECT horizon FROM retention")
            && let Some(horizon) = rows
                .into_iter()
                .next()
                .and_then(|row| row.into_iter().next())
        {
            horizons.insert(id, horizon);
        }
        match cluster::query(
            &db,
            "SELECT coalesce(sum(value), 0) FROM kv WHERE key LIKE 'acct-%'",
        ) {
            Ok(rows) => {
                total += rows
                    .first()
                    .and_then(|row| row.first())
                    .and_then(|sum| sum.parse::<i64>().ok())
                    .unwrap_or(0);
            }
            Err(error) => verdict.violation(format!("cannot sum participant {id}: {error}")),
        }
    }
    verdict.total_in_files = Some(total);

    // Every transaction any participant stored, seeding and reads included.
    let mut outcomes: HashMap<&str, (Vec<u32>, Vec<u32>)> = HashMap::new();
    for (id, by_txn) in &states {
        for (txn, state) in by_txn {
            let entry = outcomes.entry(txn.as_str()).or_default();
            match state.as_str() {
                "committed" | "heuristic_commit" => entry.0.push(*id),
                "aborted" | "heuristic_abort" => entry.1.push(*id),
                _ => {}
            }
        }
    }
    for (txn, (committed, aborted)) in &outcomes {
        if !committed.is_empty() && !aborted.is_empty() {
            verdict.violation(format!(
                "txn {txn}: committed on {committed:?}, aborted on {aborted:?}"
            ));
        }
    }
    let state_of = |id: u32, txn: &str| states.get(&id).and_then(|by_txn| by_txn.get(txn));
    for tracked in tracked {
        verdict.checked += 1;
        let txn = tracked.txn.to_string();
        let parts = tracked
            .parts
            .map(|node| state_of(node.0, &txn).map(String::as_str));
        match tracked.seen {
            Seen::Committed => {
                for (node, state) in tracked.parts.iter().zip(parts) {
                    match state {
                        Some("committed") => {}
                        Some("prepared" | "waiting" | "precommitted") => verdict.unsettled += 1,
                        None if horizons.get(&node.0).is_some_and(|h| txn < *h) => {
                            verdict.pruned += 1;
                        }
                        other => verdict.violation(format!(
                            "txn {txn} was reported committed, participant {node} has {other:?}"
                        )),
                    }
                }
            }
            Seen::Aborted => {
                for (node, state) in tracked.parts.iter().zip(parts) {
                    if state == Some("committed") {
                        verdict.violation(format!(
                            "txn {txn} was reported aborted, participant {node} committed it"
                        ));
                    }
                }
            }
            // Unknown to the client: the files must still agree (checked above).
            Seen::Unknown => {}
        }
    }
    if verdict.violations_total > 0 {
        verdict.atomicity = Some(false);
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_counters_are_read_from_a_status_report() {
        let report = "participant 1 at 127.0.0.1:1\nio since start: 12 sqlite transactions, \
                      40 records, 30 messages in, 31 messages out\n";
        assert_eq!(
            IoCounts::parse(report),
            Some(IoCounts {
                sqlite_txns: 12,
                records: 40,
                messages_in: 30,
                messages_out: 31,
            })
        );
        assert_eq!(IoCounts::parse("coordinator 100\n"), None);
    }
}
