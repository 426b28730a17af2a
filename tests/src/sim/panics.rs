//! Core calls under `catch_unwind`: a panicking core (a broken invariant is a panic in the
//! participant core) becomes a reported violation, and the panic hook stays quiet for it
//! so that a batch prints one line per violation rather than backtraces.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    /// Set while a call runs under `guarded`.
    static IN_CORE_CALL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `call`; a panic comes back as `Err` with its message.
pub fn guarded<R>(call: impl FnOnce() -> R) -> Result<R, String> {
    quiet_core_panics();
    IN_CORE_CALL.with(|flag| flag.set(true));
    let result = catch_unwind(AssertUnwindSafe(call));
    IN_CORE_CALL.with(|flag| flag.set(false));
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "non-text panic".to_string())
    })
}

/// Makes the panic hook silent inside `guarded` calls; every other panic goes to the hook
/// that was installed before.
fn quiet_core_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CORE_CALL.with(Cell::get) {
                previous(info);
            }
        }));
    });
}
