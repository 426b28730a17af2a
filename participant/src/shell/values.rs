//! The committed-value cache: `kv` as the durable batches the event loop has seen left
//! it, so that a Prepare's reads need no round trip to SQLite's connection thread.
//!
//! Exact because the participant owns its data and has a single writer: `kv` changes only
//! in a batch of the shell's writer, which reports every key it changed with its value
//! afterwards (`store::KvChanges`); the event loop applies that to the cache before it
//! tells the core any record of the batch is durable (so before a commit releases its
//! locks). A miss is read from SQLite while the loop waits; whatever it returns is the
//! value of some committed SQLite transaction, and any batch committed since is reported
//! after it and overwrites it. So once the loop has handled every durable report, the
//! cache agrees with the file, which is what the inline read gave before.

use foldhash::HashMap;
use wire::Value;

/// Bytes of keys and values the cache holds at most (with `ENTRY_OVERHEAD_BYTES` per
/// entry); past it the cache is emptied and refills from SQLite.
pub const VALUE_CACHE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// What one entry costs besides its key and value bytes (the map's slot, the `String` and
/// `Value` headers), roughly.
const ENTRY_OVERHEAD_BYTES: usize = 80;

#[derive(Debug, Default)]
pub struct ValueCache {
    values: HashMap<String, Option<Value>>,
    bytes: usize,
}

impl ValueCache {
    /// The committed value of `key` (`Some(None)`: known absent), if cached.
    pub fn get(&self, key: &str) -> Option<&Option<Value>> {
        self.values.get(key)
    }

    /// `key` now has this committed value.
    pub fn insert(&mut self, key: String, value: Option<Value>) {
        let cost = entry_bytes(&key, &value);
        if let Some(old) = self.values.get_mut(&key) {
            self.bytes = self.bytes - value_bytes(old) + value_bytes(&value);
            *old = value;
        } else {
            self.bytes += cost;
            self.values.insert(key, value);
        }
        if self.bytes > VALUE_CACHE_BYTES_MAX {
            self.values.clear();
            self.bytes = 0;
        }
    }
}

fn value_bytes(value: &Option<Value>) -> usize {
    match value {
        Some(Value::Text(text)) => text.len(),
        Some(Value::Int(_)) | None => 0,
    }
}

fn entry_bytes(key: &str, value: &Option<Value>) -> usize {
    ENTRY_OVERHEAD_BYTES + key.len() + value_bytes(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_replaces_the_value_and_its_bytes() {
        let mut cache = ValueCache::default();
        cache.insert("a".into(), Some(Value::Text("xyz".into())));
        cache.insert("a".into(), Some(Value::Int(5)));
        cache.insert("b".into(), None);
        assert_eq!(cache.get("a"), Some(&Some(Value::Int(5))));
        assert_eq!(cache.get("b"), Some(&None));
        assert_eq!(cache.get("c"), None);
        assert_eq!(cache.bytes, 2 * ENTRY_OVERHEAD_BYTES + 2);
    }

    #[test]
    fn past_its_bound_the_cache_empties_and_stays_bounded() {
        let mut cache = ValueCache::default();
        let big = "v".repeat(1024 * 1024);
        for i in 0..(VALUE_CACHE_BYTES_MAX / big.len() + 2) {
            cache.insert(format!("k{i}"), Some(Value::Text(big.clone())));
            assert!(cache.bytes <= VALUE_CACHE_BYTES_MAX);
        }
        assert!(cache.values.len() < VALUE_CACHE_BYTES_MAX / big.len());
    }
}
