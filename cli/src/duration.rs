//! The one value parser of every duration flag (`--heartbeat-ms`, `--timeout-ms`, ...):
//! a plain number is milliseconds, as the flags' names say; a number with a unit is read
//! by `humantime` (`100ms`, `2s`, `1m 30s`).

use std::time::Duration;

/// `text` as whole milliseconds: `250` or `250ms`, `2s`, `1m 30s`.
pub fn duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("{text} milliseconds is too large"));
    }
    let duration = humantime::parse_duration(text).map_err(|error| {
        format!("{error} (expected milliseconds such as 250, or a duration such as 100ms or 2s)")
    })?;
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!(
            "{text} is not a whole number of milliseconds (durations are counted in ms)"
        ));
    }
    u64::try_from(duration.as_millis()).map_err(|_| format!("{text} is too long"))
}

/// `duration_ms`, refusing values outside `min_ms..=max_ms` with the bounds in the error.
pub fn duration_ms_in(
    min_ms: u64,
    max_ms: u64,
) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |text| {
        let ms = duration_ms(text)?;
        if (min_ms..=max_ms).contains(&ms) {
            Ok(ms)
        } else {
            Err(format!(
                "{} is outside {} to {}",
                humantime::format_duration(Duration::from_millis(ms)),
                humantime::format_duration(Duration::from_millis(min_ms)),
                humantime::format_duration(Duration::from_millis(max_ms)),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{duration_ms, duration_ms_in};

    #[test]
    fn plain_numbers_are_milliseconds_and_units_are_read() {
        assert_eq!(duration_ms("250"), Ok(250));
        assert_eq!(duration_ms("100ms"), Ok(100));
        assert_eq!(duration_ms("2s"), Ok(2_000));
        assert_eq!(duration_ms("1m 30s"), Ok(90_000));
        assert_eq!(duration_ms(" 7 "), Ok(7));
    }

    #[test]
    fn bad_durations_are_refused_with_the_expected_forms() {
        let error = duration_ms("fast").unwrap_err();
        assert!(error.contains("expected milliseconds"), "{error}");
        assert!(duration_ms("1500us").unwrap_err().contains("whole number"));
        assert!(duration_ms("-5").is_err());
        assert!(duration_ms("99999999999999999999").is_err());
    }

    #[test]
    fn bounds_are_checked_after_the_units() {
        let parse = duration_ms_in(1, 60_000);
        assert_eq!(parse("1m"), Ok(60_000));
        assert_eq!(parse("1"), Ok(1));
        let error = parse("61s").unwrap_err();
        assert_eq!(error, "1m 1s is outside 1ms to 1m");
        assert!(parse("0").is_err());
    }
}
