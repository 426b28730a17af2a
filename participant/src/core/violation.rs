//! How a broken invariant is reported: the error type and the `ensure!` shorthand every
//! check of the core uses (a leaf, so any handler's own checks can use it).

/// A broken core invariant: a bug, reported with what was seen.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("participant invariant violated: {0}")]
pub struct InvariantViolation(pub String);

/// Returns an [`InvariantViolation`] from the enclosing check unless `$holds`.
macro_rules! ensure {
    ($holds:expr, $($what:tt)+) => {
        if !$holds {
            return Err(InvariantViolation(format!($($what)+)));
        }
    };
}
pub(super) use ensure;
