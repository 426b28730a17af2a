//! Conservation for the bank workload: once no transaction is in doubt anywhere, the sum
//! of all balances is what it was at the start; no balance is ever below zero. An excused
//! 3PC split (see `atomicity`) moves the total by what its committed side added.

use wire::{Decision, Op, Value};

use super::View;
use crate::sim::trace::node_name;
use crate::sim::workload::ACCOUNTS;

pub fn check(view: &View<'_>) -> Vec<String> {
    let mut found = Vec::new();
    let mut total = 0i64;
    for end in &view.participants {
        for key in ACCOUNTS {
            match end.disk.kv.get(key) {
                Some(Value::Int(balance)) => {
                    if *balance < 0 {
                        found.push(format!(
                            "{} {key} is {balance}, below zero",
                            node_name(end.id)
                        ));
                    }
                    total += balance;
                }
                other => found.push(format!(
                    "{} {key} holds {other:?}, not a balance",
                    node_name(end.id)
                )),
            }
        }
    }
    let settled = view
        .participants
        .iter()
        .all(|end| end.in_doubt_on_disk() == 0);
    let expected = view.bank_total + split_deltas(view);
    if settled && total != expected {
        found.push(format!(
            "the bank holds {total}, it started with {} (expected {expected} after excused \
             splits)",
            view.bank_total
        ));
    }
    found
}

/// What the committed sides of the excused splits added to the accounts.
fn split_deltas(view: &View<'_>) -> i64 {
    let history = view.history;
    let mut delta = 0;
    for txn in &view.excused {
        let Some(info) = history.txns.get(txn) else {
            continue;
        };
        let committed = history.applied_at(*txn, Decision::Commit);
        for (node, ops) in &info.parts {
            if !committed.contains(node) {
                continue;
            }
            for op in ops {
                if let Op::Add {
                    key, delta: add, ..
                } = op
                    && ACCOUNTS.contains(&key.as_str())
                {
                    delta += add;
                }
            }
        }
    }
    delta
}
