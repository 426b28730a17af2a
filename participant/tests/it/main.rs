//! Participant integration tests: the real binary, started as a child process.

mod cli;
mod process;
mod two_phase;
