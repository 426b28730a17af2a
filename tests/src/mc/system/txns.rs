//! The model's transactions (`Limits::txns` takes the first one or two).

use wire::{NodeId, Op, TxnSpec};

/// The model's transactions: a transfer p1 → p2, then a second debit on the same
/// account (a lock conflict while the first is undecided there, a read of the value the
/// first leaves once its commit is decided; NO on bounds if it is too large).
pub fn model_txns(protocol: wire::Protocol, count: usize) -> Vec<TxnSpec> {
    let add = |key: &str, delta: i64, min: Option<i64>| Op::Add {
        key: key.to_string(),
        delta,
        min,
        max: None,
    };
    let first = TxnSpec {
        protocol,
        timeout_ms: 1_000,
        parts: vec![
            (NodeId(1), vec![add("acct0", -30, Some(0))]),
            (NodeId(2), vec![add("acct0", 30, None)]),
        ],
    };
    let second = TxnSpec {
        protocol,
        timeout_ms: 1_000,
        parts: vec![
            (NodeId(1), vec![add("acct0", -60, Some(0))]),
            (
                NodeId(2),
                vec![Op::Put {
                    key: "k0".to_string(),
                    value: wire::Value::Int(1),
                }],
            ),
        ],
    };
    [first, second].into_iter().take(count).collect()
}
