//! Core unit tests, one file per handler: inputs in, the exact outputs out, invariants
//! checked after every step. `check` runs steps from a setup and compares what happened,
//! as text (see `render`), with an `expect!` snapshot.

use std::fmt::Write as _;

use expect_test::Expect;
use uuid::Uuid;
use wire::{
    FromCoordinator, FromParticipant, NodeId, Op, Outcome, Protocol, Read, RequestId,
    ToCoordinator, ToParticipant, TxnId, TxnResult, TxnSpec, TxnState, Value, Vote,
};

use super::{ClientRef, Config, Coordinator, Input, Lsn, Millis, Output, Record, RecoveredTxn};

mod abort_adopted;
mod commit;
mod config;
mod frame_limit;
mod invariants;
mod peers;
mod recovery;
mod releases;
mod status;
mod submit;
mod three_phase;
mod votes;

pub(super) const CLIENT: ClientRef = ClientRef {
    channel: 7,
    request: 1,
};
pub(super) const TIMEOUT_MS: u64 = 500;
pub(super) const T1: u128 = 1;

pub(super) fn n(id: u32) -> NodeId {
    NodeId(id)
}

pub(super) fn txn_id(i: u128) -> TxnId {
    TxnId(Uuid::from_u128(i))
}

/// A core with participants 1, 2, 3 configured and up.
pub(super) fn coordinator() -> Coordinator {
    with_config(Config::new([n(1), n(2), n(3)]))
}

/// A core with `config`, every configured participant up.
pub(super) fn with_config(config: Config) -> Coordinator {
    let peers: Vec<NodeId> = config.participants.iter().copied().collect();
    let mut core = Coordinator::new(config);
    for peer in peers {
        core.handle(Millis(0), Input::PeerUp { peer });
    }
    drain(&mut core);
    core
}

/// One step: an input at a time, a timer check at a time, or a look at the core.
pub(super) enum Step {
    Input(u64, Input),
    Timeout(u64),
    /// The next deadline, the transactions in flight and their phases.
    Probe,
}

pub(super) fn at(now: u64, input: Input) -> Step {
    Step::Input(now, input)
}

pub(super) fn tick(now: u64) -> Step {
    Step::Timeout(now)
}

pub(super) const PROBE: Step = Step::Probe;

/// Runs `steps` on the core `setup` builds and compares the transcript with `expect`:
/// each step on a line (`@now input`), then each output it produced, indented.
pub(super) fn check(
    setup: impl FnOnce() -> Coordinator,
    steps: impl IntoIterator<Item = Step>,
    expect: Expect,
) {
    let mut core = setup();
    expect.assert_eq(&run(&mut core, steps));
}

/// Like `check` for a table: each row runs its steps on a fresh `setup()`, and the
/// transcripts follow each other under the rows' names.
pub(super) fn check_rows<'a>(
    setup: impl Fn() -> Coordinator,
    rows: impl IntoIterator<Item = (&'a str, Vec<Step>)>,
    expect: Expect,
) {
    let mut text = String::new();
    for (name, steps) in rows {
        let mut core = setup();
        let _ = write!(text, "== {name}\n{}", run(&mut core, steps));
    }
    expect.assert_eq(&text);
}

/// Runs `steps` and returns their transcript (see `check`).
pub(super) fn run(core: &mut Coordinator, steps: impl IntoIterator<Item = Step>) -> String {
    let mut text = String::new();
    for step in steps {
        match step {
            Step::Input(now, input) => {
                let _ = writeln!(text, "@{now} {}", input_text(&input));
                core.handle(Millis(now), input);
            }
            Step::Timeout(now) => {
                let _ = writeln!(text, "@{now} timeout");
                core.handle_timeout(Millis(now));
            }
            Step::Probe => {
                let timer = core
                    .poll_timeout()
                    .map_or("none".to_string(), |at| at.0.to_string());
                let phases: Vec<String> = core
                    .txns_by_protocol_and_phase()
                    .into_iter()
                    .map(|((protocol, phase), count)| format!("{protocol} {phase}: {count}"))
                    .collect();
                let _ = writeln!(
                    text,
                    "? timer {timer}; {} in flight; {}",
                    core.txns_in_flight(),
                    if phases.is_empty() {
                        "no txns".to_string()
                    } else {
                        phases.join(", ")
                    }
                );
            }
        }
        for output in drain(core) {
            let _ = writeln!(text, "  {}", output_text(&output));
        }
    }
    text
}

/// Applies `steps` without looking at the outputs (a setup; tests check those steps).
pub(super) fn apply(core: &mut Coordinator, steps: impl IntoIterator<Item = Step>) {
    run(core, steps);
}

fn drain(core: &mut Coordinator) -> Vec<Output> {
    let outputs: Vec<Output> = std::iter::from_fn(|| core.poll_output()).collect();
    if let Err(violation) = core.check_invariants() {
        panic!("{violation}");
    }
    outputs
}

// ---- inputs ----

pub(super) fn add(key: &str, delta: i64) -> Op {
    Op::Add {
        key: key.to_string(),
        delta,
        min: Some(0),
        max: None,
    }
}

pub(super) fn get(key: &str) -> Op {
    Op::Get {
        key: key.to_string(),
    }
}

pub(super) fn spec(parts: Vec<(u32, Vec<Op>)>) -> TxnSpec {
    TxnSpec {
        protocol: Protocol::TwoPhase,
        timeout_ms: TIMEOUT_MS,
        parts: parts.into_iter().map(|(id, ops)| (n(id), ops)).collect(),
    }
}

pub(super) fn spec3(parts: Vec<(u32, Vec<Op>)>) -> TxnSpec {
    TxnSpec {
        protocol: Protocol::ThreePhase,
        ..spec(parts)
    }
}

/// A bank transfer: 5 from alice on 1 to bob on 2.
pub(super) fn transfer() -> TxnSpec {
    spec(vec![(1, vec![add("alice", -5)]), (2, vec![add("bob", 5)])])
}

/// The transfer with 3PC.
pub(super) fn transfer3() -> TxnSpec {
    TxnSpec {
        protocol: Protocol::ThreePhase,
        ..transfer()
    }
}

pub(super) fn submit(txn: u128, spec: TxnSpec) -> Input {
    Input::Submit {
        client: CLIENT,
        txn: txn_id(txn),
        spec,
    }
}

fn response(from: u32, msg: FromParticipant) -> Input {
    Input::Response { from: n(from), msg }
}

pub(super) fn vote(from: u32, txn: u128, vote: Vote) -> Input {
    vote_reads(from, txn, vote, vec![])
}

pub(super) fn no(from: u32, txn: u128, reason: &str) -> Input {
    vote(
        from,
        txn,
        Vote::No {
            reason: reason.to_string(),
        },
    )
}

pub(super) fn vote_reads(from: u32, txn: u128, vote: Vote, reads: Vec<Read>) -> Input {
    let txn = txn_id(txn);
    response(from, FromParticipant::Vote { txn, vote, reads })
}

/// An ack of the commit (`Ack{Committed}`).
pub(super) fn ack(from: u32, txn: u128) -> Input {
    ack_with(from, txn, Outcome::Committed)
}

pub(super) fn ack_with(from: u32, txn: u128, outcome: Outcome) -> Input {
    let txn = txn_id(txn);
    response(from, FromParticipant::Ack { txn, outcome })
}

/// An ack of the PreCommit.
pub(super) fn pre_ack(from: u32, txn: u128) -> Input {
    ack_with(from, txn, Outcome::PreCommitted)
}

pub(super) fn state_reply(from: u32, txn: u128, state: TxnState) -> Input {
    state_reply_as(from, txn, state, false)
}

/// A StateReply from a participant that restarted since its vote.
pub(super) fn recovered_reply(from: u32, txn: u128, state: TxnState) -> Input {
    state_reply_as(from, txn, state, true)
}

fn state_reply_as(from: u32, txn: u128, state: TxnState, recovered: bool) -> Input {
    let txn = txn_id(txn);
    response(
        from,
        FromParticipant::StateReply {
            txn,
            state,
            recovered,
        },
    )
}

pub(super) fn query(from: u32, id: u64, txn: u128) -> Input {
    Input::Request {
        from: n(from),
        id: RequestId(id),
        msg: ToCoordinator::DecisionQuery { txn: txn_id(txn) },
    }
}

pub(super) fn persisted(lsn: u64) -> Input {
    Input::Persisted { lsn: Lsn(lsn) }
}

pub(super) fn released(from: u32, txn: u128) -> Input {
    Input::Response {
        from: n(from),
        msg: FromParticipant::Released { txn: txn_id(txn) },
    }
}

pub(super) fn up(peer: u32) -> Input {
    Input::PeerUp { peer: n(peer) }
}

pub(super) fn down(peer: u32) -> Input {
    Input::PeerDown { peer: n(peer) }
}

pub(super) fn recovered(txn: u128, protocol: Protocol, participants: &[u32]) -> Input {
    Input::Recovered {
        txns: vec![RecoveredTxn {
            txn: txn_id(txn),
            protocol,
            participants: participants.iter().map(|&p| n(p)).collect(),
        }],
    }
}

pub(super) fn read(key: &str, value: i64) -> Read {
    Read {
        key: key.to_string(),
        value: Some(Value::Int(value)),
    }
}

// ---- setups: the steps are checked by the tests of their own handlers ----

/// The transfer submitted at 0, both Yes votes in (10, 11): the commit record is lsn 1.
pub(super) fn transfer_voted_yes() -> Coordinator {
    let mut core = coordinator();
    apply(
        &mut core,
        [
            at(0, submit(T1, transfer())),
            at(10, vote(1, T1, Vote::Yes)),
            at(11, vote(2, T1, Vote::Yes)),
        ],
    );
    core
}

/// ... and the commit record durable at 20: Decide{Commit} went to both.
pub(super) fn transfer_commit_durable() -> Coordinator {
    let mut core = transfer_voted_yes();
    apply(&mut core, [at(20, persisted(1))]);
    core
}

/// The 3PC transfer submitted at 0, both Yes votes in time (10, 11): the precommit is
/// lsn 1.
pub(super) fn transfer3_voted_yes() -> Coordinator {
    let mut core = coordinator();
    apply(
        &mut core,
        [
            at(0, submit(T1, transfer3())),
            at(10, vote(1, T1, Vote::Yes)),
            at(11, vote(2, T1, Vote::Yes)),
        ],
    );
    core
}

/// ... and the precommit durable at 20: PreCommit went to both.
pub(super) fn transfer3_precommitted() -> Coordinator {
    let mut core = transfer3_voted_yes();
    apply(&mut core, [at(20, persisted(1))]);
    core
}

/// ... and both acked the PreCommit (25, 30): DoCommit went to both at 30.
pub(super) fn transfer3_docommit_sent() -> Coordinator {
    let mut core = transfer3_precommitted();
    apply(&mut core, [at(25, pre_ack(1, T1)), at(30, pre_ack(2, T1))]);
    core
}

// ---- text ----

fn txn_text(txn: &TxnId) -> String {
    format!("t{}", txn.0.as_u128())
}

fn nodes_text(nodes: &[NodeId]) -> String {
    let list: Vec<String> = nodes.iter().map(NodeId::to_string).collect();
    format!("[{}]", list.join(", "))
}

fn input_text(input: &Input) -> String {
    match input {
        Input::Submit { client, txn, spec } => {
            let parts: Vec<String> = spec
                .parts
                .iter()
                .map(|(node, ops)| format!("{node} [{}]", ops_text(ops)))
                .collect();
            format!(
                "submit {}{} {} {} ms: {}",
                txn_text(txn),
                client_text(client),
                spec.protocol.as_str(),
                spec.timeout_ms,
                parts.join("; ")
            )
        }
        Input::Response { from, msg } => format!("{from} -> {}", response_text(msg)),
        Input::Request { from, id, msg } => {
            format!("{from} -> #{} {}", id.0, query_text(msg))
        }
        Input::Persisted { lsn } => format!("persisted {}", lsn.0),
        Input::SendFailed { to, txn, failure } => {
            format!("send to {to} failed for {}: {failure:?}", txn_text(txn))
        }
        Input::PeerFrameLimit { peer, bytes } => format!("frame limit {peer}: {bytes} bytes"),
        Input::PeerUp { peer } => format!("up {peer}"),
        Input::PeerDown { peer } => format!("down {peer}"),
        Input::Recovered { txns } => {
            let txns: Vec<String> = txns
                .iter()
                .map(|txn| {
                    format!(
                        "{} {} {}",
                        txn_text(&txn.txn),
                        txn.protocol.as_str(),
                        nodes_text(&txn.participants)
                    )
                })
                .collect();
            format!("recovered {}", txns.join(", "))
        }
    }
}

/// Operations in the client's syntax: `add alice -5 min 0, get bob`.
fn ops_text(ops: &[Op]) -> String {
    let ops: Vec<String> = ops
        .iter()
        .map(|op| match op {
            Op::Get { key } => format!("get {key}"),
            Op::Put { key, value } => format!("put {key} {value}"),
            Op::Delete { key } => format!("delete {key}"),
            Op::Add {
                key,
                delta,
                min,
                max,
            } => {
                let min = min.map_or(String::new(), |min| format!(" min {min}"));
                let max = max.map_or(String::new(), |max| format!(" max {max}"));
                format!("add {key} {delta}{min}{max}")
            }
        })
        .collect();
    ops.join(", ")
}

fn client_text(client: &ClientRef) -> String {
    if *client == CLIENT {
        String::new()
    } else {
        format!(" (client {}.{})", client.channel, client.request)
    }
}

fn output_text(output: &Output) -> String {
    match output {
        Output::Send { to, msg } => format!("{to} <- {}", request_text(msg)),
        Output::Reply { to, id, msg } => format!("{to} <- #{} {}", id.0, answer_text(msg)),
        Output::Persist { lsn, record } => format!("persist {}: {}", lsn.0, record_text(record)),
        Output::ClientResult {
            client,
            txn,
            result,
        } => format!(
            "client {}{}: {}",
            txn_text(txn),
            client_text(client),
            result_text(result)
        ),
    }
}

fn record_text(record: &Record) -> String {
    match record {
        Record::Decided {
            txn,
            protocol,
            decision,
            participants,
        } => format!(
            "decided {} {} {decision:?} {}",
            txn_text(txn),
            protocol.as_str(),
            nodes_text(participants)
        ),
        Record::Ended { txn } => format!("ended {}", txn_text(txn)),
        Record::AbortAdopted { txn, reason } => {
            format!("abort adopted {}: {reason}", txn_text(txn))
        }
        Record::Hazard {
            txn,
            participant,
            decision,
            outcome,
        } => format!(
            "hazard {} at {participant}: decided {decision:?}, {outcome:?}",
            txn_text(txn)
        ),
    }
}

fn result_text(result: &TxnResult) -> String {
    match result {
        TxnResult::Committed { reads } if reads.is_empty() => "committed".to_string(),
        TxnResult::Committed { reads } => format!("committed, read {reads:?}"),
        TxnResult::Aborted { reason } => format!("aborted: {reason}"),
        TxnResult::Rejected { reason } => format!("rejected: {reason}"),
    }
}

/// A request to a participant, one short line.
fn request_text(msg: &ToParticipant) -> String {
    match msg {
        ToParticipant::Prepare {
            txn,
            protocol,
            ops,
            timeout_ms,
            participants,
        } => format!(
            "prepare {} {} {timeout_ms} ms of {}: {}",
            txn_text(txn),
            protocol.as_str(),
            nodes_text(participants),
            ops_text(ops)
        ),
        ToParticipant::PreCommit { txn } => format!("precommit {}", txn_text(txn)),
        ToParticipant::Decide {
            txn,
            decision,
            reason: None,
        } => format!("decide {} {decision:?}", txn_text(txn)),
        ToParticipant::Decide {
            txn,
            decision,
            reason: Some(reason),
        } => format!("decide {} {decision:?} ({reason})", txn_text(txn)),
        ToParticipant::StateQuery { txn } => format!("state query {}", txn_text(txn)),
        ToParticipant::Release { txn } => format!("release {}", txn_text(txn)),
    }
}

/// A participant's response, one short line.
fn response_text(msg: &FromParticipant) -> String {
    match msg {
        FromParticipant::Vote { txn, vote, reads } if reads.is_empty() => {
            format!("vote {} {vote:?}", txn_text(txn))
        }
        FromParticipant::Vote { txn, vote, reads } => {
            format!("vote {} {vote:?}, read {reads:?}", txn_text(txn))
        }
        FromParticipant::Ack { txn, outcome } => format!("ack {} {outcome:?}", txn_text(txn)),
        FromParticipant::StateReply {
            txn,
            state,
            recovered,
        } => format!(
            "state {} {state:?}{}",
            txn_text(txn),
            if *recovered { " (recovered)" } else { "" }
        ),
        FromParticipant::Released { txn } => format!("released {}", txn_text(txn)),
        FromParticipant::Refused { reason } => format!("refused: {reason}"),
    }
}

/// A participant's request to the coordinator, one short line.
fn query_text(msg: &ToCoordinator) -> String {
    match msg {
        ToCoordinator::DecisionQuery { txn } => format!("decision query {}", txn_text(txn)),
    }
}

/// The coordinator's answer to a participant's request, one short line.
fn answer_text(msg: &FromCoordinator) -> String {
    match msg {
        FromCoordinator::DecisionAnswer { txn, answer } => {
            format!("answer {} {answer:?}", txn_text(txn))
        }
        FromCoordinator::Refused { reason } => format!("refused: {reason}"),
    }
}
