//! Submit-time validation of a client's transaction spec: a pure function of the spec,
//! the configured participants and the limits, answering with a reason a person can act on.

use std::collections::BTreeSet;

use wire::{NodeId, Op, TxnSpec, Value};

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
    let key = op.key();
    if key.is_empty() {
        return Err("empty key".to_string());
    }
    if key.len() > limits.key_bytes_max {
        return Err(format!(
            "key is {} bytes, limit {}",
            key.len(),
            limits.key_bytes_max
        ));
    }
    match op {
        Op::Put { value, .. } => validate_value(value, limits),
        Op::Add {
            min: Some(min),
            max: Some(max),
            ..
        } if min > max => Err(format!("add bounds are empty: min {min} > max {max}")),
        Op::Add { .. } | Op::Get { .. } | Op::Delete { .. } => Ok(()),
    }
}

fn validate_value(value: &Value, limits: &Limits) -> Result<(), String> {
    match value {
        Value::Text(text) if text.len() > limits.value_bytes_max => Err(format!(
            "value is {} bytes, limit {}",
            text.len(),
            limits.value_bytes_max
        )),
        // The byte limit is on text; an integer has a fixed size.
        Value::Text(_) | Value::Int(_) => Ok(()),
    }
}
