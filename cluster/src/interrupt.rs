//! Every child this process started, so that Ctrl-C (or SIGTERM) can stop them all before
//! the process exits: no node outlives the demo, the benchmark or a test run.

use std::process::Child;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Children alive at once, at most: a runaway loop fails to start more instead of filling
/// the machine with processes.
pub const CHILDREN_MAX: usize = 256;
/// The exit status after an interrupt (128 + SIGINT, as shells report it).
const INTERRUPTED_EXIT: i32 = 130;

pub(crate) type Slot = Arc<Mutex<Option<Child>>>;

static CHILDREN: Mutex<Vec<Weak<Mutex<Option<Child>>>>> = Mutex::new(Vec::new());

fn children() -> MutexGuard<'static, Vec<Weak<Mutex<Option<Child>>>>> {
    CHILDREN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn lock(slot: &Slot) -> MutexGuard<'_, Option<Child>> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records a started child; `Err` (and the child killed) past `CHILDREN_MAX`.
pub(crate) fn register(child: Child) -> Result<Slot, Child> {
    let mut children = children();
    children.retain(|weak| weak.strong_count() > 0);
    if children.len() >= CHILDREN_MAX {
        return Err(child);
    }
    let slot = Arc::new(Mutex::new(Some(child)));
    children.push(Arc::downgrade(&slot));
    Ok(slot)
}

/// Kills and reaps a child (idempotent: a reaped child is gone from its slot).
pub(crate) fn stop(slot: &Slot) {
    if let Some(mut child) = lock(slot).take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Kills and reaps every child still running; returns how many there were.
pub fn stop_all_children() -> usize {
    let live: Vec<Slot> = children().iter().filter_map(Weak::upgrade).collect();
    let mut stopped = 0;
    for slot in &live {
        if lock(slot).is_some() {
            stopped += 1;
        }
        stop(slot);
    }
    stopped
}

/// Installs the Ctrl-C / SIGTERM handler: stop every child, then exit 130. Once per
/// process (a second call returns the error `ctrlc` reports).
pub fn stop_children_on_interrupt() -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(|| {
        eprintln!("interrupted: stopping every node this process started");
        stop_all_children();
        std::process::exit(INTERRUPTED_EXIT);
    })
}
