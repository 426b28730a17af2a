//! The deterministic simulator (README, "Deterministic simulation"): the real coordinator and participant cores,
//! driven in one thread by a seeded RNG and a virtual clock, over a simulated network
//! (FIFO per link, random delays, loss only when a link or node fails) and simulated
//! disks (group commit; a crash keeps exactly what was durable). After a safety phase
//! with faults and a healing phase without, the checkers in `check/` judge the run.
//!
//! `run(seed, &options)` is the whole API: the same seed and options give the same
//! report, trace included.

/// Appends to the current event's trace line, formatting only when tracing.
macro_rules! note {
    ($world:expr, $($arg:tt)*) => {
        if $world.tracing() {
            let text = format!($($arg)*);
            $world.push_note(text);
        }
    };
}

pub mod check;
pub mod cores;
pub mod disk;
pub mod history;
pub mod net;
pub mod options;
pub mod panics;
pub mod planted;
pub mod trace;
pub mod workload;

mod coordinator_shell;
mod participant_shell;
mod retention;
mod world;

pub use check::Violation;
pub use options::{
    COORDINATORS_MAX, FaultOptions, NetworkOptions, Options, PARTICIPANTS_MAX, PARTICIPANTS_MIN,
    Planted, ProtocolMix,
};
pub use world::{Report, run};
