//! Workspace integration tests: one test binary (see STYLE.md), one module per area.

mod bench;
mod cli_processes;
mod cli_processes_ops;
mod demo;
mod disk_contract;
mod isolation_processes;
mod model_check;
mod simulation;
mod three_phase_processes;
mod two_phase_processes;
