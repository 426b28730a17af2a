//! The client's workload: bank transfers across random participants (which vote NO when
//! the source account would go below zero), mixed put/get/delete/add on a few scratch
//! keys (lock conflicts are frequent), read-only transactions, and read-all bank
//! transactions (every account on every participant) that must see the conserved total.

use std::collections::BTreeMap;

use rand::Rng;
use rand::rngs::StdRng;
use wire::{NodeId, Op, Protocol, TxnSpec, Value};

use super::history::TxnKind;
use super::options::{Options, ProtocolMix};

/// Bank accounts on every participant, each starting at `INITIAL_BALANCE`.
pub const ACCOUNTS: [&str; 2] = ["acct0", "acct1"];
pub const INITIAL_BALANCE: i64 = 100;
/// Scratch keys of the mixed workload (few, so transactions collide on locks).
pub const SCRATCH_KEYS: [&str; 3] = ["k0", "k1", "k2"];
/// Largest transfer: above the initial balance, so some transfers vote NO on bounds.
pub const TRANSFER_MAX: i64 = 150;

/// A participant's data before the run: every account at its initial balance.
pub fn initial_data() -> BTreeMap<String, Value> {
    ACCOUNTS
        .iter()
        .map(|key| (key.to_string(), Value::Int(INITIAL_BALANCE)))
        .collect()
}

/// The bank's total over the whole cluster.
pub fn initial_total(participants: usize) -> i64 {
    INITIAL_BALANCE * (ACCOUNTS.len() * participants) as i64
}

/// The next transaction the client submits.
pub fn next_txn(rng: &mut StdRng, options: &Options, nodes: &[NodeId]) -> (TxnKind, TxnSpec) {
    let protocol = match options.protocol {
        ProtocolMix::TwoPhase => Protocol::TwoPhase,
        ProtocolMix::ThreePhase => Protocol::ThreePhase,
        ProtocolMix::Mixed => {
            if rng.random_bool(0.5) {
                Protocol::TwoPhase
            } else {
                Protocol::ThreePhase
            }
        }
    };
    let timeout_ms = rng.random_range(options.txn_timeout_ms.clone());
    let roll = rng.random_range(0..100);
    let (kind, parts) = if roll < 50 {
        (TxnKind::Transfer, transfer(rng, nodes))
    } else if roll < 88 {
        (TxnKind::Mixed, mixed(rng, nodes))
    } else if roll < 94 {
        (TxnKind::ReadOnly, read_only(rng, nodes))
    } else {
        (TxnKind::ReadAll, read_all(nodes))
    };
    let spec = TxnSpec {
        protocol,
        timeout_ms,
        parts,
    };
    (kind, spec)
}

fn transfer(rng: &mut StdRng, nodes: &[NodeId]) -> Vec<(NodeId, Vec<Op>)> {
    let amount = rng.random_range(1..=TRANSFER_MAX);
    let from = (pick(rng, nodes), pick(rng, &ACCOUNTS));
    let to = loop {
        let to = (pick(rng, nodes), pick(rng, &ACCOUNTS));
        if to != from {
            break to;
        }
    };
    let debit = Op::Add {
        key: from.1.to_string(),
        delta: -amount,
        min: Some(0),
        max: None,
    };
    let credit = Op::Add {
        key: to.1.to_string(),
        delta: amount,
        min: None,
        max: None,
    };
    if from.0 == to.0 {
        vec![(from.0, vec![debit, credit])]
    } else {
        vec![(from.0, vec![debit]), (to.0, vec![credit])]
    }
}

fn mixed(rng: &mut StdRng, nodes: &[NodeId]) -> Vec<(NodeId, Vec<Op>)> {
    let chosen = some_nodes(rng, nodes);
    chosen
        .into_iter()
        .map(|node| {
            let count = rng.random_range(1..=3);
            let ops = (0..count).map(|_| mixed_op(rng)).collect();
            (node, ops)
        })
        .collect()
}

fn mixed_op(rng: &mut StdRng) -> Op {
    let key = pick(rng, &SCRATCH_KEYS).to_string();
    match rng.random_range(0..5) {
        0 => Op::Get { key },
        1 => Op::Delete { key },
        2 => Op::Add {
            key,
            delta: rng.random_range(-5..=5),
            min: None,
            max: Some(20),
        },
        3 => Op::Put {
            key,
            value: Value::Text(format!("v{}", rng.random_range(0..100))),
        },
        _ => Op::Put {
            key,
            value: Value::Int(rng.random_range(0..10)),
        },
    }
}

fn read_only(rng: &mut StdRng, nodes: &[NodeId]) -> Vec<(NodeId, Vec<Op>)> {
    some_nodes(rng, nodes)
        .into_iter()
        .map(|node| {
            let key = if rng.random_bool(0.5) {
                pick(rng, &ACCOUNTS)
            } else {
                pick(rng, &SCRATCH_KEYS)
            };
            (
                node,
                vec![Op::Get {
                    key: key.to_string(),
                }],
            )
        })
        .collect()
}

/// Every account on every participant: the bank's total, if the read is serializable.
fn read_all(nodes: &[NodeId]) -> Vec<(NodeId, Vec<Op>)> {
    nodes
        .iter()
        .map(|node| {
            let ops = ACCOUNTS
                .iter()
                .map(|key| Op::Get {
                    key: key.to_string(),
                })
                .collect();
            (*node, ops)
        })
        .collect()
}

/// One or more distinct participants, in id order.
fn some_nodes(rng: &mut StdRng, nodes: &[NodeId]) -> Vec<NodeId> {
    let count = rng.random_range(1..=nodes.len().min(3));
    let mut chosen: Vec<NodeId> = Vec::with_capacity(count);
    while chosen.len() < count {
        let node = pick(rng, nodes);
        if !chosen.contains(&node) {
            chosen.push(node);
        }
    }
    chosen.sort();
    chosen
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}
