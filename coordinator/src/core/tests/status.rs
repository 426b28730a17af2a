//! The status queries: phases per protocol, work per participant, undecided and
//! decided-but-not-ended transactions.

use expect_test::{Expect, expect};

use super::*;

/// Every status query of `core`, one per line.
fn status_text(core: &Coordinator) -> String {
    format!(
        "by phase: {:?}\nby protocol and phase: {:?}\nby peer: {:?}\nundecided: {:?}\n\
         decided not ended: {:?}\nup: {:?}\n",
        core.txns_by_phase(),
        core.txns_by_protocol_and_phase(),
        core.in_flight_by_peer(),
        core.undecided()
            .map(|txn| txn_text(&txn))
            .collect::<Vec<_>>(),
        core.decided_not_ended()
            .map(|txn| txn_text(&txn))
            .collect::<Vec<_>>(),
        (1..=4).filter(|&p| core.is_up(n(p))).collect::<Vec<_>>(),
    )
}

fn check_status(core: &mut Coordinator, steps: Vec<Step>, expect: Expect) {
    apply(core, steps);
    expect.assert_eq(&status_text(core));
}

/// A second transaction, 2PC on 2 and 3, still collecting.
fn submit_t2() -> Step {
    at(
        30,
        submit(
            2,
            spec(vec![(2, vec![add("x", 1)]), (3, vec![add("y", 1)])]),
        ),
    )
}

#[test]
fn status_reports_phases_and_per_peer_work() {
    let mut core = transfer_voted_yes();
    check_status(
        &mut core,
        vec![submit_t2()],
        expect![[r#"
        by phase: {Collecting: 1, Logging: 1}
        by protocol and phase: {("2pc", Collecting): 1, ("2pc", Logging): 1}
        by peer: {NodeId(1): 0, NodeId(2): 1, NodeId(3): 1}
        undecided: ["t1", "t2"]
        decided not ended: []
        up: [1, 2, 3]
    "#]],
    );
    check_status(
        &mut core,
        vec![at(31, persisted(1))],
        expect![[r#"
        by phase: {Collecting: 1, Committing: 1}
        by protocol and phase: {("2pc", Collecting): 1, ("2pc", Committing): 1}
        by peer: {NodeId(1): 1, NodeId(2): 2, NodeId(3): 1}
        undecided: ["t2"]
        decided not ended: ["t1"]
        up: [1, 2, 3]
    "#]],
    );
}

#[test]
fn three_phase_status_counts_phases_per_protocol() {
    let mut core = transfer3_precommitted();
    check_status(
        &mut core,
        vec![submit_t2()],
        expect![[r#"
        by phase: {Collecting: 1, PreCommitting: 1}
        by protocol and phase: {("2pc", Collecting): 1, ("3pc", PreCommitting): 1}
        by peer: {NodeId(1): 1, NodeId(2): 2, NodeId(3): 1}
        undecided: ["t2"]
        decided not ended: ["t1"]
        up: [1, 2, 3]
    "#]],
    );
}
