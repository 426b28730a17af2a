//! SIGTERM and Ctrl-C for a serving node: the first asks for a graceful stop (the future
//! `stop_signal` returns resolves), a second one ends the process at once, for a stop that
//! takes longer than the operator will wait (correctness never depends on the graceful one).

use std::future::Future;
use std::sync::Mutex;

use futures::channel::oneshot;

/// Exit status when a second signal ends the process before its graceful stop finished
/// (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Installs the process's SIGTERM/SIGINT handler (once per process); the future resolves
/// at the first signal.
pub fn stop_signal() -> Result<impl Future<Output = ()> + Send + 'static, ctrlc::Error> {
    let (tell, told) = oneshot::channel::<()>();
    let tell = Mutex::new(Some(tell));
    ctrlc::set_handler(move || {
        let first = tell.lock().ok().and_then(|mut tell| tell.take());
        match first {
            Some(tell) => {
                let _ = tell.send(());
            }
            None => std::process::exit(i32::from(EXIT_INTERRUPTED)),
        }
    })?;
    Ok(async move {
        // `Err` only if the handler were dropped, which it never is: stop then too.
        let _ = told.await;
    })
}
