//! The newtypes both cores count in: time from the shell's clock and log positions.

/// A point in time in milliseconds, from a clock only the shell reads (cores take it as
/// input, so the simulator can drive them with its own).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// `ms` later, saturating (a far deadline is still later than every other).
    pub fn plus(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
}

/// Log sequence number: the order in which a node handed records to its store. Each node
/// numbers its own log; lsns of different nodes are never compared.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Lsn(pub u64);

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
