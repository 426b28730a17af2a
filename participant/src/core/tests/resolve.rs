//! An operator's resolve on a running participant: the heuristic record first, the locks
//! and the answer once it is durable, refusals for what is not in doubt, repeats, and the
//! stored answers afterwards (as after an offline resolve).

use expect_test::expect;
use wire::{ClientResponse, FromParticipant};

use super::*;

/// The operator's client connection.
const OPERATOR: ReplyTo = ReplyTo {
    peer: NodeId(0),
    conn: 42,
};

fn resolve(id: u64, txn: TxnId, decision: Decision, stored: Option<StoredTxn>) -> Input {
    Input::Resolve {
        from: OPERATOR,
        id: RequestId(id),
        txn,
        decision,
        note: "drill".to_string(),
        stored,
    }
}

fn heuristic(txn: TxnId, decision: Decision) -> Record {
    Record::Heuristic {
        txn,
        decision,
        reason: heuristic_reason(decision, "drill"),
    }
}

fn resolved(id: u64, txn: TxnId, decision: Decision) -> Output {
    Output::ClientReply {
        to: OPERATOR,
        id: RequestId(id),
        msg: ClientResponse::Resolved {
            txn,
            decision,
            coordinator: COORDINATOR,
        },
    }
}

/// `txn` prepared on `a` (lsn 1), then resolved by hand (request 9, lsn 2), not yet durable.
fn resolving(participant: &mut Participant, txn: TxnId, decision: Decision) {
    in_doubt_on_a(participant, 0, txn, 1, 1);
    step(
        participant,
        0,
        resolve(9, txn, decision, None),
        vec![persist(2, heuristic(txn, decision))],
    );
}

#[test]
fn a_resolve_keeps_the_locks_and_the_answer_until_its_record_is_durable() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    resolving(&mut participant, t1, Decision::Abort);
    // Its query timer is gone: nobody asks about it any more.
    assert_eq!(participant.poll_timeout(), None);
    assert_eq!(participant.locks_held(), 1);
    let reason = format!("lock conflict on key \"a\" held by txn {t1}");
    step(
        &mut participant,
        0,
        prepare(3, t2, vec![put("a", 7)], &[("a", int(1))]),
        vec![persist(3, aborted(t2, &reason)), no(3, t2, &reason)],
    );
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![resolved(9, t1, Decision::Abort)],
    );
    assert_eq!(participant.locks_held(), 0);
    // Forgotten: the store answers for it from now on.
    assert!(!participant.knows(t1));
}

#[test]
fn requests_meanwhile_are_refused_then_answered_from_the_stored_heuristic_state() {
    let mut participant = participant();
    let t1 = txn(1);
    resolving(&mut participant, t1, Decision::Abort);
    let refused = FromParticipant::Refused {
        reason: format!("txn {t1} is being resolved by hand here; ask again"),
    };
    step(
        &mut participant,
        0,
        decide(3, t1, Decision::Commit),
        vec![reply(3, refused)],
    );
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![resolved(9, t1, Decision::Abort)],
    );
    // The coordinator's commit now hears what was done by hand (it records a hazard).
    let stored_abort = stored(t1, StoredState::HeuristicAbort, Some("x"), Vec::new());
    let decide_again = Input::Decide {
        from: from_coordinator(),
        id: RequestId(4),
        txn: t1,
        decision: Decision::Commit,
        reason: None,
        stored: Some(stored_abort),
    };
    step(
        &mut participant,
        0,
        decide_again,
        vec![ack(4, t1, Outcome::HeuristicAborted)],
    );
}

#[test]
fn a_repeated_resolve_answers_the_same_and_the_opposite_is_refused() {
    let mut participant = participant();
    let t1 = txn(1);
    resolving(&mut participant, t1, Decision::Commit);
    // The same decision again waits for the same record; the opposite is refused.
    step(
        &mut participant,
        0,
        resolve(10, t1, Decision::Commit, None),
        vec![],
    );
    participant.handle(Millis(0), resolve(11, t1, Decision::Abort, None));
    expect![[r#"
        client 0/conn 42#11: Refused { reason: "txn t1 is being resolved by hand as heuristic_commit: the opposite decision is refused" }
    "#]]
    .assert_eq(&render(&drain(&mut participant)));
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![
            resolved(9, t1, Decision::Commit),
            resolved(10, t1, Decision::Commit),
        ],
    );
    // Afterwards the stored state answers: the same decision alike, the opposite refused.
    let stored_commit = || Some(stored(t1, StoredState::HeuristicCommit, None, Vec::new()));
    step(
        &mut participant,
        0,
        resolve(12, t1, Decision::Commit, stored_commit()),
        vec![resolved(12, t1, Decision::Commit)],
    );
    participant.handle(Millis(0), resolve(13, t1, Decision::Abort, stored_commit()));
    expect![[r#"
        client 0/conn 42#13: Refused { reason: "txn t1 was resolved by hand as heuristic_commit: the opposite decision is refused" }
    "#]]
    .assert_eq(&render(&drain(&mut participant)));
}

#[test]
fn what_is_not_in_doubt_is_refused_with_its_reason() {
    let t1 = txn(1);
    let stored_as = |state| Some(stored(t1, state, None, Vec::new()));
    check(
        fresh,
        resolve(9, t1, Decision::Abort, None),
        expect![[r#"
            client 0/conn 42#9: Refused { reason: "txn t1 is unknown here (never voted on, or decided and pruned): nothing to resolve" }
        "#]],
    );
    check(
        fresh,
        resolve(9, t1, Decision::Abort, stored_as(StoredState::Committed)),
        expect![[r#"
            client 0/conn 42#9: Refused { reason: "txn t1 is committed: not in doubt" }
        "#]],
    );
    check(
        fresh,
        resolve(9, t1, Decision::Commit, stored_as(StoredState::ReadOnly)),
        expect![[r#"
            client 0/conn 42#9: Refused { reason: "txn t1 is read_only: not in doubt" }
        "#]],
    );
    // Its vote's record not yet durable: it has not voted.
    let preparing = |participant: &mut Participant| {
        participant.handle(
            Millis(0),
            prepare(1, t1, vec![put("a", 5)], &[("a", int(1))]),
        );
        drain(participant);
    };
    check(
        preparing,
        resolve(9, t1, Decision::Abort, None),
        expect![[r#"
            client 0/conn 42#9: Refused { reason: "txn t1 has not voted yet: not in doubt (its coordinator decides)" }
        "#]],
    );
    // Its commit arrived and is being written.
    let committing = |participant: &mut Participant| {
        in_doubt_on_a(participant, 0, t1, 1, 1);
        participant.handle(Millis(0), decide(2, t1, Decision::Commit));
        drain(participant);
    };
    check(
        committing,
        resolve(9, t1, Decision::Abort, None),
        expect![[r#"
            client 0/conn 42#9: Refused { reason: "txn t1 is committing (its decision arrived): not in doubt" }
        "#]],
    );
    // Committed and remembered.
    let committed = |participant: &mut Participant| {
        committing(participant);
        participant.handle(Millis(0), Input::Persisted { lsn: Lsn(2) });
        drain(participant);
    };
    check(
        committed,
        resolve(9, t1, Decision::Commit, None),
        expect![[r#"
            client 0/conn 42#9: Refused { reason: "txn t1 is committed: not in doubt" }
        "#]],
    );
}

#[test]
fn a_precommitted_3pc_txn_resolved_by_hand_stops_its_timeout_and_commits_its_images() {
    let mut participant = participant();
    let t1 = txn(1);
    precommitted_txn(&mut participant, t1, &ALL, &[LOW, HIGH]);
    // A PreCommit's record being written: try again.
    check(
        |participant| {
            waiting_txn(participant, t1, &ALL, &[LOW, HIGH]);
            participant.handle(Millis(10), precommit_from(COORDINATOR, 2, t1));
            drain(participant);
        },
        resolve(9, t1, Decision::Commit, None),
        expect![[r#"
            client 0/conn 42#9: Refused { reason: "txn t1 has a record being written; try again in a moment" }
        "#]],
    );
    step(
        &mut participant,
        20,
        resolve(9, t1, Decision::Commit, None),
        vec![persist(3, heuristic(t1, Decision::Commit))],
    );
    assert_eq!(participant.poll_timeout(), None);
    fire(&mut participant, 5_000, vec![]);
    step(
        &mut participant,
        30,
        Input::Persisted { lsn: Lsn(3) },
        vec![resolved(9, t1, Decision::Commit)],
    );
    assert_eq!(participant.locks_held(), 0);
}

fn drain(participant: &mut Participant) -> Vec<Output> {
    let outputs = std::iter::from_fn(|| participant.poll_output()).collect();
    assert_eq!(participant.check_invariants(), Ok(()));
    outputs
}
