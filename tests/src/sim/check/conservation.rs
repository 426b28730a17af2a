//! Conservation for the bank workload: once no transaction is in doubt anywhere, the sum
//! of all balances is what it was at the start; no balance is ever below zero.

use wire::Value;

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
    if settled && total != view.bank_total {
        found.push(format!(
            "the bank holds {total}, it started with {}",
            view.bank_total
        ));
    }
    found
}
