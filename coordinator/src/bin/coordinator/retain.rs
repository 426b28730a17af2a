//! `--retain` for the demo and the benchmark: the flags every node of their local cluster
//! gets, so that pruning runs inside the run.

use std::time::Duration;

use wire::Protocol;
use wire::retention::RETAIN_TIMEOUT_FACTOR;

use crate::bank::TXN_TIMEOUT_MS;

/// The participants' and the coordinator's extra flags for a window of `retain`. The
/// participant refuses a window shorter than `RETAIN_TIMEOUT_FACTOR` times its protocol
/// timeouts, so they are lowered to fit (never above the transfers' own timeout, which
/// they need not exceed); 3PC transfers ask for a waiting timeout of `TXN_TIMEOUT_MS`,
/// which must fit too.
pub fn cluster_args(
    retain: Duration,
    protocol: Protocol,
) -> Result<(Vec<String>, Vec<String>), String> {
    let retain_ms = u64::try_from(retain.as_millis()).unwrap_or(u64::MAX);
    let fitted_ms = (retain_ms / RETAIN_TIMEOUT_FACTOR).min(TXN_TIMEOUT_MS);
    if protocol == Protocol::ThreePhase && fitted_ms < TXN_TIMEOUT_MS {
        return Err(format!(
            "--retain {retain_ms} ms is too short for 3pc transfers: their {TXN_TIMEOUT_MS} ms \
             timeout must fit {RETAIN_TIMEOUT_FACTOR} times into it"
        ));
    }
    let window = format!("{retain_ms}ms");
    let mut participant = vec!["--retain".to_string(), window.clone()];
    for flag in [
        "--waiting-timeout-max-ms",
        "--precommitted-timeout-ms",
        "--decision-query-backoff-max-ms",
    ] {
        participant.push(flag.to_string());
        participant.push(fitted_ms.to_string());
    }
    // The minimum must stay below the maximum, and the round within the window.
    for flag in ["--waiting-timeout-min-ms", "--termination-round-ms"] {
        participant.push(flag.to_string());
        participant.push(fitted_ms.min(500).to_string());
    }
    participant.push("--decision-query-backoff-min-ms".to_string());
    participant.push(fitted_ms.min(200).to_string());
    Ok((participant, vec!["--retain".to_string(), window]))
}
