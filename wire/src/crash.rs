//! Named crash points for crash-injection tests: `--crash-at NAME` makes the process
//! die at that point as abruptly as SIGKILL would (no destructors, no flush).
//!
//! Always compiled in: the check is one relaxed load on a `OnceLock`, so real-process
//! scenarios run the same binaries users run.

use std::sync::OnceLock;
use std::time::Duration;

static CRASH_AT: OnceLock<Vec<String>> = OnceLock::new();

/// Arms the crash points named (call once at startup, from the binary's arguments).
pub fn arm(names: Vec<String>) {
    let _ = CRASH_AT.set(names);
}

/// How long `point_after_send` lets the channel writers put already-queued frames on
/// the socket before dying.
pub const SEND_GRACE: Duration = Duration::from_millis(300);

/// Whether `name` was armed.
pub fn armed(name: &str) -> bool {
    CRASH_AT
        .get()
        .is_some_and(|names| names.iter().any(|armed| armed == name))
}

/// Dies here if this point was armed; otherwise does nothing.
pub fn point(name: &str) {
    if armed(name) {
        eprintln!("crash point {name} reached: aborting");
        std::process::abort();
    }
}

/// Like `point`, for points named "after X was sent": the frame was only queued, so give
/// the writer task (another thread) `SEND_GRACE` to put it on the wire, then die before
/// this thread does anything else. Blocking the caller is the point: nothing after it
/// may be sent.
pub fn point_after_send(name: &str) {
    if armed(name) {
        std::thread::sleep(SEND_GRACE);
        point(name);
    }
}
