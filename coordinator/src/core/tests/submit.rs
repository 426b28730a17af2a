//! `Input::Submit`: Prepare (3PC: CanCommit) to every participant, or a rejection with a
//! reason the client can act on.

use expect_test::expect;
use wire::{Op, Value};

use super::*;
use crate::core::{
    Config, KEY_BYTES_MAX_DEFAULT, OPS_PER_TXN_MAX_DEFAULT, PRECOMMIT_MARGIN_MS_DEFAULT,
    TIMEOUT_MS_MIN_DEFAULT, VALUE_BYTES_MAX_DEFAULT,
};

#[test]
fn submit_sends_prepare_to_every_participant() {
    check(
        coordinator,
        [at(0, submit(T1, transfer())), PROBE],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            ? timer 500; 1 in flight; 2pc collecting votes: 1
        "#]],
    );
}

#[test]
fn three_phase_submit_sends_can_commit_with_every_participant_and_votes_are_due_before_the_margin()
{
    check(
        coordinator,
        [at(0, submit(T1, transfer3())), PROBE],
        expect![[r#"
            @0 submit t1 3pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 3pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 3pc 500 ms of [1, 2]: add bob 5 min 0
            ? timer 300; 1 in flight; 3pc collecting votes: 1
        "#]],
    );
}

#[test]
fn participant_down_at_submit_aborts_without_sending() {
    check(
        coordinator,
        [at(0, down(2)), at(1, submit(T1, transfer())), PROBE],
        expect![[r#"
            @0 down 2
            @1 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              client t1: aborted: participant 2 is down
            ? timer none; 0 in flight; no txns
        "#]],
    );
}

#[test]
fn invalid_specs_are_rejected_with_the_reason() {
    let long_key = "k".repeat(KEY_BYTES_MAX_DEFAULT + 1);
    let long_put = Op::Put {
        key: "a".to_string(),
        value: Value::Text("v".repeat(VALUE_BYTES_MAX_DEFAULT + 1)),
    };
    let empty_bounds = Op::Add {
        key: "a".to_string(),
        delta: 1,
        min: Some(5),
        max: Some(1),
    };
    let short_timeout = TxnSpec {
        timeout_ms: 5,
        ..transfer()
    };
    let short_3pc_timeout = TxnSpec {
        timeout_ms: TIMEOUT_MS_MIN_DEFAULT + PRECOMMIT_MARGIN_MS_DEFAULT - 1,
        ..transfer3()
    };
    let rows = [
        ("empty", spec(vec![])),
        (
            "no operations",
            spec(vec![(1, vec![add("a", 1)]), (2, vec![])]),
        ),
        (
            "named twice",
            spec(vec![(1, vec![get("a")]), (1, vec![get("b")])]),
        ),
        ("unknown", spec(vec![(7, vec![get("a")])])),
        (
            "too many operations",
            spec(vec![(1, vec![get("a"); OPS_PER_TXN_MAX_DEFAULT + 1])]),
        ),
        ("long key", spec(vec![(1, vec![get("a"), get(&long_key)])])),
        ("long value", spec(vec![(2, vec![long_put])])),
        ("empty key", spec(vec![(1, vec![get("")])])),
        ("empty add bounds", spec(vec![(1, vec![empty_bounds])])),
        ("timeout out of bounds", short_timeout),
        ("3pc timeout leaves no vote window", short_3pc_timeout),
    ];
    let mut text = String::new();
    for (name, spec) in rows {
        let mut core = coordinator();
        core.handle(Millis(0), submit(T1, spec));
        for output in drain(&mut core) {
            text.push_str(&format!("{name}: {}\n", output_text(&output)));
        }
    }
    expect![[r#"
        empty: client t1: rejected: transaction has no participants
        no operations: client t1: rejected: participant 2 has no operations
        named twice: client t1: rejected: participant 1 appears twice
        unknown: client t1: rejected: unknown participant 7
        too many operations: client t1: rejected: too many operations: more than 1000 in one transaction
        long key: client t1: rejected: participant 1, op 2: key is 1025 bytes, limit 1024
        long value: client t1: rejected: participant 2, op 1: value is 8193 bytes, limit 8192
        empty key: client t1: rejected: participant 1, op 1: empty key
        empty add bounds: client t1: rejected: participant 1, op 1: add bounds are empty: min 5 > max 1
        timeout out of bounds: client t1: rejected: timeout 5 ms out of bounds [300, 60000] ms
        3pc timeout leaves no vote window: client t1: rejected: 3pc timeout 499 ms is below 500 ms: votes are due 200 ms (the precommit margin) before the participants' waiting timeout, which must leave at least 300 ms to vote
    "#]].assert_eq(&text);
}

#[test]
fn rejects_when_too_many_txns_in_flight() {
    let mut config = Config::new([n(1), n(2)]);
    config.limits.txns_in_flight_max = 1;
    check(
        || with_config(config),
        [at(0, submit(T1, transfer())), at(1, submit(2, transfer()))],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @1 submit t2 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              client t2: rejected: coordinator overloaded: 1 transactions in flight
        "#]],
    );
}

#[test]
fn rejects_a_duplicate_txn_id() {
    check(
        coordinator,
        [at(0, submit(T1, transfer())), at(1, submit(T1, transfer()))],
        expect![[r#"
            @0 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              1 <- prepare t1 2pc 500 ms of [1, 2]: add alice -5 min 0
              2 <- prepare t1 2pc 500 ms of [1, 2]: add bob 5 min 0
            @1 submit t1 2pc 500 ms: 1 [add alice -5 min 0]; 2 [add bob 5 min 0]
              client t1: rejected: duplicate transaction id 00000000-0000-0000-0000-000000000001
        "#]],
    );
}
