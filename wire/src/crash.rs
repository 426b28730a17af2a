//! Named crash points for crash-injection tests: `--crash-at NAME` makes the process
//! die at that point as abruptly as SIGKILL would (no destructors, no flush).
//!
//! Always compiled in: the check is one relaxed load on a `OnceLock`, so real-process
//! scenarios run the same binaries users run.

use std::sync::OnceLock;

static CRASH_AT: OnceLock<Vec<String>> = OnceLock::new();

/// Arms the crash points named (call once at startup, from the binary's arguments).
pub fn arm(names: Vec<String>) {
    let _ = CRASH_AT.set(names);
}

/// Dies here if this point was armed; otherwise does nothing.
pub fn point(name: &str) {
    if let Some(names) = CRASH_AT.get()
        && names.iter().any(|armed| armed == name)
    {
        eprintln!("crash point {name} reached: aborting");
        std::process::abort();
    }
}
