//! The read-all bank transaction: a committed read of every account on every participant
//! sees the conserved total (transfers keep it; seeing half of one breaks it). After an
//! excused 3PC split (a partition, see `atomicity`) the total itself is no longer
//! conserved, so the run's reads are judged by the serializability checker alone.

use wire::Value;

use super::View;
use crate::sim::history::{ClientView, TxnKind};
use crate::sim::workload::ACCOUNTS;

pub fn check(view: &View<'_>) -> Vec<String> {
    let history = view.history;
    let mut found = Vec::new();
    if !view.excused.is_empty() {
        return found;
    }
    let expected_reads = ACCOUNTS.len() * view.participants.len();
    for (txn, info) in &history.txns {
        if info.kind != TxnKind::ReadAll || info.client != ClientView::Committed {
            continue;
        }
        let reads: Vec<&wire::Read> = info.reads.iter().flat_map(|(_, reads)| reads).collect();
        if reads.len() != expected_reads {
            found.push(format!(
                "{} read {} accounts, not {expected_reads}",
                history.name(*txn),
                reads.len()
            ));
            continue;
        }
        let total: i64 = reads
            .iter()
            .map(|read| match read.value {
                Some(Value::Int(balance)) => balance,
                _ => 0,
            })
            .sum();
        if total != view.bank_total {
            found.push(format!(
                "{} saw a bank total of {total}, not {}",
                history.name(*txn),
                view.bank_total
            ));
        }
    }
    found
}
