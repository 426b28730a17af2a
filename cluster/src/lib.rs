//! Local clusters of real processes, for the demo, the benchmark and the tests: start
//! `participant` and `coordinator` binaries (by path) on free 127.0.0.1 ports, read the
//! `LISTENING` line each prints, give them a work directory, and kill every child when its
//! handle drops or the user presses Ctrl-C. It also reads a node's SQLite file read-only,
//! the way a user with `sqlite3` would.
//!
//! It knows the nodes' command lines but not their messages: it depends on neither the
//! coordinator nor the participant library, so the `coordinator` binary itself can use it.

mod inspect;
mod interrupt;
mod local;
mod ports;
mod process;
mod workdir;

pub use inspect::{InspectError, query};
pub use interrupt::{CHILDREN_MAX, stop_all_children, stop_children_on_interrupt};
pub use local::{ClusterConfig, LocalCluster};
pub use ports::{free_loopback_addr, reserve_loopback_addrs};
pub use process::{
    CpuTime, Launch, Node, Ran, STARTUP_TIMEOUT, StartError, clock_ticks_per_second, cpu_time_of,
};
pub use workdir::WorkDir;
