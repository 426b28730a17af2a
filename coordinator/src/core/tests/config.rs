//! `Config::validate`: the defaults pass; a timing that cannot work is refused with the
//! setting named.

use expect_test::expect;

use super::*;
use crate::core::TIMEOUT_LIMIT_MS;

/// A change to the default configuration.
type Change = fn(&mut Config);

#[test]
fn default_config_is_valid() {
    assert_eq!(Config::new([n(1)]).validate(), Ok(()));
}

#[test]
fn timeouts_shorter_than_their_heartbeats_are_refused_with_the_setting_named() {
    let rows: [(&str, Change); 6] = [
        ("slow heartbeat", |c| c.heartbeat_interval_ms = 200),
        ("short ack timeout", |c| c.precommit_ack_timeout_ms = 299),
        ("short margin", |c| c.precommit_margin_ms = 99),
        ("no 3pc window", |c| c.limits.timeout_ms_max = 400),
        ("no heartbeat", |c| c.heartbeat_interval_ms = 0),
        ("long resend", |c| {
            c.decide_resend_ms = TIMEOUT_LIMIT_MS + 1;
        }),
    ];
    let mut text = String::new();
    for (name, change) in rows {
        let mut config = Config::new([n(1)]);
        change(&mut config);
        let verdict = match config.validate() {
            Ok(()) => "valid".to_string(),
            Err(error) => error.to_string(),
        };
        text.push_str(&format!("{name}: {verdict}\n"));
    }
    expect![[r#"
        slow heartbeat: invalid coordinator configuration: timeout_ms_min 300 ms must be at least 3 heartbeats of 200 ms (600 ms)
        short ack timeout: invalid coordinator configuration: precommit_ack_timeout_ms 299 ms must be at least 3 heartbeats of 100 ms (300 ms)
        short margin: invalid coordinator configuration: precommit_margin_ms 99 ms must be at least one heartbeat (100 ms)
        no 3pc window: invalid coordinator configuration: timeout_ms_max 400 ms leaves no valid 3pc timeout: it must be at least timeout_ms_min 300 ms + precommit_margin_ms 200 ms
        no heartbeat: invalid coordinator configuration: heartbeat interval 0 ms outside 1..=3600000 ms
        long resend: invalid coordinator configuration: decide_resend_ms 3600001 ms exceeds the limit of 3600000 ms
    "#]].assert_eq(&text);
}

#[test]
fn size_limits_whose_largest_transaction_cannot_fit_a_frame_are_refused() {
    let mut config = Config::new([n(1)]);
    config.limits.value_bytes_max = 64 * 1_024;
    expect![[r#"invalid coordinator configuration: ops_per_txn_max 1000 x (key_bytes_max 1024 + value_bytes_max 65536) does not fit in a 16777216 byte frame (frame_bytes_max): lower one of them, or raise the frame limit"#]]
        .assert_eq(&config.validate().unwrap_err().to_string());
    config.limits.ops_per_txn_max = 100;
    assert_eq!(config.validate(), Ok(()));
    config.limits.key_bytes_max = 0;
    assert!(config.validate().is_err());
}
