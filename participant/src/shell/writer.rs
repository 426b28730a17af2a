//! The group-commit writer task: the only user of the store's write connection. It drains
//! every record queued, writes them as one SQLite transaction, and only after COMMIT
//! reports them durable, in lsn order, to the event loop.

use tracing::{debug, error};

use crate::core::{Lsn, Record};
use crate::store::{KvChanges, Writer};
use wire::runtime::{Receiver, Sender};

/// Records waiting to be written (and, equally, durable records not yet seen by the event
/// loop): the event loop stops taking network input while this many are outstanding.
pub const WRITER_QUEUE_MAX: usize = 4096;
/// Exit status when the log cannot be written: the process stops, and restart recovers.
pub const LOG_WRITE_FAILED_EXIT: i32 = 70;

/// A record on its way to disk.
#[derive(Debug)]
pub struct Pending {
    pub lsn: Lsn,
    pub record: Record,
}

/// A record now durable; `kind` names the record (for crash points and logs).
#[derive(Clone, Copy, Debug)]
pub struct Durable {
    pub lsn: Lsn,
    pub kind: &'static str,
}

/// One SQLite transaction's records, now durable (in lsn order), and what it changed in
/// `kv` (for the committed-value cache).
#[derive(Debug)]
pub struct DurableBatch {
    pub records: Vec<Durable>,
    pub kv: KvChanges,
}

/// Runs until `queue` closes, then closes the write connection. A failed write is fatal: later records may depend on it, and
/// the log on disk is the truth a restart recovers from.
pub async fn run(mut writer: Writer, queue: Receiver<Pending>, durable: Sender<DurableBatch>) {
    while let Ok(first) = queue.recv().await {
        let mut lsns = vec![first.lsn];
        let mut records = vec![first.record];
        while records.len() < WRITER_QUEUE_MAX {
            match queue.try_recv() {
                Ok(pending) => {
                    lsns.push(pending.lsn);
                    records.push(pending.record);
                }
                Err(_) => break,
            }
        }
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
                kind: record.kind(),
            })
            .collect();
        if durable.send(DurableBatch { records, kv }).await.is_err() {
            return;
        }
    }
    // The queue closed: a graceful stop (`shutdown`), everything queued is written.
    if let Err(error) = writer.close().await {
        error!(%error, "closing the write connection failed");
    }
}
