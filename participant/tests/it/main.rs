//! Participant integration tests: the real binary, started as a child process.

mod cli;
mod process;
mod three_phase;
mod two_phase;
