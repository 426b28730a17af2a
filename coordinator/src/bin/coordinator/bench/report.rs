//! The benchmark's summary: as text for people, or as one JSON object for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::BenchConfig;
use super::load::{LoadOutcome, Tracked};
use super::verify::{IoCounts, Verdict};

/// One node's cost over the measured run.
#[derive(Clone, Debug)]
struct NodeCost {
    name: String,
    cpu: Option<Duration>,
    io: Option<IoCounts>,
}

pub struct Summary {
    config: BenchConfig,
    seed: u64,
    load: LoadOutcome,
    pub tracked: Vec<Tracked>,
    pub total_before: i64,
    total_after: i64,
    nodes: Vec<NodeCost>,
    pub verdict: Verdict,
}

impl Summary {
    pub fn new(config: &BenchConfig, seed: u64, mut load: LoadOutcome) -> Summary {
        Summary {
            config: config.clone(),
            seed,
            tracked: std::mem::take(&mut load.tracked),
            load,
            total_before: 0,
            total_after: 0,
            nodes: Vec::new(),
            verdict: Verdict::default(),
        }
    }

    pub fn conservation(&mut self, before: i64, after: i64) {
        self.total_before = before;
        self.total_after = after;
    }

    pub fn node_cost(&mut self, name: &str, cpu: Option<Duration>, io: Option<IoCounts>) {
        self.nodes.push(NodeCost {
            name: name.to_string(),
            cpu,
            io,
        });
    }

    /// The total read back equals the total before, through the client and in the files.
    pub fn conserved(&self) -> bool {
        self.total_after == self.total_before
            && self
                .verdict
                .total_in_files
                .is_none_or(|total| total == self.total_before)
    }

    /// Conservation held and no transaction was found with two outcomes.
    pub fn verified(&self) -> bool {
        self.conserved() && self.verdict.atomicity != Some(false)
    }

    fn committed(&self) -> u64 {
        self.load.tally.committed
    }

    fn seconds(&self) -> f64 {
        self.load.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    fn latency_ms(&self, quantile: f64) -> f64 {
        self.load.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn per_txn(&self, count: u64) -> f64 {
        count as f64 / self.committed().max(1) as f64
    }

    fn cpu_ms_per_txn(&self) -> BTreeMap<String, f64> {
        let mut costs = BTreeMap::new();
        let mut total = Duration::ZERO;
        for node in &self.nodes {
            if let Some(cpu) = node.cpu {
                total += cpu;
                costs.insert(
                    node.name.clone(),
                    cpu.as_secs_f64() * 1000.0 / self.committed().max(1) as f64,
                );
            }
        }
        if !costs.is_empty() {
            costs.insert(
                "total".to_string(),
                total.as_secs_f64() * 1000.0 / self.committed().max(1) as f64,
            );
        }
        costs
    }

    pub fn text(&self) -> String {
        let mut text = String::new();
        let tally = &self.load.tally;
        let config = &self.config;
        let _ = writeln!(
            text,
            "protocol {}, {} participants, {} clients, {} ops per participant, skew {}, {}, seed {}",
            config.protocol.as_str(),
            config.participants,
            config.clients,
            config.ops_per_participant,
            config.skew,
            if config.stop_and_wait {
                "stop-and-wait channels"
            } else {
                "pipelined channels"
            },
            self.seed
        );
        let _ = writeln!(
            text,
            "transactions: {} in {:.2} s",
            tally.done() + self.load.errors,
            self.seconds()
        );
        let _ = writeln!(
            text,
            "committed:    {} ({:.0} txn/s)",
            self.committed(),
            self.committed() as f64 / self.seconds()
        );
        let _ = writeln!(text, "aborted:      {}", tally.aborted_total());
        for (reason, count) in &tally.aborted {
            let _ = writeln!(text, "  {count:>9}  {reason}");
        }
        if !tally.rejected.is_empty() {
            let _ = writeln!(text, "rejected:     {}", tally.rejected_total());
            for (reason, count) in &tally.rejected {
                let _ = writeln!(text, "  {count:>9}  {reason}");
            }
        }
        let _ = writeln!(
            text,
            "errors:       {} ({} outcome unknown){}",
            self.errors(),
            tally.unknown,
            match &self.load.last_error {
                Some(error) => format!("; last: {error}"),
                None => String::new(),
            }
        );
        let _ = writeln!(
            text,
            "latency of committed txns: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            self.latency_ms(0.50),
            self.latency_ms(0.90),
            self.latency_ms(0.99),
            self.load.latency.max() as f64 / 1000.0
        );
        let _ = writeln!(text, "per committed txn, by node:");
        for node in &self.nodes {
            let cpu = match node.cpu {
                Some(cpu) => format!(
                    "{:.3} ms CPU",
                    cpu.as_secs_f64() * 1000.0 / self.committed().max(1) as f64
                ),
                None => "CPU not measured (not started here)".to_string(),
            };
            let io = match node.io {
                Some(io) => format!(
                    ", {:.2} SQLite txns (fsyncs), {:.2} records, {:.2} messages in, {:.2} out",
                    self.per_txn(io.sqlite_txns),
                    self.per_txn(io.records),
                    self.per_txn(io.messages_in),
                    self.per_txn(io.messages_out)
                ),
                None => ", no counters in its status".to_string(),
            };
            let _ = writeln!(text, "  {:<14} {cpu}{io}", node.name);
        }
        if let Some(total) = self.cpu_ms_per_txn().get("total") {
            let _ = writeln!(text, "  {:<14} {total:.3} ms CPU", "all nodes");
        }
        let _ = writeln!(
            text,
            "total balance: {} before, {} after{}: {}",
            self.total_before,
            self.total_after,
            match self.verdict.total_in_files {
                Some(total) => format!(", {total} in the files"),
                None => String::new(),
            },
            if self.conserved() {
                "conserved"
            } else {
                "NOT CONSERVED"
            }
        );
        let verdict = &self.verdict;
        match verdict.atomicity {
            Some(true) => {
                let _ = writeln!(
                    text,
                    "atomicity: OK, {} transactions checked against every participant's file{}{}",
                    verdict.checked,
                    match (verdict.unsettled, verdict.pruned) {
                        (0, 0) => String::new(),
                        (unsettled, pruned) => format!(
                            " ({unsettled} parts still in doubt at the stop, {pruned} parts \
                             pruned by retention)"
                        ),
                    },
                    if self.load.untracked > 0 {
                        format!("; {} not tracked", self.load.untracked)
                    } else {
                        String::new()
                    }
                );
            }
            Some(false) => {
                let _ = writeln!(
                    text,
                    "atomicity: VIOLATED ({} findings)",
                    verdict.violations_total
                );
                for violation in &verdict.violations {
                    let _ = writeln!(text, "  {violation}");
                }
            }
            None => {
                let _ = writeln!(
                    text,
                    "atomicity: not checked per transaction (the participants' files are not \
                     here); the conserved total is the check"
                );
            }
        }
        let _ = writeln!(
            text,
            "{}",
            if self.verified() {
                "verified: OK"
            } else {
                "verified: FAILED"
            }
        );
        text
    }

    fn errors(&self) -> u64 {
        self.load.errors + self.load.tally.unknown
    }

    pub fn json(&self) -> Value {
        let tally = &self.load.tally;
        let per_node = |value: &dyn Fn(&IoCounts) -> u64| -> BTreeMap<String, f64> {
            self.nodes
                .iter()
                .filter_map(|node| {
                    Some((node.name.clone(), self.per_txn(value(node.io.as_ref()?))))
                })
                .collect()
        };
        json!({
            "protocol": self.config.protocol.as_str(),
            "participants": self.config.participants,
            "clients": self.config.clients,
            "connections": self.config.connections,
            "ops_per_participant": self.config.ops_per_participant,
            "accounts": self.config.accounts,
            "skew": self.config.skew,
            "stop_and_wait": self.config.stop_and_wait,
            "seed": self.seed,
            "seconds": self.seconds(),
            "committed": self.committed(),
            "committed_per_s": self.committed() as f64 / self.seconds(),
            "aborted": tally.aborted_total(),
            "aborted_by_reason": tally.aborted,
            "rejected": tally.rejected_total(),
            "errors": self.errors(),
            "unknown": tally.unknown,
            "p50_ms": self.latency_ms(0.50),
            "p90_ms": self.latency_ms(0.90),
            "p99_ms": self.latency_ms(0.99),
            "max_ms": self.load.latency.max() as f64 / 1000.0,
            "cpu_ms_per_txn": self.cpu_ms_per_txn(),
            "sqlite_txns_per_txn": per_node(&|io| io.sqlite_txns),
            "messages_in_per_txn": per_node(&|io| io.messages_in),
            "messages_out_per_txn": per_node(&|io| io.messages_out),
            "total_before": self.total_before,
            "total_after": self.total_after,
            "total_in_files": self.verdict.total_in_files,
            "conserved": self.conserved(),
            "atomicity": self.verdict.atomicity,
            "checked_txns": self.verdict.checked,
            "pruned_parts": self.verdict.pruned,
            "violations": self.verdict.violations_total,
            "verified": self.verified(),
        })
    }
}
