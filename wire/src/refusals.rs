//! Rate limit for the log lines about peers we refuse or whose handshake fails (pure):
//! one line per peer address per interval, with a count of those suppressed, so a peer
//! that reconnects in a loop cannot grow our log. The table of addresses is bounded;
//! past it, every other address shares one line per interval.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// At most one refusal line per peer address per this interval.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Peer addresses remembered; the rest share one line per interval.
pub const REFUSAL_LOG_ADDRS_MAX: usize = 1024;

#[derive(Debug)]
pub(crate) struct RefusalLog {
    by_addr: HashMap<IpAddr, Entry>,
    /// Shared by every address that found the table full.
    overflow: Option<Entry>,
    interval: Duration,
    addrs_max: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    logged_at: Instant,
    suppressed: u64,
}

impl Entry {
    /// `Some(suppressed since the last line)` if a line may be logged now.
    fn admit(entry: &mut Option<Entry>, now: Instant, interval: Duration) -> Option<u64> {
        match entry {
            Some(seen) if now.saturating_duration_since(seen.logged_at) < interval => {
                seen.suppressed += 1;
                None
            }
            _ => {
                let suppressed = entry.map_or(0, |seen| seen.suppressed);
                *entry = Some(Entry {
                    logged_at: now,
                    suppressed: 0,
                });
                Some(suppressed)
            }
        }
    }
}

impl RefusalLog {
    pub(crate) fn new(interval: Duration, addrs_max: usize) -> RefusalLog {
        RefusalLog {
            by_addr: HashMap::new(),
            overflow: None,
            interval,
            addrs_max,
        }
    }

    /// A refusal of `addr` at `now`: `Some(n)` means log it now (mentioning `n` refusals
    /// not logged since the last line), `None` means stay quiet.
    pub(crate) fn admit(&mut self, addr: IpAddr, now: Instant) -> Option<u64> {
        let interval = self.interval;
        if let Some(seen) = self.by_addr.get_mut(&addr) {
            let mut entry = Some(*seen);
            let verdict = Entry::admit(&mut entry, now, interval);
            *seen = entry.expect("admit keeps the entry");
            return verdict;
        }
        if self.by_addr.len() >= self.addrs_max {
            self.by_addr
                .retain(|_, seen| now.saturating_duration_since(seen.logged_at) < interval);
        }
        if self.by_addr.len() >= self.addrs_max {
            return Entry::admit(&mut self.overflow, now, interval);
        }
        self.by_addr.insert(
            addr,
            Entry {
                logged_at: now,
                suppressed: 0,
            },
        );
        Some(0)
    }

    #[cfg(test)]
    pub(crate) fn addrs(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(10);

    fn ip(i: u32) -> IpAddr {
        IpAddr::from(i.to_be_bytes())
    }

    #[test]
    fn one_line_per_address_per_interval_with_the_suppressed_count() {
        let mut log = RefusalLog::new(INTERVAL, 16);
        let start = Instant::now();
        assert_eq!(log.admit(ip(1), start), Some(0));
        for i in 1..=1000 {
            assert_eq!(log.admit(ip(1), start + Duration::from_millis(i)), None);
        }
        assert_eq!(
            log.admit(ip(2), start),
            Some(0),
            "another address logs at once"
        );
        assert_eq!(log.admit(ip(1), start + INTERVAL), Some(1000));
        assert_eq!(log.admit(ip(1), start + INTERVAL), None);
    }

    #[test]
    fn past_the_table_bound_the_other_addresses_share_one_line() {
        let mut log = RefusalLog::new(INTERVAL, 4);
        let now = Instant::now();
        let logged = (0..10_000)
            .filter(|&i| log.admit(ip(i), now).is_some())
            .count();
        // Four addresses of their own, then one shared line.
        assert_eq!(logged, 5);
        assert_eq!(log.addrs(), 4);
        // Once the interval has passed, old entries make room again.
        assert_eq!(log.admit(ip(20_000), now + INTERVAL), Some(0));
        assert!(log.addrs() <= 4);
    }
}
