//! The model checker in CI: small configurations of the real cores explored breadth-first
//! (exhaustively where the space is small, up to a state bound where it is not). Each
//! test prints its report (`--nocapture` shows the number of states explored); the
//! release binary `mc` runs the larger configurations exhaustively.

use tests::mc::{self, McOptions, McReport};
use wire::Protocol;

/// A bound that keeps a crash configuration to a few seconds in a debug build.
const BOUNDED_STATES_MAX: usize = 15_000;
/// Large enough never to bind on the exhaustive configurations below.
const EXHAUSTIVE_STATES_MAX: usize = 1_000_000;

fn options(protocol: Protocol, txns: usize, crashes_max: u32, lossy: bool) -> McOptions {
    McOptions {
        protocol,
        txns,
        crashes_max,
        lossy,
        timer_firings_max: if crashes_max > 0 { 1 } else { 4 },
        depth_max: 80,
        states_max: EXHAUSTIVE_STATES_MAX,
    }
}

fn explore(name: &str, options: &McOptions) -> McReport {
    let report = mc::explore(options);
    eprintln!(
        "{name}: states={} transitions={} depth={} exhausted={} all_committed={} all_aborted={}",
        report.states,
        report.transitions,
        report.depth,
        report.exhausted,
        report.all_committed_reachable,
        report.all_aborted_reachable
    );
    report
}

fn assert_safe(report: &McReport) {
    if let Some((detail, path)) = &report.violation {
        panic!("{detail}\n{}", path.join("\n"));
    }
}

#[test]
fn two_phase_one_txn_over_lossy_links_is_atomic_and_reaches_both_outcomes() {
    let report = explore("2pc 1 txn lossy", &options(Protocol::TwoPhase, 1, 0, true));
    assert_safe(&report);
    assert!(report.exhausted);
    assert!(report.all_committed_reachable && report.all_aborted_reachable);
}

#[test]
fn two_phase_two_txns_are_atomic_and_can_both_commit() {
    let report = explore("2pc 2 txns", &options(Protocol::TwoPhase, 2, 0, false));
    assert_safe(&report);
    assert!(report.exhausted);
    assert!(report.all_committed_reachable);
}

#[test]
fn two_phase_one_txn_with_one_crash_is_atomic_and_reaches_both_outcomes() {
    let options = McOptions {
        states_max: BOUNDED_STATES_MAX,
        ..options(Protocol::TwoPhase, 1, 1, false)
    };
    let report = explore("2pc 1 txn 1 crash", &options);
    assert_safe(&report);
    assert!(report.all_committed_reachable && report.all_aborted_reachable);
}

#[test]
fn three_phase_two_txns_are_atomic_and_can_both_commit() {
    let report = explore("3pc 2 txns", &options(Protocol::ThreePhase, 2, 0, false));
    assert_safe(&report);
    assert!(report.exhausted);
    assert!(report.all_committed_reachable);
}

#[test]
fn three_phase_one_txn_with_one_crash_is_atomic_and_can_abort() {
    let options = McOptions {
        states_max: BOUNDED_STATES_MAX,
        ..options(Protocol::ThreePhase, 1, 1, false)
    };
    let report = explore("3pc 1 txn 1 crash", &options);
    assert_safe(&report);
    assert!(report.all_aborted_reachable);
}

/// A message lost without any failure (an unbounded delay) is outside 3PC's model: the
/// checker finds the split the docs describe (PreCommits lost, the coordinator's ack
/// timeout commits, the participants' waiting timeout aborts).
#[test]
fn three_phase_over_lossy_links_finds_the_known_split() {
    let report = explore(
        "3pc 1 txn lossy",
        &options(Protocol::ThreePhase, 1, 0, true),
    );
    let (detail, path) = report.violation.expect("no split found");
    assert!(detail.contains("committed and aborted"), "{detail}");
    assert!(
        path.iter().any(|line| line.contains("LOSE")),
        "{}",
        path.join("\n")
    );
}
