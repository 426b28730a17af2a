//! The decision-log writer task: owns the store, drains every queued record into one
//! SQLite transaction (group commit; under load it first fills, `wire::fill`), then
//! reports the batch durable, in order. Between batches it runs retention's bounded
//! prune steps (`retention.rs`).

use std::time::{Duration, Instant};

use tracing::{debug, error};
use wire::fill::{LOAD_FILL_WAIT, LoadFill};
use wire::prune::PRUNE_INTERVAL;
use wire::runtime::{self, Receiver, Sender};

use super::retention::{PRUNE_DECISIONS_PER_STEP, Pruner};
use crate::core::{Lsn, Record};
use crate::store::{Store, StoreError};

/// Records written in one SQLite transaction at most: bounds a batch's memory and the
/// time before its first record is reported durable.
pub const WRITE_BATCH_MAX: usize = 1_024;

/// How long a batch of nothing but `Ended` records waits for a record that someone waits
/// on (a decision), so that the ends ride in that record's SQLite transaction rather than
/// cost a sync of their own (with one client, every commit would otherwise pay two).
/// Nothing waits on an end (the core has forgotten the txn; a crash before it is durable
/// only means a re-sent, idempotent Commit), so delaying it is safe; the bound keeps the
/// `unfinished` view close to the truth when the node goes idle.
pub const ENDED_LINGER: Duration = Duration::from_millis(20);

/// What the writer tells the event loop.
#[derive(Debug)]
pub enum LogEvent {
    /// These records are durable, in the order they were queued.
    Persisted(Vec<(Lsn, Record)>),
    /// A write failed: durability of everything queued is unknown. Fatal for the node.
    Failed(StoreError),
}

/// Starts the writer. `queue_max` bounds both the record queue and the report queue; the
/// event loop sizes it so neither can fill (see `Node::start`).
pub fn spawn(
    store: Store,
    queue_max: usize,
    pruner: Pruner,
) -> (Sender<(Lsn, Record)>, Receiver<LogEvent>) {
    let (record_tx, record_rx) = runtime::bounded(queue_max.max(1));
    let (event_tx, event_rx) = runtime::bounded(queue_max.max(1));
    runtime::spawn(run(store, record_rx, event_tx, pruner));
    (record_tx, event_rx)
}

async fn run(
    mut store: Store,
    records: Receiver<(Lsn, Record)>,
    events: Sender<LogEvent>,
    mut pruner: Pruner,
) {
    let mut fill = LoadFill::new(WRITE_BATCH_MAX);
    let mut idle = runtime::Alarm::default();
    loop {
        // Idle, the wait ends by the next prune step: pruning goes on without traffic.
        idle.ring_by(Instant::now() + PRUNE_INTERVAL);
        let first = match idle.before_ring(records.recv()).await {
            Some(Ok(first)) => first,
            Some(Err(_)) => break,
            None => {
                if let Err(failure) = prune_step(&mut store, &mut pruner).await {
                    let _ = events.send(LogEvent::Failed(failure)).await;
                    return;
                }
                continue;
            }
        };
        let mut batch = vec![first];
        drain_into(&mut batch, &records);
        let only_ends = |batch: &[(Lsn, Record)]| {
            batch
                .iter()
                .all(|(_, record)| matches!(record, Record::Ended { .. }))
        };
        if batch.len() < WRITE_BATCH_MAX && only_ends(&batch) {
            // A closed queue or the linger's end: write what we have.
            receive_until(Instant::now() + ENDED_LINGER, &mut batch, &records).await;
        } else if let Some(target) = fill.target() {
            // Under load, a batch of decisions fills (`LoadFill`): their replies and
            // phase-two messages wait up to `LOAD_FILL_WAIT` longer, for fewer syncs.
            let fill_until = Instant::now() + LOAD_FILL_WAIT;
            while batch.len() < target && receive_until(fill_until, &mut batch, &records).await {}
        }
        fill.wrote(batch.len());
        match store.append(&batch).await {
            Ok(()) => {
                debug!(records = batch.len(), "decision log batch durable");
                if events.send(LogEvent::Persisted(batch)).await.is_err() {
                    break;
                }
                // After the batch is reported, so its sends are not held up by the step.
                if let Err(failure) = prune_step(&mut store, &mut pruner).await {
                    error!(error = %failure, "decision log prune failed; the node must stop");
                    let _ = events.send(LogEvent::Failed(failure)).await;
                    return;
                }
            }
            Err(failure) => {
                error!(error = %failure, "decision log write failed; the node must stop");
                let _ = events.send(LogEvent::Failed(failure)).await;
                return;
            }
        }
    }
    store.close().await;
}

/// One bounded prune step if one is due, then a checkpoint if it deleted anything; the
/// figures for `status` once caught up. A failure is fatal, as for an append.
async fn prune_step(store: &mut Store, pruner: &mut Pruner) -> Result<(), StoreError> {
    if !pruner.due() {
        return Ok(());
    }
    let pruned = store
        .prune(pruner.horizon(), pruner.window(), PRUNE_DECISIONS_PER_STEP)
        .await?;
    if pruned > 0 {
        debug!(decisions = pruned, "pruned ended decisions");
        store.checkpoint().await?;
    }
    let full = pruned >= u64::from(PRUNE_DECISIONS_PER_STEP);
    let figures = if full {
        None
    } else {
        Some(store.retention_figures().await?)
    };
    pruner.stepped(full, figures);
    Ok(())
}

/// Waits for the next record until `until`, then moves it and what is queued behind it
/// into `batch` (`drain_into`): false if the wait ran out or the queue closed. The caller
/// keeps the batch under `WRITE_BATCH_MAX`.
async fn receive_until(
    until: Instant,
    batch: &mut Vec<(Lsn, Record)>,
    records: &Receiver<(Lsn, Record)>,
) -> bool {
    let left = until.saturating_duration_since(Instant::now());
    let Some(Ok(record)) = runtime::timeout(left, records.recv()).await else {
        return false;
    };
    batch.push(record);
    drain_into(batch, records);
    true
}

/// Moves what is queued now into `batch`, up to `WRITE_BATCH_MAX` records.
fn drain_into(batch: &mut Vec<(Lsn, Record)>, records: &Receiver<(Lsn, Record)>) {
    while batch.len() < WRITE_BATCH_MAX {
        match records.try_recv() {
            Ok(record) => batch.push(record),
            Err(_) => break,
        }
    }
}
