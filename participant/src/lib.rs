//! The participant: votes on transactions over its shard of data, kept in SQLite.
//!
//! `core` is the pure 2PC state machine, `store` the SQLite database (the only sqlx
//! user), `shell` the async-std event loop that connects them to the network.

pub mod core;
pub mod shell;
pub mod store;
