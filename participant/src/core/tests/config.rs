//! Config validation: each bad field named, and 3PC timings spanning heartbeats.

use super::*;

#[test]
fn config_validation_names_the_bad_field() {
    let mut config = config();
    config.key_bytes_max = 0;
    assert_eq!(
        Participant::new(ME, config)
            .err()
            .map(|error| error.to_string()),
        Some("invalid participant configuration: key_bytes_max must be at least 1".to_string())
    );
    let mut config = self::config();
    config.decision_query_backoff_min_ms = 500;
    assert_eq!(
        config.validate().err().map(|error| error.to_string()),
        Some(
            "invalid participant configuration: decision_query_backoff_min_ms 500 exceeds \
             decision_query_backoff_max_ms 400"
                .to_string()
        )
    );
    assert_eq!(Config::default().validate(), Ok(()));
}

#[test]
fn config_timings_must_span_three_heartbeats() {
    let config = config();
    assert_eq!(config.validate_for_heartbeat(100), Ok(()));
    assert_eq!(
        config
            .validate_for_heartbeat(101)
            .err()
            .map(|error| error.to_string()),
        Some(
            "invalid participant configuration: termination_round_ms 300 is shorter than 3 \
             heartbeat intervals (303 ms at 101 ms per heartbeat)"
                .to_string()
        )
    );
    let mut bad = self::config();
    bad.waiting_timeout_min_ms = 6_000;
    assert_eq!(
        bad.validate().err().map(|error| error.to_string()),
        Some(
            "invalid participant configuration: waiting_timeout_min_ms 6000 exceeds \
             waiting_timeout_max_ms 5000"
                .to_string()
        )
    );
    let mut bad = self::config();
    bad.precommitted_timeout_ms = 0;
    assert_eq!(
        bad.validate().err().map(|error| error.to_string()),
        Some(
            "invalid participant configuration: precommitted_timeout_ms must be at least 1"
                .to_string()
        )
    );
    assert_eq!(Config::default().validate_for_heartbeat(100), Ok(()));
}
