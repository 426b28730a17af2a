//! `check_invariants` catches planted breaks of the rules it checks (each would be a bug
//! in the handlers), so it can fail.

use super::*;
use crate::core::txn::{PartState, Phase};

/// `setup`'s core passes the check, and fails it once `break_it` has run.
fn caught(setup: fn() -> Coordinator, break_it: fn(&mut Coordinator)) -> bool {
    let mut core = setup();
    assert_eq!(core.check_invariants(), Ok(()));
    break_it(&mut core);
    core.check_invariants().is_err()
}

fn t1(core: &mut Coordinator) -> &mut crate::core::txn::Txn {
    core.txns.get_mut(&txn_id(T1)).expect("T1 is tracked")
}

#[test]
fn check_invariants_catches_a_commit_whose_record_is_not_pending() {
    // The core forgets it is still waiting for the commit record.
    assert!(caught(transfer_voted_yes, |core| core.pending.clear()));
}

#[test]
fn check_invariants_catches_a_committing_txn_with_a_no_vote() {
    assert!(caught(transfer_commit_durable, |core| {
        t1(core).parts[0].state = PartState::No;
    }));
}

#[test]
fn check_invariants_catches_a_two_phase_txn_in_a_three_phase_phase() {
    assert!(caught(transfer_commit_durable, |core| {
        let txn = t1(core);
        txn.phase = Phase::Resolving {
            resend_at: Millis(1),
        };
        for part in &mut txn.parts {
            part.state = PartState::AwaitingState;
        }
    }));
}

#[test]
fn check_invariants_catches_docommit_while_a_precommit_ack_is_awaited() {
    assert!(caught(transfer3_precommitted, |core| {
        t1(core).parts[0].state = PartState::AwaitingAck;
    }));
}
