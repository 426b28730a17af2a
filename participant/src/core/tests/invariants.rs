//! check_invariants reports a broken state instead of passing it.

use super::*;

#[test]
fn check_invariants_reports_a_lock_no_txn_holds() {
    let mut participant = participant();
    participant
        .locks
        .acquire(txn(1), "a", crate::core::locks::Mode::Exclusive);
    assert_eq!(
        participant.check_invariants(),
        Err(InvariantViolation(
            "lock on \"a\" held by no txn that touches it".to_string()
        ))
    );
}

#[test]
fn check_invariants_reports_a_timer_of_no_txn() {
    let mut participant = participant();
    participant.timers.insert((Millis(5), txn(1)));
    let violation = participant.check_invariants().expect_err("a stray timer");
    assert!(
        violation
            .to_string()
            .starts_with("participant invariant violated: timers differ from the txns' timers"),
        "{violation}"
    );
}
