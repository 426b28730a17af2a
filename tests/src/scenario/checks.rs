//! The final checks of a scenario, after the cluster settles: the built-in ones
//! (atomicity across participants, the bank total, every acknowledged commit present,
//! nothing in doubt, no lock left, or the expected 3PC split) and the file's SQL.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cluster::Launch;

use super::format::NodeName;
use super::runner::Run;
use super::{ClientOutcome, TxnRecord};

/// How long a participant's `status` may take.
const STATUS_WITHIN: Duration = Duration::from_secs(10);
/// How long locks of finished transactions may take to be freed.
const LOCKS_FREED_WITHIN: Duration = Duration::from_secs(10);

/// Settles, runs every check the scenario asks for, prints each; whether all passed.
pub fn run(run: &mut Run) -> bool {
    settle(run);
    let checks = run.scenario.checks.clone();
    let mut results: Vec<(&str, Result<String, String>)> = Vec::new();
    let states = final_states(run);
    if checks.expect_split {
        results.push((
            "3PC split (expected)",
            split(&states, checks.split_reason.as_deref()),
        ));
    } else if checks.atomic {
        results.push(("atomic", atomic(&states)));
    }
    if checks.conserved
        && let Some(total) = run.seeded_total
    {
        results.push(("bank total conserved", conserved(run, total)));
    }
    if checks.acknowledged_present {
        let txns = run.txns.lock().unwrap_or_else(|p| p.into_inner()).clone();
        results.push(("acknowledged commits present", acknowledged(&states, &txns)));
    }
    if checks.nothing_in_doubt {
        results.push(("nothing in doubt", nothing_in_doubt(run)));
    }
    if checks.no_locks {
        results.push(("no lock left", no_locks(run)));
    }
    for check in &checks.sql {
        results.push(("sql", sql(run, &check.node, &check.sql, &check.rows)));
    }
    let mut passed = true;
    for (name, result) in results {
        let line = match result {
            Ok(detail) => format!("check {name}: PASS ({detail})"),
            Err(detail) => {
                passed = false;
                format!("check {name}: FAIL: {detail}")
            }
        };
        run.timeline.event("checks", line);
    }
    passed
}

/// Waits (up to `settle_ms`) until no participant has a txn in doubt and the
/// coordinator's log has nothing unfinished.
fn settle(run: &mut Run) {
    let deadline = Instant::now() + Duration::from_millis(run.scenario.checks.settle_ms);
    let started = Instant::now();
    loop {
        let in_doubt = in_doubt_counts(run).values().sum::<i64>();
        // A coordinator that is down cannot finish its decisions; nothing to wait for.
        let unfinished = match run.running(NodeName::Coordinator) {
            Some(_) => run
                .query(NodeName::Coordinator, "SELECT count(*) FROM unfinished")
                .ok()
                .and_then(|rows| rows.first()?.first()?.parse::<i64>().ok())
                .unwrap_or(0),
            None => 0,
        };
        if in_doubt == 0 && unfinished == 0 {
            run.timeline.event(
                "checks",
                format!("settled after {} ms", started.elapsed().as_millis()),
            );
            return;
        }
        if Instant::now() >= deadline {
            run.timeline.event(
                "checks",
                format!("not settled: {in_doubt} in doubt, {unfinished} unfinished decisions"),
            );
            return;
        }
        run.notice_exits();
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn in_doubt_counts(run: &Run) -> BTreeMap<u32, i64> {
    (1..=run.scenario.participants)
        .map(|p| {
            let count = run
                .query(NodeName::Participant(p), "SELECT count(*) FROM in_doubt")
                .ok()
                .and_then(|rows| rows.first()?.first()?.parse().ok())
                .unwrap_or(0);
            (p, count)
        })
        .collect()
}

/// txn id -> (participant -> state), from every participant's `txn` table.
type States = BTreeMap<String, BTreeMap<u32, String>>;

fn final_states(run: &Run) -> States {
    let mut states = States::new();
    for p in 1..=run.scenario.participants {
        if let Ok(rows) = run.query(NodeName::Participant(p), "SELECT txn_id, state FROM txn") {
            for row in rows {
                if let [id, state] = &row[..] {
                    states
                        .entry(id.clone())
                        .or_default()
                        .insert(p, state.clone());
                }
            }
        }
    }
    states
}

fn splits(states: &States) -> Vec<(&String, &BTreeMap<u32, String>)> {
    states
        .iter()
        .filter(|(_, by)| {
            by.values().any(|state| state == "committed")
                && by.values().any(|state| state == "aborted")
        })
        .collect()
}

fn atomic(states: &States) -> Result<String, String> {
    match splits(states).first() {
        None => Ok(format!("{} txns, none split", states.len())),
        Some((id, by)) => Err(format!("txn {id} split: {by:?}")),
    }
}

fn split(states: &States, reason: Option<&str>) -> Result<String, String> {
    let found = splits(states);
    let why = reason.unwrap_or("the partition is outside 3PC's failure model");
    match found.first() {
        Some((id, by)) => Ok(format!(
            "txn {id} committed on some and aborted on others: {by:?}; {} split in all. Why: {why}",
            found.len()
        )),
        None => Err(format!("no transaction split ({} txns)", states.len())),
    }
}

fn conserved(run: &Run, total: i64) -> Result<String, String> {
    let mut sum = 0;
    for p in 1..=run.scenario.participants {
        let rows = run.query(
            NodeName::Participant(p),
            "SELECT coalesce(sum(value), 0) FROM kv WHERE key LIKE 'acct%'",
        )?;
        sum += rows
            .first()
            .and_then(|row| row.first()?.parse::<i64>().ok())
            .unwrap_or(0);
    }
    if sum == total {
        Ok(format!("{sum}"))
    } else {
        Err(format!("{sum}, seeded {total}"))
    }
}

fn acknowledged(states: &States, txns: &[TxnRecord]) -> Result<String, String> {
    let committed: Vec<&TxnRecord> = txns
        .iter()
        .filter(|txn| txn.outcome == ClientOutcome::Committed && !txn.writes.is_empty())
        .collect();
    for txn in &committed {
        let Some(id) = &txn.id else {
            return Err("a commit was acknowledged with no txn id".to_string());
        };
        for p in &txn.writes {
            let state = states.get(id).and_then(|by| by.get(p));
            if state.map(String::as_str) != Some("committed") {
                return Err(format!("txn {id} acknowledged, on p{p}: {state:?}"));
            }
        }
    }
    let told = |outcome| txns.iter().filter(|txn| txn.outcome == outcome).count();
    Ok(format!(
        "{} committed writes checked; clients told {} committed, {} aborted, {} unknown, {} not sent",
        committed.len(),
        told(ClientOutcome::Committed),
        told(ClientOutcome::Aborted),
        told(ClientOutcome::Unknown),
        told(ClientOutcome::NotSent)
    ))
}

fn nothing_in_doubt(run: &Run) -> Result<String, String> {
    let counts = in_doubt_counts(run);
    if counts.values().all(|count| *count == 0) {
        Ok(format!("{} participants", counts.len()))
    } else {
        Err(format!("in doubt by participant: {counts:?}"))
    }
}

/// Every running participant's `status` says `locks held: 0`, within `LOCKS_FREED_WITHIN`
/// (a read-only voter keeps its read locks until the coordinator's `Release` or its own
/// timeout, which a lost message delays).
fn no_locks(run: &Run) -> Result<String, String> {
    let started = Instant::now();
    let deadline = started + LOCKS_FREED_WITHIN;
    loop {
        match locks_held(run) {
            Ok(held) if held.iter().all(|(_, locks)| *locks == 0) => {
                let names: Vec<String> = held.iter().map(|(p, _)| format!("p{p}")).collect();
                return Ok(format!(
                    "checked {}, free after {} ms",
                    names.join(", "),
                    started.elapsed().as_millis()
                ));
            }
            Ok(held) if Instant::now() >= deadline => {
                let held: Vec<String> = held
                    .iter()
                    .filter(|(_, locks)| *locks > 0)
                    .map(|(p, locks)| format!("p{p} holds {locks}"))
                    .collect();
                return Err(format!("after {LOCKS_FREED_WITHIN:?}: {}", held.join(", ")));
            }
            Err(error) => return Err(error),
            Ok(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// (participant, locks held) of every running participant, from its `status`.
fn locks_held(run: &Run) -> Result<Vec<(u32, u64)>, String> {
    let mut held = Vec::new();
    for p in 1..=run.scenario.participants {
        let Some(process) = run.running(NodeName::Participant(p)) else {
            continue;
        };
        let ran = Launch::new("status", crate::binary("participant"))
            .args([
                "status",
                "--addr",
                &process.addr().to_string(),
                "--cluster",
                crate::CLUSTER,
            ])
            .run(STATUS_WITHIN)
            .map_err(|e| e.to_string())?;
        let locks = ran
            .stdout
            .split("locks held: ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .ok_or(format!(
                "p{p}: no lock count in its status: {}",
                ran.stderr.trim()
            ))?;
        held.push((p, locks));
    }
    Ok(held)
}

fn sql(run: &Run, node: &str, sql: &str, rows: &[Vec<String>]) -> Result<String, String> {
    let node = NodeName::parse(node, run.scenario.participants)?;
    let sql = run.expand(sql)?;
    let got = run.query(node, &sql)?;
    if got == rows {
        Ok(format!("{node}: `{sql}` = {rows:?}"))
    } else {
        Err(format!(
            "{node}: `{sql}` returned {got:?}, expected {rows:?}"
        ))
    }
}
