//! 3PC core tests: one input in, the exact outputs out (invariants checked by `step`).
//!
//! Times: CanCommit at 0 with `TIMEOUT_MS` 500 and the default precommit margin 200, so
//! votes are due at 300; the precommit becomes durable at 20, PreCommit acks are due at
//! 20 + `PRECOMMIT_ACK_TIMEOUT_MS_DEFAULT`.

use wire::TxnState;

use super::*;

const VOTES_DUE: u64 = TIMEOUT_MS - PRECOMMIT_MARGIN_MS_DEFAULT;
const ACKS_DUE: u64 = 20 + PRECOMMIT_ACK_TIMEOUT_MS_DEFAULT;

fn spec3(parts: Vec<(u32, Vec<Op>)>) -> TxnSpec {
    TxnSpec {
        protocol: Protocol::ThreePhase,
        ..spec(parts)
    }
}

/// 5 from alice on 1 to bob on 2, with 3PC.
fn transfer3() -> TxnSpec {
    spec3(vec![(1, vec![add("alice", -5)]), (2, vec![add("bob", 5)])])
}

fn can_commit_to(to: u32, txn: u128, ops: Vec<Op>, participants: &[u32]) -> Output {
    Output::Send {
        to: n(to),
        msg: ToParticipant::Prepare {
            txn: txn_id(txn),
            protocol: Protocol::ThreePhase,
            ops,
            timeout_ms: TIMEOUT_MS,
            participants: participants.iter().map(|&p| n(p)).collect(),
        },
    }
}

fn precommit_to(to: u32, txn: u128) -> Output {
    Output::Send {
        to: n(to),
        msg: ToParticipant::PreCommit { txn: txn_id(txn) },
    }
}

fn state_query_to(to: u32, txn: u128) -> Output {
    Output::Send {
        to: n(to),
        msg: ToParticipant::StateQuery { txn: txn_id(txn) },
    }
}

fn ack_with(from: u32, txn: u128, outcome: Outcome) -> Input {
    Input::Response {
        from: n(from),
        msg: FromParticipant::Ack {
            txn: txn_id(txn),
            outcome,
        },
    }
}

fn pre_ack(from: u32, txn: u128) -> Input {
    ack_with(from, txn, Outcome::PreCommitted)
}

fn state_reply(from: u32, txn: u128, state: TxnState) -> Input {
    Input::Response {
        from: n(from),
        msg: FromParticipant::StateReply {
            txn: txn_id(txn),
            state,
            recovered: false,
        },
    }
}

/// A StateReply from a participant that restarted since its vote.
fn recovered_reply(from: u32, txn: u128, state: TxnState) -> Input {
    Input::Response {
        from: n(from),
        msg: FromParticipant::StateReply {
            txn: txn_id(txn),
            state,
            recovered: true,
        },
    }
}

fn persist_precommit(lsn: u64, txn: u128, participants: &[u32]) -> Output {
    Output::Persist {
        lsn: Lsn(lsn),
        record: Record::Decided {
            txn: txn_id(txn),
            protocol: Protocol::ThreePhase,
            decision: Decision::Commit,
            participants: participants.iter().map(|&p| n(p)).collect(),
        },
    }
}

fn persist_abort_adopted(lsn: u64, txn: u128, reason: &str) -> Output {
    Output::Persist {
        lsn: Lsn(lsn),
        record: Record::AbortAdopted {
            txn: txn_id(txn),
            reason: reason.to_string(),
        },
    }
}

const ABORTED_BY_2: &str = "participant 2 had already aborted (its termination protocol \
                            decided while cut off from the coordinator: the partition limit of 3pc)";

/// Submits the 3PC transfer and delivers both YES votes in time: the precommit is
/// handed out as lsn 1.
fn transfer3_voted_yes(core: &mut Coordinator) {
    step(core, 0, submit(T1, transfer3()));
    step(core, 10, vote(1, T1, Vote::Yes));
    assert_eq!(
        step(core, 11, vote(2, T1, Vote::Yes)),
        vec![persist_precommit(1, T1, &[1, 2])]
    );
}

/// ... and the precommit is durable: PreCommit went out at time 20.
fn transfer3_precommitted(core: &mut Coordinator) {
    transfer3_voted_yes(core);
    assert_eq!(
        step(core, 20, Input::Persisted { lsn: Lsn(1) }),
        vec![precommit_to(1, T1), precommit_to(2, T1)]
    );
}

/// ... and both acked the PreCommit: DoCommit went out at time 30.
fn transfer3_docommit_sent(core: &mut Coordinator) {
    transfer3_precommitted(core);
    assert_eq!(step(core, 25, pre_ack(1, T1)), vec![]);
    assert_eq!(
        step(core, 30, pre_ack(2, T1)),
        vec![
            decide_to(1, T1, Decision::Commit),
            decide_to(2, T1, Decision::Commit)
        ]
    );
}

fn recovered3(core: &mut Coordinator, participants: &[u32]) -> Vec<Output> {
    step(
        core,
        0,
        Input::Recovered {
            txns: vec![RecoveredTxn {
                txn: txn_id(T1),
                protocol: Protocol::ThreePhase,
                participants: participants.iter().map(|&p| n(p)).collect(),
            }],
        },
    )
}

// ---- CanCommit and votes ----

#[test]
fn three_phase_submit_sends_can_commit_with_every_participant_and_votes_are_due_before_the_margin()
{
    let mut core = coordinator();
    assert_eq!(
        step(&mut core, 0, submit(T1, transfer3())),
        vec![
            can_commit_to(1, T1, vec![add("alice", -5)], &[1, 2]),
            can_commit_to(2, T1, vec![add("bob", 5)], &[1, 2]),
        ]
    );
    assert_eq!(core.poll_timeout(), Some(Millis(VOTES_DUE)));
}

#[test]
fn three_phase_all_yes_logs_the_precommit_and_sends_nothing_before_it_is_durable() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer3()));
    assert_eq!(step(&mut core, 10, vote(1, T1, Vote::Yes)), vec![]);
    assert_eq!(
        step(&mut core, 11, vote(2, T1, Vote::Yes)),
        vec![persist_precommit(1, T1, &[1, 2])]
    );
    assert_eq!(core.poll_timeout(), None);
    assert_eq!(tick(&mut core, 100_000), vec![]);
    assert_eq!(
        step(&mut core, 12, query(1, 9, T1)),
        vec![answer(1, 9, T1, Answer::Undecided)]
    );
    assert_eq!(
        step(&mut core, 20, Input::Persisted { lsn: Lsn(1) }),
        vec![precommit_to(1, T1), precommit_to(2, T1)]
    );
    assert_eq!(core.poll_timeout(), Some(Millis(ACKS_DUE)));
}

#[test]
fn three_phase_last_yes_at_the_precommit_deadline_aborts_unlogged() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer3()));
    step(&mut core, 10, vote(1, T1, Vote::Yes));
    // The vote timer has not been handled yet, but the waiting timeout may be near.
    assert_eq!(
        step(&mut core, VOTES_DUE, vote(2, T1, Vote::Yes)),
        vec![
            decide_to(1, T1, Decision::Abort),
            decide_to(2, T1, Decision::Abort),
            aborted(
                T1,
                "all voted yes too late to precommit safely: a participant's waiting timeout \
                 (500 ms after CanCommit) may have fired (votes are due 200 ms before it)"
            ),
        ]
    );
    assert_eq!(core.txns_in_flight(), 0);
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn three_phase_last_yes_just_before_the_precommit_deadline_logs_the_precommit() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer3()));
    step(&mut core, 10, vote(1, T1, Vote::Yes));
    assert_eq!(
        step(&mut core, VOTES_DUE - 1, vote(2, T1, Vote::Yes)),
        vec![persist_precommit(1, T1, &[1, 2])]
    );
}

const LATE_PRECOMMIT: &str = "the precommit record became durable after the PreCommit \
                              deadline (300 ms after CanCommit, 200 ms before the \
                              participants' waiting timeout): a participant may have timed \
                              out, so no PreCommit was sent";

#[test]
fn three_phase_precommit_durable_at_the_deadline_sends_no_precommit_and_adopts_abort() {
    let mut core = coordinator();
    transfer3_voted_yes(&mut core);
    // A slow group commit (issue 7 bug 2): the record is durable only at the deadline.
    // A participant's waiting timeout may fire before a PreCommit sent now arrives.
    assert_eq!(
        step(&mut core, VOTES_DUE, Input::Persisted { lsn: Lsn(1) }),
        vec![persist_abort_adopted(2, T1, LATE_PRECOMMIT)]
    );
    assert_eq!(
        step(&mut core, VOTES_DUE + 1, query(1, 1, T1)),
        vec![answer(1, 1, T1, Answer::Undecided)]
    );
    assert_eq!(
        step(&mut core, VOTES_DUE + 2, Input::Persisted { lsn: Lsn(2) }),
        vec![
            decide_to(1, T1, Decision::Abort),
            decide_to(2, T1, Decision::Abort),
            aborted(T1, LATE_PRECOMMIT),
        ]
    );
    assert_eq!(core.txns_in_flight(), 0);
}

#[test]
fn three_phase_precommit_durable_just_before_the_deadline_sends_precommit() {
    let mut core = coordinator();
    transfer3_voted_yes(&mut core);
    assert_eq!(
        step(&mut core, VOTES_DUE - 1, Input::Persisted { lsn: Lsn(1) }),
        vec![precommit_to(1, T1), precommit_to(2, T1)]
    );
}

#[test]
fn three_phase_missing_vote_at_the_precommit_deadline_aborts() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer3()));
    step(&mut core, 10, vote(1, T1, Vote::Yes));
    assert_eq!(tick(&mut core, VOTES_DUE - 1), vec![]);
    assert_eq!(
        tick(&mut core, VOTES_DUE),
        vec![
            decide_to(1, T1, Decision::Abort),
            decide_to(2, T1, Decision::Abort),
            aborted(T1, "timeout waiting for votes from participant 2"),
        ]
    );
}

#[test]
fn three_phase_no_vote_aborts_unlogged() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer3()));
    assert_eq!(
        step(
            &mut core,
            1,
            vote(
                1,
                T1,
                Vote::No {
                    reason: "add on alice would leave -5 below min 0".to_string()
                }
            )
        ),
        vec![
            decide_to(2, T1, Decision::Abort),
            aborted(
                T1,
                "participant 1 voted no: add on alice would leave -5 below min 0"
            ),
        ]
    );
}

#[test]
fn three_phase_yes_voter_down_before_the_decision_aborts() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer3()));
    step(&mut core, 1, vote(1, T1, Vote::Yes));
    assert_eq!(
        step(&mut core, 2, Input::PeerDown { peer: n(1) }),
        vec![
            decide_to(2, T1, Decision::Abort),
            aborted(T1, "participant 1 is down"),
        ]
    );
}

#[test]
fn three_phase_read_only_voter_gets_no_precommit() {
    let mut core = coordinator();
    step(
        &mut core,
        0,
        submit(T1, spec3(vec![(1, vec![get("a")]), (2, vec![add("b", 5)])])),
    );
    step(&mut core, 1, vote(1, T1, Vote::ReadOnly));
    assert_eq!(
        step(&mut core, 2, vote(2, T1, Vote::Yes)),
        vec![release_to(1, T1), persist_precommit(1, T1, &[2])]
    );
    assert_eq!(
        step(&mut core, 3, Input::Persisted { lsn: Lsn(1) }),
        vec![precommit_to(2, T1)]
    );
    assert_eq!(
        step(&mut core, 4, pre_ack(2, T1)),
        vec![decide_to(2, T1, Decision::Commit)]
    );
}

#[test]
fn three_phase_timeout_must_leave_a_vote_window_after_the_margin() {
    let mut spec = transfer3();
    spec.timeout_ms = TIMEOUT_MS_MIN_DEFAULT + PRECOMMIT_MARGIN_MS_DEFAULT - 1;
    assert_eq!(
        submit_rejected(spec),
        vec![rejected(
            T1,
            "3pc timeout 499 ms is below 500 ms: votes are due 200 ms (the precommit margin) \
             before the participants' waiting timeout, which must leave at least 300 ms to vote"
        )]
    );
}

// ---- PreCommit and its acks ----

#[test]
fn three_phase_happy_path_precommits_docommits_then_ends() {
    let mut core = coordinator();
    transfer3_docommit_sent(&mut core);
    assert_eq!(step(&mut core, 31, ack(1, T1)), vec![]);
    assert_eq!(
        step(&mut core, 32, ack(2, T1)),
        vec![committed(T1), persist_ended(2, T1)]
    );
    assert_eq!(
        step(&mut core, 33, Input::Persisted { lsn: Lsn(2) }),
        vec![]
    );
    assert_eq!(core.txns_in_flight(), 0);
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn three_phase_duplicate_and_late_precommit_acks_are_ignored() {
    let mut core = coordinator();
    transfer3_precommitted(&mut core);
    step(&mut core, 25, pre_ack(1, T1));
    assert_eq!(step(&mut core, 26, pre_ack(1, T1)), vec![]);
    step(&mut core, 30, pre_ack(2, T1));
    // A duplicate PreCommit ack while DoCommit acks are awaited does not count as one.
    assert_eq!(step(&mut core, 31, pre_ack(2, T1)), vec![]);
    assert_eq!(step(&mut core, 32, ack(1, T1)), vec![]);
    assert_eq!(
        step(&mut core, 33, ack(2, T1)),
        vec![committed(T1), persist_ended(2, T1)]
    );
    // After the end: nothing.
    assert_eq!(step(&mut core, 34, pre_ack(2, T1)), vec![]);
}

#[test]
fn three_phase_precommit_ack_before_the_precommit_is_durable_is_ignored() {
    let mut core = coordinator();
    transfer3_voted_yes(&mut core);
    assert_eq!(step(&mut core, 12, pre_ack(1, T1)), vec![]);
    step(&mut core, 20, Input::Persisted { lsn: Lsn(1) });
    assert_eq!(step(&mut core, 21, pre_ack(2, T1)), vec![]);
    assert_eq!(
        step(&mut core, 22, pre_ack(1, T1)),
        vec![
            decide_to(1, T1, Decision::Commit),
            decide_to(2, T1, Decision::Commit)
        ]
    );
}

#[test]
fn three_phase_committed_ack_to_precommit_counts_as_committed_there() {
    let mut core = coordinator();
    transfer3_precommitted(&mut core);
    step(&mut core, 25, pre_ack(1, T1));
    // A termination leader committed it: DoCommit only to the one that has not.
    assert_eq!(
        step(&mut core, 26, ack_with(2, T1, Outcome::Committed)),
        vec![decide_to(1, T1, Decision::Commit)]
    );
    assert_eq!(
        step(&mut core, 27, ack(1, T1)),
        vec![committed(T1), persist_ended(2, T1)]
    );
}

#[test]
fn three_phase_every_precommit_answered_committed_ends_without_docommit() {
    let mut core = coordinator();
    transfer3_precommitted(&mut core);
    assert_eq!(
        step(&mut core, 25, ack_with(1, T1, Outcome::Committed)),
        vec![]
    );
    assert_eq!(
        step(&mut core, 26, ack_with(2, T1, Outcome::Committed)),
        vec![committed(T1), persist_ended(2, T1)]
    );
}

#[test]
fn three_phase_ack_timeout_treats_a_silent_participant_as_failed_and_docommits() {
    let mut core = coordinator();
    transfer3_precommitted(&mut core);
    step(&mut core, 25, pre_ack(1, T1));
    assert_eq!(tick(&mut core, ACKS_DUE - 1), vec![]);
    assert_eq!(
        tick(&mut core, ACKS_DUE),
        vec![
            decide_to(1, T1, Decision::Commit),
            decide_to(2, T1, Decision::Commit)
        ]
    );
    // The client hears once the DoCommit acks are in (or at the timeout after DoCommit).
    assert_eq!(step(&mut core, ACKS_DUE + 1, ack(1, T1)), vec![]);
    assert_eq!(tick(&mut core, ACKS_DUE + TIMEOUT_MS), vec![committed(T1)]);
}

#[test]
fn three_phase_participant_down_before_acking_precommit_is_treated_as_failed() {
    let mut core = coordinator();
    transfer3_precommitted(&mut core);
    step(&mut core, 25, pre_ack(1, T1));
    assert_eq!(
        step(&mut core, 26, Input::PeerDown { peer: n(2) }),
        vec![decide_to(1, T1, Decision::Commit)]
    );
    assert_eq!(
        step(&mut core, 27, Input::PeerUp { peer: n(2) }),
        vec![decide_to(2, T1, Decision::Commit)]
    );
}

#[test]
fn three_phase_voter_down_when_the_precommit_is_durable_gets_docommit_on_return() {
    let mut core = coordinator();
    transfer3_voted_yes(&mut core);
    // Too late to abort: the precommit may already be on disk.
    assert_eq!(step(&mut core, 15, Input::PeerDown { peer: n(2) }), vec![]);
    assert_eq!(
        step(&mut core, 20, Input::Persisted { lsn: Lsn(1) }),
        vec![precommit_to(1, T1)]
    );
    assert_eq!(
        step(&mut core, 25, pre_ack(1, T1)),
        vec![decide_to(1, T1, Decision::Commit)]
    );
    assert_eq!(
        step(&mut core, 26, Input::PeerUp { peer: n(2) }),
        vec![decide_to(2, T1, Decision::Commit)]
    );
}

#[test]
fn three_phase_peer_up_resends_precommit_and_its_ack_still_counts() {
    let mut core = coordinator();
    transfer3_precommitted(&mut core);
    step(&mut core, 25, pre_ack(1, T1));
    assert_eq!(step(&mut core, 26, Input::PeerUp { peer: n(1) }), vec![]);
    assert_eq!(
        step(&mut core, 27, Input::PeerUp { peer: n(2) }),
        vec![precommit_to(2, T1)]
    );
    assert_eq!(
        step(&mut core, 28, pre_ack(2, T1)),
        vec![
            decide_to(1, T1, Decision::Commit),
            decide_to(2, T1, Decision::Commit)
        ]
    );
}

#[test]
fn three_phase_precommit_is_resent_before_the_ack_timeout() {
    let mut config = Config::new([n(1), n(2), n(3)]);
    config.precommit_ack_timeout_ms = 3 * DECIDE_RESEND_MS_DEFAULT;
    let mut core = Coordinator::new(config);
    for peer in 1..=3 {
        step(&mut core, 0, Input::PeerUp { peer: n(peer) });
    }
    transfer3_precommitted(&mut core);
    step(&mut core, 25, pre_ack(1, T1));
    let resend_at = 20 + DECIDE_RESEND_MS_DEFAULT;
    assert_eq!(core.poll_timeout(), Some(Millis(resend_at)));
    assert_eq!(tick(&mut core, resend_at), vec![precommit_to(2, T1)]);
    assert_eq!(
        core.poll_timeout(),
        Some(Millis(resend_at + DECIDE_RESEND_MS_DEFAULT))
    );
}

#[test]
fn three_phase_aborted_ack_to_precommit_adopts_the_abort_durably_before_telling_anyone() {
    let mut core = coordinator();
    transfer3_precommitted(&mut core);
    step(&mut core, 25, pre_ack(1, T1));
    assert_eq!(
        step(&mut core, 26, ack_with(2, T1, Outcome::Aborted)),
        vec![persist_abort_adopted(2, T1, ABORTED_BY_2)]
    );
    // Not durable yet: no timeout (no DoCommit, ever), and still undecided for queries.
    assert_eq!(core.poll_timeout(), None);
    assert_eq!(tick(&mut core, 100_000), vec![]);
    assert_eq!(
        step(&mut core, 27, query(1, 5, T1)),
        vec![answer(1, 5, T1, Answer::Undecided)]
    );
    assert_eq!(step(&mut core, 28, pre_ack(1, T1)), vec![]);
    assert_eq!(
        step(&mut core, 29, Input::Persisted { lsn: Lsn(2) }),
        vec![decide_to(1, T1, Decision::Abort), aborted(T1, ABORTED_BY_2),]
    );
    assert_eq!(core.txns_in_flight(), 0);
    // Forgotten: presumed abort answers any later question.
    assert_eq!(
        step(&mut core, 30, query(1, 6, T1)),
        vec![answer(1, 6, T1, Answer::Abort)]
    );
}

#[test]
fn three_phase_aborted_state_reply_while_precommitting_adopts_the_abort() {
    let mut core = coordinator();
    transfer3_precommitted(&mut core);
    assert_eq!(
        step(&mut core, 26, state_reply(2, T1, TxnState::Aborted)),
        vec![persist_abort_adopted(2, T1, ABORTED_BY_2)]
    );
}

#[test]
fn three_phase_unknown_ack_to_precommit_adopts_the_abort() {
    let mut core = coordinator();
    transfer3_precommitted(&mut core);
    assert_eq!(
        step(&mut core, 26, ack_with(1, T1, Outcome::Unknown)),
        vec![persist_abort_adopted(
            2,
            T1,
            "participant 1 has no record of the transaction it voted yes on"
        )]
    );
    assert_eq!(
        step(&mut core, 27, Input::Persisted { lsn: Lsn(2) }),
        vec![
            decide_to(2, T1, Decision::Abort),
            aborted(
                T1,
                "participant 1 has no record of the transaction it voted yes on"
            ),
        ]
    );
}

// ---- DoCommit acks: what the client hears and what is logged follow the participants ----

/// Every YES voter of the transfer refused the DoCommit.
const REFUSED_BY_1_2: &str = "no participant committed: participants 1, 2 refused the \
                              DoCommit, having aborted (a termination protocol overrode the \
                              logged precommit): the abort is adopted";

fn split(committed: &str, aborted: &str) -> String {
    format!(
        "ATOMICITY VIOLATED, the outcome is split: {committed} committed, {aborted} aborted (a \
         termination protocol overrode the logged precommit)"
    )
}

#[test]
fn three_phase_every_docommit_ack_aborted_adopts_the_abort_and_tells_the_client_aborted() {
    let mut core = coordinator();
    transfer3_docommit_sent(&mut core);
    assert_eq!(
        step(&mut core, 31, ack_with(1, T1, Outcome::Aborted)),
        vec![]
    );
    // Nothing was applied anywhere: the precommit becomes an abort, durably first.
    assert_eq!(
        step(&mut core, 32, ack_with(2, T1, Outcome::Aborted)),
        vec![persist_abort_adopted(2, T1, REFUSED_BY_1_2)]
    );
    assert_eq!(core.poll_timeout(), None);
    assert_eq!(
        step(&mut core, 33, Input::Persisted { lsn: Lsn(2) }),
        vec![aborted(T1, REFUSED_BY_1_2)]
    );
    assert_eq!(core.txns_in_flight(), 0);
    assert_eq!(
        step(&mut core, 34, query(1, 1, T1)),
        vec![answer(1, 1, T1, Answer::Abort)]
    );
}

#[test]
fn three_phase_unknown_docommit_ack_counts_as_not_committed() {
    let mut core = coordinator();
    transfer3_docommit_sent(&mut core);
    assert_eq!(
        step(&mut core, 31, ack_with(1, T1, Outcome::Unknown)),
        vec![]
    );
    assert_eq!(
        step(&mut core, 32, ack_with(2, T1, Outcome::Aborted)),
        vec![persist_abort_adopted(2, T1, REFUSED_BY_1_2)]
    );
}

#[test]
fn three_phase_split_docommit_acks_are_reported_as_atomicity_violated_not_committed() {
    let mut core = coordinator();
    transfer3_docommit_sent(&mut core);
    assert_eq!(
        step(&mut core, 31, ack_with(1, T1, Outcome::Aborted)),
        vec![]
    );
    assert_eq!(
        step(&mut core, 32, state_reply(1, T1, TxnState::Aborted)),
        vec![]
    );
    // The decision row keeps 'commit' (applied at 2) and ends; nothing more can be done.
    assert_eq!(
        step(&mut core, 33, ack(2, T1)),
        vec![
            aborted(T1, &split("participant 2", "participant 1")),
            persist_ended(2, T1)
        ]
    );
    assert_eq!(core.txns_in_flight(), 1);
    assert_eq!(
        step(&mut core, 34, Input::Persisted { lsn: Lsn(2) }),
        vec![]
    );
    assert_eq!(core.txns_in_flight(), 0);
}

#[test]
fn three_phase_client_hears_committed_at_its_timeout_only_once_a_participant_committed() {
    let mut core = coordinator();
    transfer3_precommitted(&mut core);
    assert_eq!(step(&mut core, 25, Input::PeerDown { peer: n(1) }), vec![]);
    // Both treated as failed: DoCommit is owed to both, nobody has confirmed anything.
    assert_eq!(step(&mut core, 26, Input::PeerDown { peer: n(2) }), vec![]);
    let client_due = 26 + TIMEOUT_MS;
    assert_eq!(tick(&mut core, client_due), vec![]);
    assert_eq!(
        step(&mut core, client_due + 1, Input::PeerUp { peer: n(1) }),
        vec![decide_to(1, T1, Decision::Commit)]
    );
    // The first confirmed commit, past the client's timeout: the client hears at once.
    assert_eq!(
        step(&mut core, client_due + 2, ack(1, T1)),
        vec![committed(T1)]
    );
    assert_eq!(
        step(&mut core, client_due + 3, Input::PeerUp { peer: n(2) }),
        vec![decide_to(2, T1, Decision::Commit)]
    );
    assert_eq!(
        step(&mut core, client_due + 4, ack(2, T1)),
        vec![persist_ended(2, T1)]
    );
}

/// 1, 2 and 3 each get 5: a 3PC transaction with three YES voters; DoCommit went out at
/// time 30 (every PreCommit acked).
fn three_way_docommit_sent(core: &mut Coordinator) {
    let parts = (1..=3).map(|p| (p, vec![add("x", 5)])).collect();
    step(core, 0, submit(T1, spec3(parts)));
    for p in 1..=3 {
        step(core, 10 + u64::from(p), vote(p, T1, Vote::Yes));
    }
    step(core, 20, Input::Persisted { lsn: Lsn(1) });
    step(core, 21, pre_ack(1, T1));
    step(core, 22, pre_ack(2, T1));
    assert_eq!(
        step(core, 30, pre_ack(3, T1)),
        (1..=3)
            .map(|p| decide_to(p, T1, Decision::Commit))
            .collect::<Vec<_>>()
    );
}

#[test]
fn three_phase_client_is_not_told_committed_at_its_timeout_once_a_participant_refused() {
    let mut core = coordinator();
    three_way_docommit_sent(&mut core);
    step(&mut core, 31, ack(1, T1));
    step(&mut core, 32, ack_with(2, T1, Outcome::Aborted));
    assert_eq!(tick(&mut core, 30 + TIMEOUT_MS), vec![]);
    assert_eq!(
        step(&mut core, 30 + TIMEOUT_MS + 1, ack(3, T1)),
        vec![
            aborted(T1, &split("participants 1, 3", "participant 2")),
            persist_ended(2, T1)
        ]
    );
}

#[test]
fn three_phase_aborted_precommit_ack_after_a_committed_one_commits_the_rest() {
    let mut core = coordinator();
    let parts = (1..=3).map(|p| (p, vec![add("x", 5)])).collect();
    step(&mut core, 0, submit(T1, spec3(parts)));
    for p in 1..=3 {
        step(&mut core, 10 + u64::from(p), vote(p, T1, Vote::Yes));
    }
    step(&mut core, 20, Input::Persisted { lsn: Lsn(1) });
    step(&mut core, 21, ack_with(1, T1, Outcome::Committed));
    // 1 committed, so no abort can be adopted: the others are told to commit.
    assert_eq!(
        step(&mut core, 22, ack_with(2, T1, Outcome::Aborted)),
        vec![decide_to(3, T1, Decision::Commit)]
    );
    assert_eq!(
        step(&mut core, 23, ack(3, T1)),
        vec![
            aborted(T1, &split("participants 1, 3", "participant 2")),
            persist_ended(2, T1)
        ]
    );
}

#[test]
fn three_phase_committed_ack_while_an_adopted_abort_is_logged_is_reported_as_split() {
    let mut core = coordinator();
    transfer3_precommitted(&mut core);
    assert_eq!(
        step(&mut core, 25, ack_with(2, T1, Outcome::Aborted)),
        vec![persist_abort_adopted(2, T1, ABORTED_BY_2)]
    );
    // Too late to keep the row at 'commit'; the client still hears the truth, and the
    // participant that committed is not told to abort.
    assert_eq!(
        step(&mut core, 26, ack_with(1, T1, Outcome::Committed)),
        vec![]
    );
    assert_eq!(
        step(&mut core, 27, Input::Persisted { lsn: Lsn(2) }),
        vec![aborted(T1, &split("participant 1", "participant 2"))]
    );
}

#[test]
fn three_phase_decision_query_says_commit_only_once_docommit_goes_out() {
    let mut core = coordinator();
    step(&mut core, 0, submit(T1, transfer3()));
    assert_eq!(
        step(&mut core, 1, query(1, 1, T1)),
        vec![answer(1, 1, T1, Answer::Undecided)]
    );
    step(&mut core, 10, vote(1, T1, Vote::Yes));
    step(&mut core, 11, vote(2, T1, Vote::Yes));
    assert_eq!(
        step(&mut core, 12, query(1, 2, T1)),
        vec![answer(1, 2, T1, Answer::Undecided)]
    );
    step(&mut core, 20, Input::Persisted { lsn: Lsn(1) });
    assert_eq!(
        step(&mut core, 21, query(1, 3, T1)),
        vec![answer(1, 3, T1, Answer::Undecided)]
    );
    step(&mut core, 25, pre_ack(1, T1));
    step(&mut core, 30, pre_ack(2, T1));
    assert_eq!(
        step(&mut core, 31, query(2, 4, T1)),
        vec![answer(2, 4, T1, Answer::Commit)]
    );
}

#[test]
fn three_phase_status_counts_phases_per_protocol() {
    let mut core = coordinator();
    transfer3_precommitted(&mut core);
    step(
        &mut core,
        30,
        submit(
            2,
            spec(vec![(2, vec![add("x", 1)]), (3, vec![add("y", 1)])]),
        ),
    );
    assert_eq!(
        core.txns_by_protocol_and_phase(),
        BTreeMap::from([
            (("2pc", TxnPhase::Collecting), 1),
            (("3pc", TxnPhase::PreCommitting), 1)
        ])
    );
    assert_eq!(
        core.in_flight_by_peer(),
        BTreeMap::from([(n(1), 1), (n(2), 2), (n(3), 1)])
    );
    assert_eq!(core.undecided().collect::<Vec<_>>(), vec![txn_id(2)]);
    assert_eq!(
        core.decided_not_ended().collect::<Vec<_>>(),
        vec![txn_id(T1)]
    );
}

// ---- recovery of a logged precommit ----

#[test]
fn three_phase_recovery_asks_every_participant_up_and_the_others_when_they_come_up() {
    let mut core = Coordinator::new(Config::new([n(1), n(2), n(3)]));
    step(&mut core, 0, Input::PeerUp { peer: n(1) });
    assert_eq!(recovered3(&mut core, &[1, 2]), vec![state_query_to(1, T1)]);
    assert_eq!(
        step(&mut core, 1, query(1, 1, T1)),
        vec![answer(1, 1, T1, Answer::Undecided)]
    );
    assert_eq!(step(&mut core, 2, Input::PeerUp { peer: n(3) }), vec![]);
    assert_eq!(
        step(&mut core, 3, Input::PeerUp { peer: n(2) }),
        vec![state_query_to(2, T1)]
    );
    assert_eq!(
        core.txns_by_phase(),
        BTreeMap::from([(TxnPhase::Resolving, 1)])
    );
}

#[test]
fn three_phase_recovery_resends_state_queries_to_the_silent_and_the_operational() {
    let mut core = coordinator();
    recovered3(&mut core, &[1, 2, 3]);
    // 1 is operational: its termination round may still decide, so it is asked again;
    // 2 restarted since its vote and never decides on its own: its answer stands.
    step(&mut core, 1, state_reply(1, T1, TxnState::Waiting));
    step(&mut core, 1, recovered_reply(2, T1, TxnState::Waiting));
    let resend_at = DECIDE_RESEND_MS_DEFAULT;
    assert_eq!(core.poll_timeout(), Some(Millis(resend_at)));
    assert_eq!(
        tick(&mut core, resend_at),
        vec![state_query_to(1, T1), state_query_to(3, T1)]
    );
}

#[test]
fn three_phase_recovery_adopts_an_abort_the_participants_decided() {
    let mut core = coordinator();
    assert_eq!(
        recovered3(&mut core, &[1, 2]),
        vec![state_query_to(1, T1), state_query_to(2, T1)]
    );
    assert_eq!(
        step(&mut core, 1, state_reply(2, T1, TxnState::Waiting)),
        vec![]
    );
    let reason = "participant 1 aborted while the coordinator was down (its termination \
                  protocol decided)";
    assert_eq!(
        step(&mut core, 2, state_reply(1, T1, TxnState::Aborted)),
        vec![persist_abort_adopted(1, T1, reason)]
    );
    // No client to tell: the others learn the abort, and the transaction is forgotten.
    assert_eq!(
        step(&mut core, 3, Input::Persisted { lsn: Lsn(1) }),
        vec![decide_to(2, T1, Decision::Abort)]
    );
    assert_eq!(core.txns_in_flight(), 0);
    // A late reply changes nothing.
    assert_eq!(
        step(&mut core, 4, state_reply(2, T1, TxnState::Aborted)),
        vec![]
    );
}

#[test]
fn three_phase_recovery_never_decides_while_an_operational_participant_may() {
    let mut core = coordinator();
    recovered3(&mut core, &[1, 2]);
    // Both undecided and operational: their termination protocol decides, not us
    // (issue 7 bug 1: a PreCommit here raced a leader's abort and split the outcome).
    assert_eq!(
        step(&mut core, 1, state_reply(1, T1, TxnState::Waiting)),
        vec![]
    );
    assert_eq!(
        step(&mut core, 2, state_reply(2, T1, TxnState::PreCommitted)),
        vec![]
    );
    assert_eq!(
        step(&mut core, 3, query(1, 1, T1)),
        vec![answer(1, 1, T1, Answer::Undecided)]
    );
    // Their leader committed: adopted at once.
    assert_eq!(
        step(&mut core, 4, state_reply(2, T1, TxnState::Committed)),
        vec![
            decide_to(1, T1, Decision::Commit),
            decide_to(2, T1, Decision::Commit)
        ]
    );
    assert_eq!(step(&mut core, 5, ack(1, T1)), vec![]);
    assert_eq!(step(&mut core, 6, ack(2, T1)), vec![persist_ended(1, T1)]);
}

#[test]
fn three_phase_recovery_waits_for_the_termination_protocol_and_adopts_its_abort() {
    let mut core = coordinator();
    recovered3(&mut core, &[1, 2]);
    step(&mut core, 1, state_reply(1, T1, TxnState::Waiting));
    assert_eq!(
        step(&mut core, 2, state_reply(2, T1, TxnState::Waiting)),
        vec![]
    );
    // The leader decided "all waiting: abort"; asked again, it says so.
    assert_eq!(
        tick(&mut core, DECIDE_RESEND_MS_DEFAULT),
        vec![state_query_to(1, T1), state_query_to(2, T1)]
    );
    let reason = "participant 1 aborted while the coordinator was down (its termination \
                  protocol decided)";
    assert_eq!(
        step(&mut core, 1_001, state_reply(1, T1, TxnState::Aborted)),
        vec![persist_abort_adopted(1, T1, reason)]
    );
    assert_eq!(
        step(&mut core, 1_002, Input::Persisted { lsn: Lsn(1) }),
        vec![decide_to(2, T1, Decision::Abort)]
    );
}

#[test]
fn three_phase_recovery_commits_once_every_participant_restarted_undecided() {
    let mut core = coordinator();
    recovered3(&mut core, &[1, 2]);
    assert_eq!(
        step(&mut core, 1, recovered_reply(1, T1, TxnState::Waiting)),
        vec![]
    );
    // 2 reported as operational first: it may still lead, so nothing is decided.
    assert_eq!(
        step(&mut core, 2, state_reply(2, T1, TxnState::PreCommitted)),
        vec![]
    );
    // It restarted (down, up: asked again) and is recovered now: nobody else can decide.
    step(&mut core, 3, Input::PeerDown { peer: n(2) });
    assert_eq!(
        step(&mut core, 4, Input::PeerUp { peer: n(2) }),
        vec![state_query_to(2, T1)]
    );
    assert_eq!(
        step(&mut core, 5, recovered_reply(2, T1, TxnState::PreCommitted)),
        vec![
            decide_to(1, T1, Decision::Commit),
            decide_to(2, T1, Decision::Commit)
        ]
    );
    assert_eq!(
        step(&mut core, 6, query(1, 1, T1)),
        vec![answer(1, 1, T1, Answer::Commit)]
    );
}

#[test]
fn three_phase_recovery_commits_at_once_when_a_participant_committed() {
    let mut core = coordinator();
    recovered3(&mut core, &[1, 2]);
    assert_eq!(
        step(&mut core, 1, state_reply(2, T1, TxnState::Committed)),
        vec![
            decide_to(1, T1, Decision::Commit),
            decide_to(2, T1, Decision::Commit)
        ]
    );
    assert_eq!(
        step(&mut core, 2, query(1, 1, T1)),
        vec![answer(1, 1, T1, Answer::Commit)]
    );
}

#[test]
fn three_phase_recovery_with_split_states_keeps_the_commit_row_and_ends_it() {
    let mut core = coordinator();
    recovered3(&mut core, &[1, 2]);
    step(&mut core, 1, state_reply(1, T1, TxnState::Committed));
    assert_eq!(
        step(&mut core, 2, state_reply(2, T1, TxnState::Aborted)),
        vec![]
    );
    // 1 committed: the row must not become 'abort'; it ends. No client to tell.
    assert_eq!(step(&mut core, 3, ack(1, T1)), vec![persist_ended(1, T1)]);
}

#[test]
fn three_phase_recovery_takes_a_prepared_state_as_waiting() {
    let mut core = coordinator();
    recovered3(&mut core, &[1]);
    assert_eq!(
        step(&mut core, 1, recovered_reply(1, T1, TxnState::Prepared)),
        vec![decide_to(1, T1, Decision::Commit)]
    );
}

#[test]
fn two_phase_recovery_is_unchanged_by_three_phase() {
    let mut core = coordinator();
    assert_eq!(
        step(
            &mut core,
            0,
            Input::Recovered {
                txns: vec![RecoveredTxn {
                    txn: txn_id(T1),
                    protocol: Protocol::TwoPhase,
                    participants: vec![n(1)],
                }]
            }
        ),
        vec![decide_to(1, T1, Decision::Commit)]
    );
    // A StateReply for a 2PC transaction is not asked for and changes nothing.
    assert_eq!(
        step(&mut core, 1, state_reply(1, T1, TxnState::Aborted)),
        vec![]
    );
}

// ---- the log as the simulator replays it ----

#[test]
fn unfinished_returns_commits_neither_ended_nor_turned_into_aborts() {
    let decided = |txn: u128, protocol: Protocol| Record::Decided {
        txn: txn_id(txn),
        protocol,
        decision: Decision::Commit,
        participants: vec![n(1), n(2)],
    };
    let records = vec![
        decided(3, Protocol::ThreePhase),
        decided(1, Protocol::TwoPhase),
        decided(2, Protocol::ThreePhase),
        decided(4, Protocol::TwoPhase),
        Record::Ended { txn: txn_id(4) },
        Record::AbortAdopted {
            txn: txn_id(2),
            reason: "r".to_string(),
        },
    ];
    let recovered = |txn: u128, protocol: Protocol| RecoveredTxn {
        txn: txn_id(txn),
        protocol,
        participants: vec![n(1), n(2)],
    };
    assert_eq!(
        unfinished(&records),
        vec![
            recovered(1, Protocol::TwoPhase),
            recovered(3, Protocol::ThreePhase)
        ]
    );
}

// ---- configuration ----

#[test]
fn default_config_is_valid() {
    assert_eq!(Config::new([n(1)]).validate(), Ok(()));
}

#[test]
fn timeouts_shorter_than_their_heartbeats_are_refused_with_the_setting_named() {
    let refused = |change: fn(&mut Config)| {
        let mut config = Config::new([n(1)]);
        change(&mut config);
        config.validate().map_err(|error| error.to_string())
    };
    assert_eq!(
        refused(|c| c.heartbeat_interval_ms = 200),
        Err(
            "invalid coordinator configuration: timeout_ms_min 300 ms must be at least \
             3 heartbeats of 200 ms (600 ms)"
                .to_string()
        )
    );
    assert_eq!(
        refused(|c| c.precommit_ack_timeout_ms = 299),
        Err(
            "invalid coordinator configuration: precommit_ack_timeout_ms 299 ms must be at \
             least 3 heartbeats of 100 ms (300 ms)"
                .to_string()
        )
    );
    assert_eq!(
        refused(|c| c.precommit_margin_ms = 99),
        Err(
            "invalid coordinator configuration: precommit_margin_ms 99 ms must be at least \
             one heartbeat (100 ms)"
                .to_string()
        )
    );
    assert_eq!(
        refused(|c| c.limits.timeout_ms_max = 400),
        Err(
            "invalid coordinator configuration: timeout_ms_max 400 ms leaves no valid 3pc \
             timeout: it must be at least timeout_ms_min 300 ms + precommit_margin_ms 200 ms"
                .to_string()
        )
    );
    assert_eq!(
        refused(|c| c.heartbeat_interval_ms = 0),
        Err(
            "invalid coordinator configuration: heartbeat interval 0 ms outside \
             1..=3600000 ms"
                .to_string()
        )
    );
    assert_eq!(
        refused(|c| c.decide_resend_ms = TIMEOUT_MS_LIMIT + 1),
        Err(
            "invalid coordinator configuration: decide_resend_ms 3600001 ms exceeds the \
             limit of 3600000 ms"
                .to_string()
        )
    );
}

// ---- invariants ----

#[test]
fn check_invariants_catches_a_two_phase_txn_in_a_three_phase_phase() {
    let mut core = coordinator();
    transfer_commit_durable(&mut core);
    if let Some(txn) = core.txns.get_mut(&txn_id(T1)) {
        txn.phase = Phase::Resolving {
            resend_at: Millis(1),
        };
        for part in &mut txn.parts {
            part.state = PartState::AwaitingState;
        }
    }
    assert!(core.check_invariants().is_err());
}

#[test]
fn check_invariants_catches_docommit_while_a_precommit_ack_is_awaited() {
    let mut core = coordinator();
    transfer3_precommitted(&mut core);
    if let Some(txn) = core.txns.get_mut(&txn_id(T1)) {
        txn.parts[0].state = PartState::AwaitingAck;
    }
    assert!(core.check_invariants().is_err());
}
