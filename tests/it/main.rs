//! Workspace integration tests: one test binary (see STYLE.md), one module per area.

mod bench;
mod cli_processes;
mod cli_processes_ops;
mod demo;
mod disk_contract;
mod heuristic_processes;
mod isolation_processes;
mod live_admin_processes;
mod model_check;
mod scenarios;
mod simulation;
mod sqlite_build;
mod two_phase_processes;
