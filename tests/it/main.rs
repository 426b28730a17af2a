//! Workspace integration tests: one test binary (see STYLE.md), one module per area.

mod two_phase_processes;
