//! Rules every node applies the same way: the floor and ceiling of configured timings and
//! the size limits of one operation, checked by the coordinator when a client submits and
//! by the participant when it evaluates a Prepare.

use crate::msg::{Op, Value};

/// The channels' default heartbeat interval (`ChannelConfig`, and both binaries'
/// `--heartbeat-ms`): the cores validate their timeouts against it.
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 100;
/// Every timeout must span at least this many heartbeat intervals: a shorter one would
/// fire before a heartbeat or a reconnect could tell a slow peer from a dead one.
pub const TIMEOUT_HEARTBEATS_MIN: u64 = 3;
/// No configured timeout or interval may exceed an hour: a longer one is a mistyped unit,
/// and a node that waits that long for a peer is as good as stuck.
pub const TIMEOUT_LIMIT_MS: u64 = 60 * 60 * 1_000;

/// Default size limits of one transaction, shared by the coordinator (which refuses a
/// Submit past them) and the participant (which votes NO past its own): with the same
/// defaults a transaction the coordinator accepts is not refused by a participant for
/// its size. 1,000 ops of a 1 KiB key and an 8 KiB value fit in a 16 MiB frame.
pub const OPS_PER_TXN_MAX_DEFAULT: usize = 1_000;
pub const KEY_BYTES_MAX_DEFAULT: usize = 1_024;
pub const VALUE_BYTES_MAX_DEFAULT: usize = 8 * 1_024;

/// Size limits of one operation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct OpLimits {
    pub key_bytes_max: usize,
    /// For text values (integers are 8 bytes).
    pub value_bytes_max: usize,
}

impl Op {
    /// Checks the op's own shape against `limits`; `Err` is the reason for the client (or
    /// the NO vote). Exhaustive over `Op`: a new operation kind must say what it checks.
    pub fn check(&self, limits: &OpLimits) -> Result<(), String> {
        check_key(self.key(), limits)?;
        match self {
            Op::Get { .. } | Op::Delete { .. } => Ok(()),
            Op::Put { value, .. } => match value {
                Value::Text(text) if text.len() > limits.value_bytes_max => Err(format!(
                    "value is {} bytes, limit {}",
                    text.len(),
                    limits.value_bytes_max
                )),
                Value::Text(_) | Value::Int(_) => Ok(()),
            },
            Op::Add { min, max, .. } => match (min, max) {
                (Some(min), Some(max)) if min > max => {
                    Err(format!("add bounds are empty: min {min} > max {max}"))
                }
                _ => Ok(()),
            },
        }
    }
}

fn check_key(key: &str, limits: &OpLimits) -> Result<(), String> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: OpLimits = OpLimits {
        key_bytes_max: 3,
        value_bytes_max: 2,
    };

    #[test]
    fn every_op_kind_checks_its_key_and_its_own_fields() {
        let put = |value: Value| Op::Put {
            key: "k".into(),
            value,
        };
        let add = |min, max| Op::Add {
            key: "k".into(),
            delta: 1,
            min,
            max,
        };
        let cases = [
            (Op::Get { key: "".into() }, Err("empty key".to_string())),
            (
                Op::Delete { key: "long".into() },
                Err("key is 4 bytes, limit 3".to_string()),
            ),
            (Op::Get { key: "abc".into() }, Ok(())),
            (put(Value::Text("ab".into())), Ok(())),
            (
                put(Value::Text("abc".into())),
                Err("value is 3 bytes, limit 2".to_string()),
            ),
            (put(Value::Int(i64::MAX)), Ok(())),
            (add(Some(1), Some(1)), Ok(())),
            (add(None, Some(-1)), Ok(())),
            (
                add(Some(2), Some(1)),
                Err("add bounds are empty: min 2 > max 1".to_string()),
            ),
        ];
        for (op, expected) in cases {
            assert_eq!(op.check(&LIMITS), expected, "{op:?}");
        }
    }
}
