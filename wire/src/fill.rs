//! The fill rule both nodes' log writers follow under load (pure): a group commit that
//! would hold fewer records than the one before it waits, briefly, for that many.

use std::time::Duration;

/// Under load, how long a batch may wait to hold as many records as the batch before it:
/// each group commit costs a sync, a commit of SQLite's and wake-ups of two threads,
/// about as much CPU as a dozen transfer parts, so fuller batches leave the cores more
/// for the rest. Only ever this long, and only where the previous batch showed the load
/// (`LOAD_FILL_MIN_RECORDS`). It delays what waits on the batch (votes, decisions,
/// replies) and announces nothing earlier.
pub const LOAD_FILL_WAIT: Duration = Duration::from_millis(1);
/// The previous batch's records from which a batch waits to fill: below it (one client,
/// a few, stop-and-wait channels) every batch is written at once.
pub const LOAD_FILL_MIN_RECORDS: usize = 8;

/// The group commit's target under load: a batch that would be written with fewer records
/// than the one before it waits (up to `LOAD_FILL_WAIT`) for that many. Under steady load
/// the batches settle near what arrives in one commit plus that wait; when the load drops,
/// one wait runs out and the smaller batch sets the next target.
#[derive(Debug)]
pub struct LoadFill {
    /// Records of the batch written last.
    previous: usize,
    /// Records one batch may hold.
    batch_max: usize,
}

impl LoadFill {
    /// A writer whose batches hold at most `batch_max` records; its first batch does not
    /// wait.
    pub fn new(batch_max: usize) -> LoadFill {
        LoadFill {
            previous: 0,
            batch_max,
        }
    }

    /// The records the next batch waits for, if the last one showed load.
    pub fn target(&self) -> Option<usize> {
        (self.previous >= LOAD_FILL_MIN_RECORDS).then_some(self.previous.min(self.batch_max))
    }

    /// A batch of `records` is being written.
    pub fn wrote(&mut self, records: usize) {
        self.previous = records;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_waits_to_fill_only_after_a_batch_that_showed_load() {
        const MAX: usize = 1_000;
        let mut fill = LoadFill::new(MAX);
        // The first batch, and batches after small ones, are written at once.
        assert_eq!(fill.target(), None);
        fill.wrote(LOAD_FILL_MIN_RECORDS - 1);
        assert_eq!(fill.target(), None);
        // After a batch with load, the next waits for as many records.
        fill.wrote(LOAD_FILL_MIN_RECORDS);
        assert_eq!(fill.target(), Some(LOAD_FILL_MIN_RECORDS));
        fill.wrote(40);
        assert_eq!(fill.target(), Some(40));
        // A wait that ran out wrote fewer: they set the next target, down to none.
        fill.wrote(3);
        assert_eq!(fill.target(), None);
        // Never more than a batch may hold.
        fill.wrote(MAX + 10);
        assert_eq!(fill.target(), Some(MAX));
    }
}
