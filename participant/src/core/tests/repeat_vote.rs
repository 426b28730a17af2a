//! A repeated Prepare gets the same vote: while its record is pending, after the vote,
//! after the outcome, from the store; and duplicate waiters stay bounded.

use wire::FromParticipant;

use super::*;

#[test]
fn duplicate_prepare_while_persisting_gets_yes_once_durable() {
    let mut participant = participant();
    let t1 = txn(1);
    let ops = vec![put("a", 5)];
    step(
        &mut participant,
        0,
        prepare(1, t1, ops.clone(), &[("a", None)]),
        vec![persist(
            1,
            prepared(t1, vec![entry(0, "a", OpKind::Put, None, int(5))]),
        )],
    );
    step(
        &mut participant,
        0,
        prepare(2, t1, ops, &[("a", None)]),
        vec![],
    );
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![
            vote(1, t1, Vote::Yes, vec![]),
            vote(2, t1, Vote::Yes, vec![]),
        ],
    );
}

#[test]
fn duplicate_prepare_after_the_vote_repeats_it_without_a_record() {
    let mut participant = participant();
    let (t1, t2) = (txn(1), txn(2));
    in_doubt_on_a(&mut participant, 0, t1, 1, 1);
    step(
        &mut participant,
        0,
        prepare(2, t1, vec![put("a", 5)], &[("a", int(1))]),
        vec![vote(2, t1, Vote::Yes, vec![])],
    );
    let reason = "adding -5 to key \"b\" would make it -5, below the minimum 0";
    step(
        &mut participant,
        0,
        prepare(3, t2, vec![add("b", -5, Some(0), None)], &[("b", None)]),
        vec![persist(2, aborted(t2, reason)), no(3, t2, reason)],
    );
    step(
        &mut participant,
        0,
        prepare(4, t2, vec![add("b", -5, Some(0), None)], &[("b", int(100))]),
        vec![no(4, t2, reason)],
    );
}

#[test]
fn prepare_after_commit_repeats_yes_with_the_reads() {
    let mut participant = participant();
    let t1 = txn(1);
    step(
        &mut participant,
        0,
        prepare(
            1,
            t1,
            vec![get("g"), put("a", 5)],
            &[("g", int(2)), ("a", None)],
        ),
        vec![persist(
            1,
            prepared(
                t1,
                vec![
                    entry(0, "g", OpKind::Get, int(2), int(2)),
                    entry(1, "a", OpKind::Put, None, int(5)),
                ],
            ),
        )],
    );
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        vec![vote(1, t1, Vote::Yes, vec![read("g", int(2))])],
    );
    step(
        &mut participant,
        0,
        decide(2, t1, Decision::Commit),
        vec![persist(2, Record::Committed { txn: t1 })],
    );
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(2) },
        vec![ack(2, t1, Outcome::Committed)],
    );
    step(
        &mut participant,
        0,
        prepare(3, t1, vec![], &[]),
        vec![vote(3, t1, Vote::Yes, vec![read("g", int(2))])],
    );
}

#[test]
fn a_stored_read_only_vote_is_repeated_with_fresh_reads() {
    let mut participant = participant();
    let t1 = txn(1);
    let mut input = prepare2_with(1, t1, vec![get("g")], &[ME, LOW]);
    if let Input::Prepare { stored, .. } = &mut input {
        *stored = Some(StoredTxn {
            txn: t1,
            protocol: Protocol::TwoPhase,
            coordinator: COORDINATOR,
            state: StoredState::ReadOnly,
            reason: None,
            entries: vec![],
            participants: vec![],
        });
    }
    step(
        &mut participant,
        0,
        input,
        vec![vote(1, t1, Vote::ReadOnly, vec![read("g", int(1))])],
    );
    assert!(!participant.knows(t1));
}

/// The oldest waiter pushed out is answered, not forgotten: an unanswered request would
/// hold one of the coordinator's in-flight slots for as long as the connection lives.
#[test]
fn too_many_duplicate_waiters_answer_the_oldest_as_superseded() {
    let mut participant = participant();
    let t1 = txn(1);
    step(
        &mut participant,
        0,
        prepare(0, t1, vec![put("a", 5)], &[("a", None)]),
        vec![persist(
            1,
            prepared(t1, vec![entry(0, "a", OpKind::Put, None, int(5))]),
        )],
    );
    // Request 0 waits too: these fill the table up to the bound.
    let duplicates = WAITERS_PER_TXN_MAX as u64;
    for id in 1..duplicates {
        step(
            &mut participant,
            0,
            prepare(id, t1, vec![put("a", 5)], &[("a", None)]),
            vec![],
        );
    }
    let superseded = FromParticipant::Refused {
        reason: SUPERSEDED_REASON.to_string(),
    };
    step(
        &mut participant,
        0,
        prepare(duplicates, t1, vec![put("a", 5)], &[("a", None)]),
        vec![reply(0, superseded)],
    );
    step(
        &mut participant,
        0,
        Input::Persisted { lsn: Lsn(1) },
        (1..=duplicates)
            .map(|id| vote(id, t1, Vote::Yes, vec![]))
            .collect(),
    );
}
