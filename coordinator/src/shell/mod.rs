//! The async node around the core: the event loop (`node`), the group-commit log writer
//! and the client commands. The only code that spawns, sleeps or touches sockets; the
//! async runtime is reached only through `wire::runtime`.

pub mod commands;
mod config;
mod log_writer;
pub mod metrics;
mod node;
mod outstanding;
pub mod retention;

pub use config::{ServeConfig, ShellError, TXNS_IN_FLIGHT_MAX_LIMIT, Timing};
pub use log_writer::WRITE_BATCH_MAX;
pub use node::{
    EVENT_QUEUE_MAX, Node, PHI_SUSPECT, SHUTDOWN_DRAIN_MAX, SHUTDOWN_WRITER_MAX, Stopped,
};
