//! Evaluates a transaction's operations against the committed values, without changing
//! them: the reads, and the undo/redo images the vote would log, or the reason for NO.

use std::collections::BTreeMap;

use wire::{Op, Read, Value};

use super::record::{LogEntry, OpKind};

/// What a `Prepare` would do: one log entry per operation (in order) and the `Get` results.
#[derive(Debug)]
pub(crate) struct Evaluated {
    pub entries: Vec<LogEntry>,
    pub reads: Vec<Read>,
}

impl Evaluated {
    /// Only reads: the participant votes ReadOnly and logs nothing.
    pub fn is_read_only(&self) -> bool {
        self.entries.iter().all(|entry| !entry.op.writes())
    }
}

/// Applies `ops` in order to a private view of `committed` (so later ops see the txn's own
/// earlier writes). `committed` must hold every key the ops name (`None`: absent).
/// Returns the reason for a NO vote on a bad operation.
pub(crate) fn evaluate(
    ops: &[Op],
    committed: &BTreeMap<String, Option<Value>>,
) -> Result<Evaluated, String> {
    let mut own_writes: BTreeMap<&str, Option<Value>> = BTreeMap::new();
    let mut entries = Vec::with_capacity(ops.len());
    let mut reads = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        let key = op.key();
        let current = match own_writes.get(key) {
            Some(value) => value.clone(),
            None => committed.get(key).cloned().ok_or_else(|| {
                format!("internal error: the committed value of key {key:?} was not read")
            })?,
        };
        let (kind, redo) = match op {
            Op::Get { .. } => {
                reads.push(Read {
                    key: key.to_string(),
                    value: current.clone(),
                });
                (OpKind::Get, current.clone())
            }
            Op::Put { value, .. } => (OpKind::Put, Some(value.clone())),
            Op::Delete { .. } => (OpKind::Delete, None),
            Op::Add {
                delta, min, max, ..
            } => (
                OpKind::Add,
                Some(Value::Int(add(key, &current, *delta, *min, *max)?)),
            ),
        };
        if kind.writes() {
            own_writes.insert(key, redo.clone());
        }
        entries.push(LogEntry {
            // The caller bounds ops by `ops_per_txn_max`, validated to fit a u32.
            seq: u32::try_from(index).unwrap_or(u32::MAX),
            key: key.to_string(),
            op: kind,
            undo: current,
            redo,
        });
    }
    Ok(Evaluated { entries, reads })
}

/// The result of an `Add`, or why the vote is NO.
fn add(
    key: &str,
    current: &Option<Value>,
    delta: i64,
    min: Option<i64>,
    max: Option<i64>,
) -> Result<i64, String> {
    let base = match current {
        None => 0,
        Some(Value::Int(int)) => *int,
        Some(Value::Text(_)) => {
            return Err(format!(
                "key {key:?} holds a non-integer value; cannot add to it"
            ));
        }
    };
    let result = base
        .checked_add(delta)
        .ok_or_else(|| format!("adding {delta} to key {key:?} (value {base}) overflows"))?;
    if let Some(min) = min
        && result < min
    {
        return Err(format!(
            "adding {delta} to key {key:?} would make it {result}, below the minimum {min}"
        ));
    }
    if let Some(max) = max
        && result > max
    {
        return Err(format!(
            "adding {delta} to key {key:?} would make it {result}, above the maximum {max}"
        ));
    }
    Ok(result)
}
