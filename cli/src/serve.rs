//! What both `serve` commands do before they build their node: arm the crash points,
//! load the cluster secret and client token, and install the stop signal.

use std::future::Future;

use wire::Auth;
use wire::crash::{self, Binary};

use crate::security::ServeSecurityArgs;
use crate::{EXIT_FAILED, EXIT_USAGE};

/// The node's authentication and its stop signal (SIGTERM or Ctrl-C: a graceful stop;
/// correctness does not depend on it). On a bad flag the error is printed and the exit
/// code returned.
pub fn prologue(
    crash_at: &[String],
    binary: Binary,
    security: &ServeSecurityArgs,
) -> Result<(Auth, impl Future<Output = ()> + Send + 'static), u8> {
    let fail = |error: String, code: u8| {
        eprintln!("error: {error}");
        code
    };
    let specs = crash::specs(crash_at, binary).map_err(|error| fail(error, EXIT_USAGE))?;
    crash::arm(specs);
    let auth = security.auth().map_err(|error| fail(error, EXIT_USAGE))?;
    let stop = crate::stop_signal().map_err(|error| {
        fail(
            format!("cannot install the signal handler: {error}"),
            EXIT_FAILED,
        )
    })?;
    Ok((auth, stop))
}
