//! Core unit tests: one input in, the exact outputs out, invariants checked after every step.

use std::collections::BTreeMap;

use uuid::Uuid;
use wire::{
    Answer, Decision, NodeId, Op, Outcome, Protocol, Read, RequestId, TxnId, TxnResult, TxnSpec,
    Value, Vote,
};

use super::*;

mod three_phase;

const CLIENT: ClientRef = ClientRef {
    channel: 7,
    request: 1,
};
const TIMEOUT_MS: u64 = 500;

fn n(id: u32) -> NodeId {
    NodeId(id)
}

fn txn_id(i: u128) -> TxnId {
    TxnId(Uuid::from_u128(i))
}

const T1: u128 = 1;

/// A core with participants 1, 2, 3 configured and up.
fn coordinator() -> Coordinator {
    let mut core = Coordinator::new(Config::new([n(1), n(2), n(3)]));
    for peer in 1..=3 {
        step(&mut core, 0, Input::PeerUp { peer: n(peer) });
    }
    core
}

fn step(core: &mut Coordinator, now: u64, input: Input) -> Vec<Output> {
    core.handle(Millis(now), input);
    drain(core)
}

fn tick(core: &mut Coordinator, now: u64) -> Vec<Output> {
    core.handle_timeout(Millis(now));
    drain(core)
}

fn drain(core: &mut Coordinator) -> Vec<Output> {
    let outputs: Vec<Output> = std::iter::from_fn(|| core.poll_output()).collect();
    if let Err(violation) = core.check_invariants() {
        panic!("{violation}");
    }
    outputs
}

fn add(key: &str, delta: i64) -> Op {
    Op::Add {
        key: key.to_string(),
        delta,
        min: Some(0),
        max: None,
    }
}

fn get(key: &str) -> Op {
    Op::Get {
        key: key.to_string(),
    }
}

fn spec(parts: Vec<(u32, Vec<Op>)>) -> TxnSpec {
    TxnSpec {
        protocol: Protocol::TwoPhase,
        timeout_ms: TIMEOUT_MS,
        parts: parts.into_iter().map(|(id, ops)| (n(id), ops)).collect(),
    }
}

/// A bank transfer: 5 from alice on 1 to bob on 2.
fn transfer() -> TxnSpec {
    spec(vec![(1, vec![add("alice", -5)]), (2, vec![add("bob", 5)])])
}

fn submit(txn: u128, spec: TxnSpec) -> Input {
    Input::Submit {
        client: CLIENT,
        txn: txn_id(txn),
        spec,
    }
}

/// The Prepare of a `transfer()` (participants 1 and 2).
fn prepare_to(to: u32, txn: u128, ops: Vec<Op>) -> Output {
    Output::Send {
        to: n(to),
        msg: ToParticipant::Prepare {
            txn: txn_id(txn),
            protocol: Protocol::TwoPhase,
            ops,
            timeout_ms: TIMEOUT_MS,
            participants: vec![n(1), n(2)],
        },
    }
}

fn release_to(to: u32, txn: u128) -> Output {
    Output::Send {
        to: n(to),
        msg: ToParticipant::Release { txn: txn_id(txn) },
    }
}

fn decide_to(to: u32, txn: u128, decision: Decision) -> Output {
    Output::Send {
        to: n(to),
        msg: ToParticipant::Decide {
            txn: txn_id(txn),
            decision,
        },
    }
}

fn vote(from: u32, txn: u128, vote: Vote) -> Input {
    vote_reads(from, txn, vote, vec![])
}

fn vote_reads(from: u32, txn: u128, vote: Vote, reads: Vec<Read>) -> Input {
    Input::Response {
        from: n(from),
        msg: FromParticipant::Vote {
            txn: txn_id(txn),
            vote,
            reads,
        },
    }
}

fn ack(from: u32, txn: u128) -> Input {
    Input::Response {
        from: n(from),
        msg: FromParticipant::Ack {
            txn: txn_id(txn),
            outcome: Outcome::Committed,
        },
    }
}

fn persist_decided(lsn: u64, txn: u128, participants: &[u32]) -> Output {
    Output::Persist {
        lsn: Lsn(lsn),
        record: Record::Decided {
            txn: txn_id(txn),
            protocol: Protocol::TwoPhase,
            decision: Decision::Commit,
            participants: participants.iter().map(|&p| n(p)).collect(),
        },
    }
}

fn persist_ended(lsn: u64, txn: u128) -> Output {
    Output::Persist {
        lsn: Lsn(lsn),
        record: Record::Ended { txn: txn_id(txn) },
    }
}

fn result(txn: u128, result: TxnResult) -> Output {
    Output::ClientResult {
        client: CLIENT,
        txn: txn_id(txn),
        result,
    }
}

fn committed(txn: u128) -> Output {
    result(txn, TxnResult::Committed { reads: vec![] })
}

fn aborted(txn: u128, reason: &str) -> Output {
    result(
        txn,
        TxnResult::Aborted {
            reason: reason.to_string(),
        },
    )
}

fn rejected(txn: u128, reason: &str) -> Output {
    result(
        txn,
        TxnResult::Rejected {
            reason: reason.to_string(),
        },
    )
}

fn query(from: u32, id: u64, txn: u128) -> Input {
    Input::Request {
        from: n(from),
        id: RequestId(id),
        msg: ToCoordinator::DecisionQuery { txn: txn_id(txn) },
    }
}

fn answer(to: u32, id: u64, txn: u128, answer: Answer) -> Output {
    Output::Reply {
        to: n(to),
        id: RequestId(id),
        msg: FromCoordinator::DecisionAnswer {
            txn: txn_id(txn),
            answer,
        },
    }
}

/// Submits the transfer and delivers both Yes votes: the commit record is handed out (lsn 1).
fn transfer_voted_yes(core: &mut Coordinator) {
    step(core, 0, submit(T1, transfer()));
    step(core, 10, vote(1, T1, Vote::Yes));
    assert_eq!(
        step(core, 11, vote(2, T1, Vote::Yes)),
        vec![persist_decided(1, T1, &[1, 2])]
    );
}

/// ... and the commit record is durable: Decide{Commit} went out at time 20.
fn transfer_commit_durable(core: &mut Coordinator) {
    transfer_voted_yes(core);
    assert_eq!(
        step(core, 20, Input::Persisted { lsn: Lsn(1) }),
        vec![
            decide_to(1, T1, Decision::Commit),
            decide_to(2, T1, Decision::Commit)
        ]
    );
}

#[test]
fn submit_sends_prepare_to_every_participant() {
    let mut core = coordinator();
    assert_eq!(
        step(&mut core, 0, submit(T1, transfer())),
        vec![
            prepare_to(1, T1, vec![add("alice", -5)]),
            prepare_to(2, T1, vec![add("bob", 5)]),
        ]
    );
    assert_eq!(core.poll_timeout(), Some(Millis(TIMEOUT_MS)));
}

#[test]
fn all_yes_persists_commit_and_sends_nothing_before_it_is_durable() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer()));
    assert_eq!(step(&mut core, 10, vote(1, T1, Vote::Yes)), vec![]);
    assert_eq!(
        step(&mut core, 11, vote(2, T1, Vote::Yes)),
        vec![persist_decided(1, T1, &[1, 2])]
    );
    // While the record is not durable: no timeout, and queries say Undecided.
    assert_eq!(core.poll_timeout(), None);
    assert_eq!(tick(&mut core, 100_000), vec![]);
    assert_eq!(
        step(&mut core, 12, query(1, 9, T1)),
        vec![answer(1, 9, T1, Answer::Undecided)]
    );
    assert_eq!(
        step(&mut core, 20, Input::Persisted { lsn: Lsn(1) }),
        vec![
            decide_to(1, T1, Decision::Commit),
            decide_to(2, T1, Decision::Commit)
        ]
    );
}

#[test]
fn happy_path_commits_after_all_acks_and_ends_lazily() {
    let mut core = coordinator();
    transfer_commit_durable(&mut core);
    assert_eq!(step(&mut core, 21, ack(1, T1)), vec![]);
    assert_eq!(
        step(&mut core, 22, ack(2, T1)),
        vec![committed(T1), persist_ended(2, T1)]
    );
    assert_eq!(core.txns_in_flight(), 1, "the end record is still pending");
    assert_eq!(
        step(&mut core, 23, Input::Persisted { lsn: Lsn(2) }),
        vec![]
    );
    assert_eq!(core.txns_in_flight(), 0);
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn reads_of_yes_voters_are_returned_with_the_commit() {
    let mut core = coordinator();
    let reads = vec![Read {
        key: "alice".to_string(),
        value: Some(Value::Int(95)),
    }];
    step(
        &mut core,
        0,
        submit(
            T1,
            spec(vec![
                (1, vec![add("alice", -5), get("alice")]),
                (2, vec![add("bob", 5)]),
            ]),
        ),
    );
    step(&mut core, 1, vote_reads(1, T1, Vote::Yes, reads.clone()));
    step(&mut core, 2, vote(2, T1, Vote::Yes));
    step(&mut core, 3, Input::Persisted { lsn: Lsn(1) });
    step(&mut core, 4, ack(1, T1));
    assert_eq!(
        step(&mut core, 5, ack(2, T1)),
        vec![
            result(
                T1,
                TxnResult::Committed {
                    reads: vec![(n(1), reads)]
                }
            ),
            persist_ended(2, T1),
        ]
    );
}

#[test]
fn no_vote_aborts_and_tells_only_those_that_may_have_prepared() {
    let mut core = coordinator();
    step(
        &mut core,
        0,
        submit(
            T1,
            spec(vec![
                (1, vec![add("a", -5)]),
                (2, vec![add("b", 5)]),
                (3, vec![add("c", 1)]),
            ]),
        ),
    );
    step(&mut core, 1, vote(1, T1, Vote::Yes));
    assert_eq!(
        step(
            &mut core,
            2,
            vote(
                2,
                T1,
                Vote::No {
                    reason: "add on b would leave -1 below min 0".to_string()
                }
            )
        ),
        vec![
            decide_to(1, T1, Decision::Abort),
            decide_to(3, T1, Decision::Abort),
            aborted(
                T1,
                "participant 2 voted no: add on b would leave -1 below min 0"
            ),
        ]
    );
    assert_eq!(core.txns_in_flight(), 0);
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn read_only_voter_gets_release_not_decide_at_abort() {
    let mut core = coordinator();
    step(
        &mut core,
        0,
        submit(T1, spec(vec![(1, vec![get("a")]), (2, vec![add("b", 5)])])),
    );
    step(&mut core, 1, vote(1, T1, Vote::ReadOnly));
    assert_eq!(
        step(
            &mut core,
            2,
            vote(
                2,
                T1,
                Vote::No {
                    reason: "lock conflict".to_string()
                }
            )
        ),
        vec![
            release_to(1, T1),
            aborted(T1, "participant 2 voted no: lock conflict")
        ]
    );
}

#[test]
fn missing_vote_at_timeout_aborts() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer()));
    step(&mut core, 10, vote(1, T1, Vote::Yes));
    assert_eq!(tick(&mut core, TIMEOUT_MS - 1), vec![]);
    assert_eq!(
        tick(&mut core, TIMEOUT_MS),
        vec![
            decide_to(1, T1, Decision::Abort),
            decide_to(2, T1, Decision::Abort),
            aborted(T1, "timeout waiting for votes from participant 2"),
        ]
    );
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn timeout_names_every_missing_participant() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer()));
    assert_eq!(
        tick(&mut core, TIMEOUT_MS),
        vec![
            decide_to(1, T1, Decision::Abort),
            decide_to(2, T1, Decision::Abort),
            aborted(T1, "timeout waiting for votes from participants 1, 2"),
        ]
    );
}

#[test]
fn participant_down_while_collecting_aborts_at_once() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer()));
    step(&mut core, 1, vote(1, T1, Vote::Yes));
    assert_eq!(
        step(&mut core, 2, Input::PeerDown { peer: n(2) }),
        vec![
            decide_to(1, T1, Decision::Abort),
            aborted(T1, "participant 2 is down")
        ]
    );
}

#[test]
fn participant_down_after_voting_does_not_abort() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer()));
    step(&mut core, 1, vote(2, T1, Vote::Yes));
    assert_eq!(step(&mut core, 2, Input::PeerDown { peer: n(2) }), vec![]);
    assert_eq!(
        step(&mut core, 3, vote(1, T1, Vote::Yes)),
        vec![persist_decided(1, T1, &[1, 2])]
    );
    // Participant 2 is down: Commit goes only to 1, and to 2 once it is back.
    assert_eq!(
        step(&mut core, 4, Input::Persisted { lsn: Lsn(1) }),
        vec![decide_to(1, T1, Decision::Commit)]
    );
    assert_eq!(
        step(&mut core, 5, Input::PeerUp { peer: n(2) }),
        vec![decide_to(2, T1, Decision::Commit)]
    );
}

#[test]
fn participant_down_at_submit_aborts_without_sending() {
    let mut core = coordinator();
    step(&mut core, 0, Input::PeerDown { peer: n(2) });
    assert_eq!(
        step(&mut core, 1, submit(T1, transfer())),
        vec![aborted(T1, "participant 2 is down")]
    );
    assert_eq!(core.txns_in_flight(), 0);
}

#[test]
fn all_read_only_commits_with_reads_and_logs_nothing() {
    let mut core = coordinator();
    let read = |key: &str, v: i64| Read {
        key: key.to_string(),
        value: Some(Value::Int(v)),
    };
    step(
        &mut core,
        0,
        submit(T1, spec(vec![(1, vec![get("a")]), (2, vec![get("b")])])),
    );
    step(
        &mut core,
        1,
        vote_reads(1, T1, Vote::ReadOnly, vec![read("a", 1)]),
    );
    assert_eq!(
        step(
            &mut core,
            2,
            vote_reads(2, T1, Vote::ReadOnly, vec![read("b", 2)])
        ),
        vec![
            release_to(1, T1),
            release_to(2, T1),
            result(
                T1,
                TxnResult::Committed {
                    reads: vec![(n(1), vec![read("a", 1)]), (n(2), vec![read("b", 2)])]
                }
            )
        ]
    );
    assert_eq!(core.txns_in_flight(), 0);
}

#[test]
fn read_only_voter_is_released_when_the_last_vote_arrives_not_logged_or_sent_commit() {
    let mut core = coordinator();
    step(
        &mut core,
        0,
        submit(T1, spec(vec![(1, vec![get("a")]), (2, vec![add("b", 5)])])),
    );
    step(&mut core, 1, vote(1, T1, Vote::ReadOnly));
    // The lock point: the release goes before the commit record is even asked for.
    assert_eq!(
        step(&mut core, 2, vote(2, T1, Vote::Yes)),
        vec![release_to(1, T1), persist_decided(1, T1, &[2])]
    );
    assert_eq!(
        step(&mut core, 3, Input::Persisted { lsn: Lsn(1) }),
        vec![decide_to(2, T1, Decision::Commit)]
    );
    assert_eq!(
        step(&mut core, 4, ack(2, T1)),
        vec![committed(T1), persist_ended(2, T1)]
    );
}

#[test]
fn duplicate_votes_are_ignored() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer()));
    step(&mut core, 1, vote(1, T1, Vote::Yes));
    assert_eq!(step(&mut core, 2, vote(1, T1, Vote::Yes)), vec![]);
    assert_eq!(
        step(
            &mut core,
            3,
            vote(
                1,
                T1,
                Vote::No {
                    reason: "late change of mind".to_string()
                }
            )
        ),
        vec![]
    );
    step(&mut core, 4, vote(2, T1, Vote::Yes));
    // After the decision, during logging and after it: still nothing.
    assert_eq!(step(&mut core, 5, vote(2, T1, Vote::Yes)), vec![]);
    step(&mut core, 6, Input::Persisted { lsn: Lsn(1) });
    assert_eq!(
        step(
            &mut core,
            7,
            vote(
                2,
                T1,
                Vote::No {
                    reason: "x".to_string()
                }
            )
        ),
        vec![]
    );
}

#[test]
fn late_votes_and_acks_for_forgotten_txns_are_ignored() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer()));
    tick(&mut core, TIMEOUT_MS);
    assert_eq!(
        step(&mut core, TIMEOUT_MS + 1, vote(1, T1, Vote::Yes)),
        vec![]
    );
    assert_eq!(step(&mut core, TIMEOUT_MS + 2, ack(1, T1)), vec![]);
    assert_eq!(
        step(&mut core, TIMEOUT_MS + 3, vote(1, 99, Vote::Yes)),
        vec![]
    );
}

#[test]
fn vote_from_a_non_participant_is_ignored() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer()));
    assert_eq!(
        step(
            &mut core,
            1,
            vote(
                3,
                T1,
                Vote::No {
                    reason: "x".to_string()
                }
            )
        ),
        vec![]
    );
    assert_eq!(
        core.txns_by_phase(),
        BTreeMap::from([(TxnPhase::Collecting, 1)])
    );
}

#[test]
fn duplicate_acks_are_ignored() {
    let mut core = coordinator();
    transfer_commit_durable(&mut core);
    step(&mut core, 21, ack(1, T1));
    assert_eq!(step(&mut core, 22, ack(1, T1)), vec![]);
    step(&mut core, 23, ack(2, T1));
    assert_eq!(step(&mut core, 24, ack(2, T1)), vec![]);
}

#[test]
fn ack_before_the_decision_is_durable_is_ignored() {
    let mut core = coordinator();
    transfer_voted_yes(&mut core);
    assert_eq!(step(&mut core, 12, ack(1, T1)), vec![]);
    // The ack did not count: after Persisted both acks are still needed.
    step(&mut core, 20, Input::Persisted { lsn: Lsn(1) });
    assert_eq!(step(&mut core, 21, ack(2, T1)), vec![]);
    assert_eq!(
        step(&mut core, 22, ack(1, T1)),
        vec![committed(T1), persist_ended(2, T1)]
    );
}

#[test]
fn missing_ack_tells_the_client_committed_after_the_timeout_and_resends() {
    let mut core = coordinator();
    transfer_commit_durable(&mut core);
    step(&mut core, 21, ack(1, T1));
    assert_eq!(core.poll_timeout(), Some(Millis(20 + TIMEOUT_MS)));
    assert_eq!(tick(&mut core, 20 + TIMEOUT_MS), vec![committed(T1)]);
    let resend_at = 20 + DECIDE_RESEND_MS_DEFAULT;
    assert_eq!(core.poll_timeout(), Some(Millis(resend_at)));
    assert_eq!(
        tick(&mut core, resend_at),
        vec![decide_to(2, T1, Decision::Commit)]
    );
    assert_eq!(
        core.poll_timeout(),
        Some(Millis(resend_at + DECIDE_RESEND_MS_DEFAULT))
    );
    // The ack finally arrives: the end is logged, the client is not told twice.
    assert_eq!(
        step(&mut core, resend_at + 1, ack(2, T1)),
        vec![persist_ended(2, T1)]
    );
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn decision_query_in_each_phase() {
    let mut core = coordinator();
    // Unknown: presumed abort.
    assert_eq!(
        step(&mut core, 0, query(1, 1, T1)),
        vec![answer(1, 1, T1, Answer::Abort)]
    );
    step(&mut core, 0, submit(T1, transfer()));
    assert_eq!(
        step(&mut core, 1, query(1, 2, T1)),
        vec![answer(1, 2, T1, Answer::Undecided)]
    );
    step(&mut core, 2, vote(1, T1, Vote::Yes));
    step(&mut core, 3, vote(2, T1, Vote::Yes));
    assert_eq!(
        step(&mut core, 4, query(1, 3, T1)),
        vec![answer(1, 3, T1, Answer::Undecided)]
    );
    step(&mut core, 5, Input::Persisted { lsn: Lsn(1) });
    assert_eq!(
        step(&mut core, 6, query(2, 4, T1)),
        vec![answer(2, 4, T1, Answer::Commit)]
    );
    step(&mut core, 7, ack(1, T1));
    step(&mut core, 8, ack(2, T1));
    // Ended and forgotten: every participant has applied the commit, none will ask.
    assert_eq!(
        step(&mut core, 9, query(2, 5, T1)),
        vec![answer(2, 5, T1, Answer::Abort)]
    );
}

#[test]
fn decision_query_for_an_aborted_txn_answers_abort() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer()));
    step(
        &mut core,
        1,
        vote(
            2,
            T1,
            Vote::No {
                reason: "x".to_string(),
            },
        ),
    );
    assert_eq!(
        step(&mut core, 2, query(1, 1, T1)),
        vec![answer(1, 1, T1, Answer::Abort)]
    );
}

#[test]
fn peer_up_resends_prepare_to_a_participant_whose_vote_is_missing() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer()));
    step(&mut core, 1, vote(1, T1, Vote::Yes));
    // A reconnect (Up without Down: the old channel was replaced).
    assert_eq!(
        step(&mut core, 2, Input::PeerUp { peer: n(2) }),
        vec![prepare_to(2, T1, vec![add("bob", 5)])]
    );
    assert_eq!(step(&mut core, 3, Input::PeerUp { peer: n(1) }), vec![]);
}

#[test]
fn peer_up_resends_commit_to_a_participant_whose_ack_is_missing() {
    let mut core = coordinator();
    transfer_commit_durable(&mut core);
    step(&mut core, 21, ack(1, T1));
    assert_eq!(step(&mut core, 22, Input::PeerUp { peer: n(1) }), vec![]);
    assert_eq!(
        step(&mut core, 23, Input::PeerUp { peer: n(2) }),
        vec![decide_to(2, T1, Decision::Commit)]
    );
}

#[test]
fn recovered_commits_are_resent_as_participants_come_up() {
    let mut core = Coordinator::new(Config::new([n(1), n(2), n(3)]));
    assert_eq!(
        step(
            &mut core,
            0,
            Input::Recovered {
                txns: vec![RecoveredTxn {
                    txn: txn_id(T1),
                    protocol: Protocol::TwoPhase,
                    participants: vec![n(1), n(3)],
                }]
            }
        ),
        vec![]
    );
    assert_eq!(
        step(&mut core, 1, query(3, 1, T1)),
        vec![answer(3, 1, T1, Answer::Commit)]
    );
    assert_eq!(step(&mut core, 2, Input::PeerUp { peer: n(2) }), vec![]);
    assert_eq!(
        step(&mut core, 3, Input::PeerUp { peer: n(3) }),
        vec![decide_to(3, T1, Decision::Commit)]
    );
    assert_eq!(step(&mut core, 4, ack(3, T1)), vec![]);
    assert_eq!(
        step(&mut core, 5, Input::PeerUp { peer: n(1) }),
        vec![decide_to(1, T1, Decision::Commit)]
    );
    // No client to tell: only the end record.
    assert_eq!(step(&mut core, 6, ack(1, T1)), vec![persist_ended(1, T1)]);
}

#[test]
fn recovered_commit_is_sent_at_once_to_participants_already_up() {
    let mut core = coordinator();
    assert_eq!(
        step(
            &mut core,
            0,
            Input::Recovered {
                txns: vec![RecoveredTxn {
                    txn: txn_id(T1),
                    protocol: Protocol::TwoPhase,
                    participants: vec![n(2)],
                }]
            }
        ),
        vec![decide_to(2, T1, Decision::Commit)]
    );
    assert_eq!(
        core.decided_not_ended().collect::<Vec<_>>(),
        vec![txn_id(T1)]
    );
}

#[test]
fn send_queue_full_on_prepare_aborts_with_overload_reason() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer()));
    assert_eq!(
        step(
            &mut core,
            1,
            Input::SendFailed {
                to: n(2),
                txn: txn_id(T1),
                failure: SendFailure::Overloaded
            }
        ),
        vec![
            decide_to(1, T1, Decision::Abort),
            aborted(T1, "participant 2 is overloaded: its send queue is full"),
        ]
    );
}

#[test]
fn send_failure_on_commit_waits_for_the_resend() {
    let mut core = coordinator();
    transfer_commit_durable(&mut core);
    assert_eq!(
        step(
            &mut core,
            21,
            Input::SendFailed {
                to: n(2),
                txn: txn_id(T1),
                failure: SendFailure::Overloaded
            }
        ),
        vec![]
    );
    assert_eq!(core.decided_not_ended().count(), 1);
}

#[test]
fn status_accessors_report_phases_and_per_peer_work() {
    let mut core = coordinator();
    transfer_voted_yes(&mut core);
    step(
        &mut core,
        30,
        submit(
            2,
            spec(vec![(2, vec![add("x", 1)]), (3, vec![add("y", 1)])]),
        ),
    );
    assert_eq!(
        core.txns_by_phase(),
        BTreeMap::from([(TxnPhase::Collecting, 1), (TxnPhase::Logging, 1)])
    );
    assert_eq!(
        core.in_flight_by_peer(),
        BTreeMap::from([(n(1), 0), (n(2), 1), (n(3), 1)])
    );
    assert_eq!(
        core.undecided().collect::<Vec<_>>(),
        vec![txn_id(1), txn_id(2)]
    );
    step(&mut core, 31, Input::Persisted { lsn: Lsn(1) });
    assert_eq!(
        core.in_flight_by_peer(),
        BTreeMap::from([(n(1), 1), (n(2), 2), (n(3), 1)])
    );
    assert_eq!(
        core.decided_not_ended().collect::<Vec<_>>(),
        vec![txn_id(1)]
    );
    assert!(core.is_up(n(1)));
}

// ---- validation ----

fn submit_rejected(spec: TxnSpec) -> Vec<Output> {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, spec))
}

#[test]
fn rejects_empty_transaction() {
    assert_eq!(
        submit_rejected(spec(vec![])),
        vec![rejected(T1, "transaction has no participants")]
    );
}

#[test]
fn rejects_participant_without_operations() {
    assert_eq!(
        submit_rejected(spec(vec![(1, vec![add("a", 1)]), (2, vec![])])),
        vec![rejected(T1, "participant 2 has no operations")]
    );
}

#[test]
fn rejects_participant_named_twice() {
    assert_eq!(
        submit_rejected(spec(vec![(1, vec![get("a")]), (1, vec![get("b")])])),
        vec![rejected(T1, "participant 1 appears twice")]
    );
}

#[test]
fn rejects_unknown_participant() {
    assert_eq!(
        submit_rejected(spec(vec![(7, vec![get("a")])])),
        vec![rejected(T1, "unknown participant 7")]
    );
}

#[test]
fn rejects_too_many_operations() {
    let ops = vec![get("a"); OPS_PER_TXN_MAX_DEFAULT + 1];
    assert_eq!(
        submit_rejected(spec(vec![(1, ops)])),
        vec![rejected(
            T1,
            "too many operations: more than 1000 in one transaction"
        )]
    );
}

#[test]
fn rejects_oversized_key_and_value_and_empty_key() {
    let long_key = "k".repeat(KEY_BYTES_MAX_DEFAULT + 1);
    assert_eq!(
        submit_rejected(spec(vec![(1, vec![get("a"), get(&long_key)])])),
        vec![rejected(
            T1,
            "participant 1, op 2: key is 1025 bytes, limit 1024"
        )]
    );
    let put = Op::Put {
        key: "a".to_string(),
        value: Value::Text("v".repeat(VALUE_BYTES_MAX_DEFAULT + 1)),
    };
    assert_eq!(
        submit_rejected(spec(vec![(2, vec![put])])),
        vec![rejected(
            T1,
            "participant 2, op 1: value is 8193 bytes, limit 8192"
        )]
    );
    assert_eq!(
        submit_rejected(spec(vec![(1, vec![get("")])])),
        vec![rejected(T1, "participant 1, op 1: empty key")]
    );
}

#[test]
fn rejects_empty_add_bounds() {
    let op = Op::Add {
        key: "a".to_string(),
        delta: 1,
        min: Some(5),
        max: Some(1),
    };
    assert_eq!(
        submit_rejected(spec(vec![(1, vec![op])])),
        vec![rejected(
            T1,
            "participant 1, op 1: add bounds are empty: min 5 > max 1"
        )]
    );
}

#[test]
fn rejects_timeout_out_of_bounds() {
    let mut spec = transfer();
    spec.timeout_ms = 5;
    assert_eq!(
        submit_rejected(spec),
        vec![rejected(T1, "timeout 5 ms out of bounds [300, 60000] ms")]
    );
}

#[test]
fn rejects_when_too_many_txns_in_flight() {
    let mut config = Config::new([n(1), n(2)]);
    config.limits.txns_in_flight_max = 1;
    let mut core = Coordinator::new(config);
    step(&mut core, 0, Input::PeerUp { peer: n(1) });
    step(&mut core, 0, Input::PeerUp { peer: n(2) });
    step(&mut core, 0, submit(T1, transfer()));
    assert_eq!(
        step(&mut core, 1, submit(2, transfer())),
        vec![rejected(
            2,
            "coordinator overloaded: 1 transactions in flight"
        )]
    );
}

#[test]
fn rejects_a_duplicate_txn_id() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer()));
    assert_eq!(
        step(&mut core, 1, submit(T1, transfer())),
        vec![rejected(
            T1,
            "duplicate transaction id 00000000-0000-0000-0000-000000000001"
        )]
    );
}

#[test]
fn check_invariants_catches_a_commit_whose_record_is_not_pending() {
    let mut core = coordinator();
    transfer_voted_yes(&mut core);
    // Simulate a bug: the core forgets it is still waiting for the commit record.
    core.pending.clear();
    assert!(core.check_invariants().is_err());
}

#[test]
fn check_invariants_catches_a_committing_txn_with_a_no_vote() {
    let mut core = coordinator();
    transfer_commit_durable(&mut core);
    if let Some(txn) = core.txns.get_mut(&txn_id(T1)) {
        txn.parts[0].state = PartState::No;
    }
    assert!(core.check_invariants().is_err());
}

#[test]
fn read_only_voter_is_released_at_a_timeout_abort() {
    let mut core = coordinator();
    step(
        &mut core,
        0,
        submit(T1, spec(vec![(1, vec![get("a")]), (2, vec![add("b", 5)])])),
    );
    step(&mut core, 1, vote(1, T1, Vote::ReadOnly));
    assert_eq!(
        tick(&mut core, TIMEOUT_MS),
        vec![
            decide_to(2, T1, Decision::Abort),
            release_to(1, T1),
            aborted(T1, "timeout waiting for votes from participant 2"),
        ]
    );
}

#[test]
fn read_only_voter_down_before_the_last_vote_aborts() {
    // Its shared locks live in memory only: after a restart it holds nothing, so the
    // other votes could no longer form a lock point with its reads.
    let mut core = coordinator();
    step(
        &mut core,
        0,
        submit(T1, spec(vec![(1, vec![get("a")]), (2, vec![add("b", 5)])])),
    );
    step(&mut core, 1, vote(1, T1, Vote::ReadOnly));
    assert_eq!(
        step(&mut core, 2, Input::PeerDown { peer: n(1) }),
        vec![
            decide_to(2, T1, Decision::Abort),
            aborted(T1, "participant 1 is down"),
        ]
    );
}

#[test]
fn a_single_participant_read_gets_no_release() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, spec(vec![(1, vec![get("a")])])));
    assert_eq!(
        step(&mut core, 1, vote(1, T1, Vote::ReadOnly)),
        vec![result(T1, TxnResult::Committed { reads: vec![] })]
    );
}

#[test]
fn released_answers_are_ignored() {
    let mut core = coordinator();
    assert_eq!(
        step(
            &mut core,
            0,
            Input::Response {
                from: n(1),
                msg: FromParticipant::Released { txn: txn_id(T1) },
            }
        ),
        vec![]
    );
}
