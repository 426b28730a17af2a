//! The retention rules both nodes share (pure): what a node keeps (`Retention`), the
//! horizon below which transaction ids are forgotten, the window's parsing (`--retain`)
//! and its check against the protocol timeouts; the prune schedule is `prune`'s. Why a
//! horizon keeps answers about pruned transactions safe: ARCHITECTURE.md, "Retention and
//! forgotten transactions".

use std::time::Duration;

use crate::msg::TxnId;

/// `--retain` when not given: decided transactions are kept an hour.
pub const RETAIN_DEFAULT: Duration = Duration::from_secs(60 * 60);
/// The window must be at least this many times every protocol timeout of the node, so
/// that every message of a live transaction arrives long before its id passes the
/// horizon (a late one is only refused, never answered wrongly, but a refused live
/// transaction would abort for nothing).
pub const RETAIN_TIMEOUT_FACTOR: u64 = 4;
/// The shortest window accepted at all, whatever the timeouts.
pub const RETAIN_MS_MIN: u64 = 1_000;
/// The longest window accepted: a year (a longer one is a mistyped unit).
pub const RETAIN_MS_MAX: u64 = 366 * 24 * 60 * 60 * 1_000;

/// What a node was asked to keep (`--retain`, `--retain-txns` of both `serve` commands).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Retention {
    /// Decided transactions are kept at least this long (a participant's by their id's
    /// time and their outcome's; a coordinator's ended decisions).
    pub retain: Duration,
    /// Past this many kept transactions the window shrinks to the node's minimum
    /// ([`Retention::window`]): a bound on the table under any load.
    pub retain_txns: Option<u64>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            retain: RETAIN_DEFAULT,
            retain_txns: None,
        }
    }
}

impl Retention {
    /// The window in force: `retain`, or the node's `window_min` (when shorter) while it
    /// keeps more than `retain_txns`.
    pub fn window(&self, over_cap: bool, window_min: Duration) -> Duration {
        if over_cap {
            window_min.min(self.retain)
        } else {
            self.retain
        }
    }
}

/// Transaction ids below the horizon are forgotten: the node may have deleted what it
/// knew of them, so it answers nothing about them that depends on what happened. A v7 id
/// starts with its creation time in Unix milliseconds (48 bits), so the horizon at time
/// `ms` is the smallest id created at `ms`; ids of other versions compare as numbers.
/// The same order is the one of their hyphenated lower-case text, which is how both
/// stores keep ids, so SQL compares `txn_id < horizon` the same way.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Horizon(u128);

impl Horizon {
    /// Forgets nothing (every id is at or above it).
    pub const NONE: Horizon = Horizon(0);

    /// The horizon at `unix_ms`: every v7 id created before it is below.
    pub fn at_unix_ms(unix_ms: u64) -> Horizon {
        let ms = u128::from(unix_ms.min((1 << 48) - 1));
        Horizon(ms << 80)
    }

    /// The Unix milliseconds the horizon stands at.
    pub fn unix_ms(self) -> u64 {
        u64::try_from(self.0 >> 80).unwrap_or(u64::MAX)
    }

    /// Whether `txn` is below the horizon (forgotten, unless still known).
    pub fn forgets(self, txn: TxnId) -> bool {
        txn.0.as_u128() < self.0
    }

    /// The horizon as an id, for comparisons with stored ids (`txn_id < ?`).
    pub fn as_txn_id(self) -> TxnId {
        TxnId(uuid::Uuid::from_u128(self.0))
    }

    /// Parses what [`Horizon::as_txn_id`] wrote.
    pub fn from_txn_id(txn: TxnId) -> Horizon {
        Horizon(txn.0.as_u128())
    }
}

/// Unix milliseconds of a v7 id's creation (`None` for other versions).
pub fn created_unix_ms(txn: TxnId) -> Option<u64> {
    let (secs, nanos) = txn.0.get_timestamp()?.to_unix();
    Some(secs.saturating_mul(1_000) + u64::from(nanos / 1_000_000))
}

/// Parses a window: `10s`, `1h`, `500ms`, `1h 30m` (humantime's syntax), or a plain
/// number of milliseconds; within [`RETAIN_MS_MIN`] and [`RETAIN_MS_MAX`].
pub fn parse_retain(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = text
            .parse()
            .map_err(|_| format!("{text:?} is too large a number of milliseconds"))?;
        Duration::from_millis(ms)
    } else {
        humantime::parse_duration(text).map_err(|error| {
            format!("{text:?} is not a duration (e.g. 10s, 1h, 500ms, or milliseconds): {error}")
        })?
    };
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if !(RETAIN_MS_MIN..=RETAIN_MS_MAX).contains(&ms) {
        return Err(format!(
            "a retention window of {ms} ms is outside {RETAIN_MS_MIN} ms to {RETAIN_MS_MAX} ms"
        ));
    }
    Ok(duration)
}

/// Checks the window against the node's protocol timeouts (`(flag, ms)` pairs): each must
/// fit [`RETAIN_TIMEOUT_FACTOR`] times into it. `Err` names the flag to change.
pub fn check_retain(retain: Duration, timeouts: &[(&str, u64)]) -> Result<(), String> {
    let retain_ms = u64::try_from(retain.as_millis()).unwrap_or(u64::MAX);
    for &(name, ms) in timeouts {
        if ms.saturating_mul(RETAIN_TIMEOUT_FACTOR) > retain_ms {
            return Err(format!(
                "--retain {retain_ms} ms is too short for {name} {ms} ms: the window must be at \
                 least {RETAIN_TIMEOUT_FACTOR} times every protocol timeout (raise --retain or \
                 lower {name})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_in_every_accepted_spelling() {
        assert_eq!(parse_retain("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_retain("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_retain("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_retain("2500"), Ok(Duration::from_millis(2500)));
        assert!(parse_retain("500ms").unwrap_err().contains("outside"));
        assert!(parse_retain("ten").unwrap_err().contains("not a duration"));
        assert!(parse_retain("").is_err());
        assert!(parse_retain("99999999999999999999999").is_err());
    }

    #[test]
    fn over_the_cap_the_window_shrinks_to_the_minimum_never_above_retain() {
        let retention = Retention {
            retain: Duration::from_secs(60),
            retain_txns: Some(10),
        };
        let min = Duration::from_secs(5);
        assert_eq!(retention.window(false, min), Duration::from_secs(60));
        assert_eq!(retention.window(true, min), min);
        assert_eq!(
            retention.window(true, Duration::from_secs(600)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn the_horizon_orders_v7_ids_by_creation_time_and_as_text() {
        let early = TxnId(uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            1_000,
            0,
        )));
        let late = TxnId(uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            2_000,
            0,
        )));
        let horizon = Horizon::at_unix_ms(1_500_000);
        assert!(horizon.forgets(early));
        assert!(!horizon.forgets(late));
        assert!(!Horizon::NONE.forgets(early));
        assert_eq!(created_unix_ms(early), Some(1_000_000));
        assert_eq!(horizon.unix_ms(), 1_500_000);
        assert!(early.to_string() < horizon.as_txn_id().to_string());
        assert!(horizon.as_txn_id().to_string() < late.to_string());
        assert_eq!(Horizon::from_txn_id(horizon.as_txn_id()), horizon);
    }

    #[test]
    fn a_window_shorter_than_a_timeout_times_the_factor_is_refused() {
        let retain = Duration::from_secs(2);
        assert!(check_retain(retain, &[("--a-ms", 500)]).is_ok());
        let error = check_retain(retain, &[("--a-ms", 500), ("--b-ms", 501)]).unwrap_err();
        assert!(error.contains("--b-ms"), "{error}");
    }
}
