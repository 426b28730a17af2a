//! Submit-time validation of a client's transaction spec: a pure function of the spec,
//! the configured participants and the limits, answering with a reason a person can act on.

use std::collections::BTreeSet;

use wire::{NodeId, Op, OpLimits, TxnSpec};

use super::Limits;

/// Checks `spec` against the cluster and the limits; `Err` holds the reason for the client.
pub fn validate(
    spec: &TxnSpec,
    participants: &BTreeSet<NodeId>,
    limits: &Limits,
) -> Result<(), String> {
    if spec.parts.is_empty() {
        return Err("transaction has no participants".to_string());
    }
    let mut seen = BTreeSet::new();
    let mut op_count = 0usize;
    for (node, ops) in &spec.parts {
        if !seen.insert(*node) {
            return Err(format!("participant {node} appears twice"));
        }
        if !participants.contains(node) {
            return Err(format!("unknown participant {node}"));
        }
        if ops.is_empty() {
            return Err(format!("participant {node} has no operations"));
        }
        op_count = op_count.saturating_add(ops.len());
        if op_count > limits.ops_per_txn_max {
            return Err(format!(
                "too many operations: more than {} in one transaction",
                limits.ops_per_txn_max
            ));
        }
        for (index, op) in ops.iter().enumerate() {
            validate_op(op, limits)
                .map_err(|reason| format!("participant {node}, op {}: {reason}", index + 1))?;
        }
    }
    if spec.timeout_ms < limits.timeout_ms_min || spec.timeout_ms > limits.timeout_ms_max {
        return Err(format!(
            "timeout {} ms out of bounds [{}, {}] ms",
            spec.timeout_ms, limits.timeout_ms_min, limits.timeout_ms_max
        ));
    }
    Ok(())
}

fn validate_op(op: &Op, limits: &Limits) -> Result<(), String> {
    op.check(&OpLimits {
        key_bytes_max: limits.key_bytes_max,
        value_bytes_max: limits.value_bytes_max,
    })
}
