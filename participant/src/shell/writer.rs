//! The group-commit writer task: the only user of the store's write connection. It drains
//! every record queued, writes them as one SQLite transaction, and only after COMMIT
//! reports them durable, in lsn order, to the event loop. Between group commits it runs
//! the bounded prune steps of retention (`retention.rs`), and a checkpoint after each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, error, info};

use super::retention::{PRUNE_TXNS_PER_STEP, Shared};
use crate::core::{Lsn, Record};
use crate::store::{KvChanges, Writer};
use wire::TxnId;
use wire::fill::{LOAD_FILL_WAIT, LoadFill};
use wire::prune::{PRUNE_INTERVAL, Schedule};
use wire::runtime::{self, Receiver, Sender};

/// Records waiting to be written (and, equally, durable records not yet seen by the event
/// loop): the event loop stops taking network input while this many are outstanding.
pub const WRITER_QUEUE_MAX: usize = 4096;
/// How long a batch of nothing but records that may linger (2PC commits:
/// `Participant::may_linger`) waits for a record that a reply waits on (a vote's), so
/// that the commits ride in that record's SQLite transaction rather than cost a sync of
/// their own: with one client, the next txn's Prepare arrived while the previous commit's
/// sync ran, and waited for it. Only the commit's ack (and so the coordinator's end of
/// the txn) waits on such a record; a crash before it is durable leaves the txn in doubt,
/// and the participant asks. Its locks no longer block writers meanwhile
/// (`LockTable::commit`); a lone read of its keys votes NO until it is durable, so the
/// bound is short.
pub const COMMITTED_LINGER: Duration = Duration::from_millis(2);
/// Exit status when the log cannot be written: the process stops, and restart recovers.
pub const LOG_WRITE_FAILED_EXIT: i32 = 70;

/// A record on its way to disk.
#[derive(Debug)]
pub struct Pending {
    pub lsn: Lsn,
    pub record: Record,
    /// Nothing but an ack waits on it (see `COMMITTED_LINGER`).
    pub linger: bool,
}

/// A record now durable; `kind` names the record (for crash points and logs).
#[derive(Clone, Copy, Debug)]
pub struct Durable {
    pub lsn: Lsn,
    pub txn: TxnId,
    pub kind: &'static str,
}

/// One SQLite transaction's records, now durable (in lsn order), and what it changed in
/// `kv` (for the committed-value cache).
#[derive(Debug)]
pub struct DurableBatch {
    pub records: Vec<Durable>,
    pub kv: KvChanges,
}

/// Runs until `queue` closes, then closes the write connection. A failed write is fatal:
/// later records may depend on it, and the log on disk is the truth a restart recovers
/// from.
pub async fn run(
    mut writer: Writer,
    queue: Receiver<Pending>,
    durable: Sender<DurableBatch>,
    retention: Arc<Shared>,
) {
    let mut schedule = Schedule::default();
    let mut odds = LingerOdds::default();
    let mut fill = LoadFill::new(WRITER_QUEUE_MAX);
    let mut idle = runtime::Alarm::default();
    loop {
        // Idle, the wait ends by the next prune step: pruning goes on without traffic.
        idle.ring_by(Instant::now() + PRUNE_INTERVAL);
        let first = match idle.before_ring(queue.recv()).await {
            Some(Ok(first)) => first,
            // Closed: a graceful stop; everything queued before it was written.
            Some(Err(_)) => break,
            None => {
                prune_step(&mut writer, &retention, &mut schedule).await;
                continue;
            }
        };
        let mut lingering = first.linger;
        let mut lsns = vec![first.lsn];
        let mut records = vec![first.record];
        lingering &= drain_into(&mut lsns, &mut records, &queue);
        lingering = lingering && odds.worth_it();
        let lingered = lingering;
        // A closed queue, the linger's end or a record that must not wait: write the batch.
        let linger_until = Instant::now() + COMMITTED_LINGER;
        while lingering && records.len() < WRITER_QUEUE_MAX {
            let Some(all_linger) =
                receive_until(linger_until, &mut lsns, &mut records, &queue).await
            else {
                break;
            };
            lingering = all_linger;
        }
        if lingered {
            // Still lingering here: the wait ran out (or the queue closed or filled).
            odds.ended(!lingering);
        } else if let Some(target) = fill.target() {
            // Under load, a batch a reply waits on fills (`LoadFill`); one that lingered
            // has waited already. Its commit records wait with it: a lone read of their
            // keys votes NO (see `COMMITTED_LINGER`) up to `LOAD_FILL_WAIT` longer.
            let fill_until = Instant::now() + LOAD_FILL_WAIT;
            while records.len() < target
                && receive_until(fill_until, &mut lsns, &mut records, &queue)
                    .await
                    .is_some()
            {}
        }
        fill.wrote(records.len());
        let kv = match writer.write(&records).await {
            Ok(kv) => kv,
            Err(error) => {
                error!(%error, records = records.len(), "log write failed; exiting so that restart recovers from the log");
                std::process::exit(LOG_WRITE_FAILED_EXIT);
            }
        };
        debug!(records = records.len(), "batch durable");
        let records = lsns
            .into_iter()
            .zip(&records)
            .map(|(lsn, record)| Durable {
                lsn,
                txn: record.txn(),
                kind: record.kind(),
            })
            .collect();
        if durable.send(DurableBatch { records, kv }).await.is_err() {
            return;
        }
        // After the batch is reported: its votes and acks go out while this step runs.
        prune_step(&mut writer, &retention, &mut schedule).await;
    }
    if let Err(error) = writer.close().await {
        error!(%error, "closing the write connection failed");
    }
}

/// Whether lingering pays: how often recent lingers found a record to share their sync
/// with, as a running average (the last eight or so weigh most). A linger that only ever
/// runs out is pure delay: with one request in flight per channel (`--channel-in-flight-max
/// 1`) the coordinator sends nothing until the commit is acked, and lingering halved
/// throughput. So a commit-only batch lingers while at least half did find company, and
/// otherwise once every `LINGER_PROBE_EVERY` such batches, to notice when company is back.
#[derive(Debug)]
struct LingerOdds {
    /// Of `ODDS_ONE`: the share of recent lingers that found company.
    odds: u32,
    /// Commit-only batches written at once since the last linger.
    skipped: u32,
}

/// The scale of `LingerOdds::odds`: every recent linger found company.
const ODDS_ONE: u32 = 1024;
/// A probe costs at most `COMMITTED_LINGER`, so this bounds the cost of probing where
/// lingering does not pay to one wait per this many commit-only batches.
const LINGER_PROBE_EVERY: u32 = 64;

impl Default for LingerOdds {
    fn default() -> Self {
        LingerOdds {
            odds: ODDS_ONE,
            skipped: 0,
        }
    }
}

impl LingerOdds {
    /// Whether this commit-only batch should linger.
    fn worth_it(&mut self) -> bool {
        if self.odds >= ODDS_ONE / 2 || self.skipped >= LINGER_PROBE_EVERY {
            self.skipped = 0;
            true
        } else {
            self.skipped += 1;
            false
        }
    }

    /// A linger ended: `found` a record that could not wait, or ran out alone.
    fn ended(&mut self, found: bool) {
        self.odds = self.odds - self.odds / 8 + if found { ODDS_ONE / 8 } else { 0 };
    }
}

/// Waits for the next record until `until`, then moves it and what is queued behind it
/// into the batch (`drain_into`): whether every record it moved may linger, or `None` if
/// the wait ran out or the queue closed. The caller keeps the batch under
/// `WRITER_QUEUE_MAX`.
async fn receive_until(
    until: Instant,
    lsns: &mut Vec<Lsn>,
    records: &mut Vec<Record>,
    queue: &Receiver<Pending>,
) -> Option<bool> {
    let left = until.saturating_duration_since(Instant::now());
    let Some(Ok(pending)) = runtime::timeout(left, queue.recv()).await else {
        return None;
    };
    lsns.push(pending.lsn);
    records.push(pending.record);
    Some(pending.linger & drain_into(lsns, records, queue))
}

/// Moves what is queued now into the batch, up to `WRITER_QUEUE_MAX` records; true if
/// every record it moved may linger.
fn drain_into(lsns: &mut Vec<Lsn>, records: &mut Vec<Record>, queue: &Receiver<Pending>) -> bool {
    let mut linger = true;
    while records.len() < WRITER_QUEUE_MAX {
        match queue.try_recv() {
            Ok(pending) => {
                linger &= pending.linger;
                lsns.push(pending.lsn);
                records.push(pending.record);
            }
            Err(_) => break,
        }
    }
    linger
}

/// One bounded prune step if one is due, below the horizon the core already has, then a
/// checkpoint if it deleted anything. A failure is fatal, as for a write.
async fn prune_step(writer: &mut Writer, retention: &Shared, schedule: &mut Schedule) {
    if !schedule.due() {
        return;
    }
    let step = async {
        if let Some(cap) = retention.retention.retain_txns {
            retention.set_over_cap(writer.kept_txns().await? > cap);
        }
        let pruned = writer
            .prune(
                retention.published(),
                retention.window(),
                PRUNE_TXNS_PER_STEP,
            )
            .await?;
        if pruned.txns + pruned.read_only > 0 {
            writer.checkpoint().await?;
        }
        Ok::<_, crate::store::StoreError>(pruned)
    };
    match step.await {
        Ok(pruned) => {
            if pruned.txns + pruned.read_only > 0 {
                debug!(
                    txns = pruned.txns,
                    log_rows = pruned.log_rows,
                    read_only = pruned.read_only,
                    "pruned"
                );
            }
            schedule.stepped(pruned.full);
        }
        Err(error) => {
            error!(%error, "prune step failed; exiting so that restart recovers from the log");
            std::process::exit(LOG_WRITE_FAILED_EXIT);
        }
    }
}

/// Logged once at start, so the log says what is kept.
pub fn log_retention(retention: &Shared) {
    info!(
        retain_ms = retention.retention.retain.as_millis() as u64,
        retain_txns = ?retention.retention.retain_txns,
        window_min_ms = retention.window_min.as_millis() as u64,
        horizon_ms = retention.published().unix_ms(),
        "retention"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lingering_stops_where_it_never_finds_company_and_probes_now_and_then() {
        let mut odds = LingerOdds::default();
        let mut lingered = 0;
        for _ in 0..1_000 {
            if odds.worth_it() {
                lingered += 1;
                odds.ended(false);
            }
        }
        // Six lonely lingers bring the odds below one half; then one probe per 65 batches.
        assert!(
            lingered <= 6 + 1_000 / (LINGER_PROBE_EVERY as usize + 1) + 1,
            "{lingered}"
        );
        assert!(lingered > 6, "{lingered}");
    }

    #[test]
    fn lingering_goes_on_while_most_lingers_find_company() {
        let mut odds = LingerOdds::default();
        // One client, two participants of three: about two lingers in three find the next
        // Prepare.
        for round in 0..300 {
            assert!(odds.worth_it(), "round {round}");
            odds.ended(round % 3 != 2);
        }
    }

    #[test]
    fn one_probe_that_finds_company_brings_lingering_back() {
        let mut odds = LingerOdds::default();
        while odds.worth_it() {
            odds.ended(false);
        }
        // That batch was written at once; so are the next ones, up to the probe.
        let mut skipped = 1;
        while !odds.worth_it() {
            skipped += 1;
        }
        assert_eq!(skipped, LINGER_PROBE_EVERY);
        odds.ended(true);
        assert!(odds.worth_it());
    }
}
