//! The async node around the core: the event loop (`node`), the group-commit log writer,
//! client commands and the local-cluster demo. The only code that spawns, sleeps or
//! touches sockets and processes; the async runtime is reached only through `wire::runtime`.

pub mod commands;
pub mod demo;
mod log_writer;
mod node;
mod outstanding;

// For `demo`, which is moving to a crate of its own: until then it names the runtime as
// `super::runtime`.
use wire::runtime;

pub use log_writer::WRITE_BATCH_MAX;
pub use node::{
    CRASH_POINTS, EVENT_QUEUE_MAX, Node, PHI_SUSPECT, ServeConfig, ShellError,
    TXNS_IN_FLIGHT_MAX_LIMIT, Timing,
};
