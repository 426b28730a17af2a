//! A served coordinator (the real binary) against in-process fake participants that vote
//! as told: commit, abort, read-only, status, and recovery of a logged commit after a crash
//! (2PC: re-sent; 3PC: resolved by asking the participants' states).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wire::runtime;
use wire::{
    Answer, Channel, ChannelConfig, ChannelEvent, Decision, FromCoordinator, FromParticipant,
    Listener, NodeId, Op, Outcome, Read, Request, Response, Role, ServeHandle, ToCoordinator,
    ToParticipant, TxnId, TxnState, Value, Vote,
};

use super::support::{COMMAND_TIMEOUT, Server, run};

const CLUSTER: &str = "it";
/// The key a fake participant refuses to prepare (votes NO on).
const REFUSED_KEY: &str = "refuse";

/// What a fake participant saw.
#[derive(Debug, PartialEq)]
enum Seen {
    Prepared(TxnId),
    PreCommitted(TxnId),
    StateQueried(TxnId),
    Decided(TxnId, Decision),
    Answer(TxnId, Answer),
}

struct FakeParticipant {
    addr: SocketAddr,
    seen: mpsc::Receiver<Seen>,
    /// The coordinator's current connection (for sending a DecisionQuery).
    coordinator: Arc<Mutex<Option<Channel>>>,
    _serve: ServeHandle,
}

impl FakeParticipant {
    /// A fake whose 3PC state for a txn it voted on without a PreCommit is `Waiting`.
    fn start(id: u32) -> FakeParticipant {
        Self::start_with(id, TxnState::Waiting)
    }

    /// `not_precommitted`: the state it reports for a txn it got no PreCommit for
    /// (`Aborted`: as if its termination protocol aborted while the coordinator was down).
    fn start_with(id: u32, not_precommitted: TxnState) -> FakeParticipant {
        Self::start_full(id, not_precommitted, true, true)
    }

    /// A fake that says it did not restart since its vote (so its termination protocol
    /// could still decide, and a recovering coordinator must wait for it).
    fn start_operational(id: u32) -> FakeParticipant {
        Self::start_full(id, TxnState::Waiting, true, false)
    }

    /// A fake that votes but never answers a Decide (stuck applying it), while its
    /// channel stays up.
    fn start_deaf_to_decide(id: u32) -> FakeParticipant {
        Self::start_full(id, TxnState::Waiting, false, true)
    }

    /// `recovered`: what its state replies say about a restart since its vote.
    fn start_full(
        id: u32,
        not_precommitted: TxnState,
        answers_decide: bool,
        recovered: bool,
    ) -> FakeParticipant {
        let listener = runtime::block_on(Listener::bind("127.0.0.1:0".parse().expect("addr")))
            .expect("bind fake participant");
        let addr = listener.local_addr();
        let (events_tx, events) = wire::event_queue(1024);
        let config = Arc::new(ChannelConfig::new(NodeId(id), Role::Participant, CLUSTER));
        let serve = listener.serve(config, vec![Role::Coordinator], events_tx);
        let (seen_tx, seen) = mpsc::channel();
        let coordinator = Arc::new(Mutex::new(None));
        let current = coordinator.clone();
        runtime::spawn(async move {
            let mut channels: HashMap<wire::Epoch, Channel> = HashMap::new();
            let mut precommitted: HashSet<TxnId> = HashSet::new();
            while let Ok(event) = events.recv().await {
                match event {
                    ChannelEvent::Up { channel } => {
                        *current.lock().expect("lock") = Some(channel.clone());
                        channels.insert(channel.epoch(), channel);
                    }
                    ChannelEvent::Down { epoch, .. } => {
                        channels.remove(&epoch);
                    }
                    ChannelEvent::Request { epoch, id, msg, .. } => {
                        let Some(channel) = channels.get(&epoch) else {
                            continue;
                        };
                        let Request::Participant(msg) = msg else {
                            let _ = channel.respond(id, msg.refused("fake participant".into()));
                            continue;
                        };
                        let reply = match msg {
                            ToParticipant::Decide { txn, decision, .. } if !answers_decide => {
                                let _ = seen_tx.send(Seen::Decided(txn, decision));
                                continue;
                            }
                            ToParticipant::PreCommit { txn } => {
                                precommitted.insert(txn);
                                let _ = seen_tx.send(Seen::PreCommitted(txn));
                                FromParticipant::Ack {
                                    txn,
                                    outcome: Outcome::PreCommitted,
                                }
                            }
                            ToParticipant::StateQuery { txn } => {
                                let _ = seen_tx.send(Seen::StateQueried(txn));
                                let state = if precommitted.contains(&txn) {
                                    TxnState::PreCommitted
                                } else {
                                    not_precommitted
                                };
                                FromParticipant::StateReply {
                                    txn,
                                    state,
                                    recovered,
                                }
                            }
                            other => answer(&other, &seen_tx),
                        };
                        let _ = channel.respond(id, reply);
                    }
                    ChannelEvent::Response { msg, .. } => {
                        if let Response::Coordinator(FromCoordinator::DecisionAnswer {
                            txn,
                            answer,
                        }) = msg
                        {
                            let _ = seen_tx.send(Seen::Answer(txn, answer));
                        }
                    }
                }
            }
        });
        FakeParticipant {
            addr,
            seen,
            coordinator,
            _serve: serve,
        }
    }

    fn next(&self) -> Seen {
        self.seen
            .recv_timeout(COMMAND_TIMEOUT)
            .expect("fake participant saw nothing in time")
    }

    fn ask_decision(&self, txn: TxnId) {
        let channel = self.coordinator.lock().expect("lock").clone();
        channel
            .expect("connected to the coordinator")
            .request(ToCoordinator::DecisionQuery { txn })
            .expect("queue DecisionQuery");
    }
}

/// Votes NO on the refused key, ReadOnly (every key = 1) on all-Get parts, else YES.
fn answer(msg: &ToParticipant, seen: &mpsc::Sender<Seen>) -> FromParticipant {
    match msg {
        ToParticipant::Prepare { txn, ops, .. } => {
            let _ = seen.send(Seen::Prepared(*txn));
            if ops.iter().any(|op| op.key() == REFUSED_KEY) {
                FromParticipant::Vote {
                    txn: *txn,
                    vote: Vote::No {
                        reason: "refused by test".to_string(),
                    },
                    reads: vec![],
                }
            } else if ops.iter().all(Op::is_read) {
                let reads = ops
                    .iter()
                    .map(|op| Read {
                        key: op.key().to_string(),
                        value: Some(Value::Int(1)),
                    })
                    .collect();
                FromParticipant::Vote {
                    txn: *txn,
                    vote: Vote::ReadOnly,
                    reads,
                }
            } else {
                FromParticipant::Vote {
                    txn: *txn,
                    vote: Vote::Yes,
                    reads: vec![],
                }
            }
        }
        ToParticipant::Decide { txn, decision, .. } => {
            let _ = seen.send(Seen::Decided(*txn, *decision));
            FromParticipant::Ack {
                txn: *txn,
                outcome: match decision {
                    Decision::Commit => Outcome::Committed,
                    Decision::Abort => Outcome::Aborted,
                },
            }
        }
        ToParticipant::PreCommit { .. }
        | ToParticipant::StateQuery { .. }
        | ToParticipant::Release { .. } => FromParticipant::Refused {
            reason: "fake participant".to_string(),
        },
    }
}

fn serve_args(db: &str, fakes: &[&FakeParticipant], crash_at: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = [
        "serve",
        "--id",
        "100",
        "--listen",
        "127.0.0.1:0",
        "--cluster",
        CLUSTER,
        "--db",
        db,
        "--heartbeat-ms",
        "50",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (index, fake) in fakes.iter().enumerate() {
        args.push("--participant".to_string());
        args.push(format!("{}={}", index + 1, fake.addr));
    }
    if let Some(point) = crash_at {
        args.push("--crash-at".to_string());
        args.push(point.to_string());
    }
    args
}

/// Polls `coordinator status` until no participant is down (bounded).
fn wait_all_up(server: &Server) -> String {
    let addr = server.addr.to_string();
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        let out = run(&["status", "--addr", &addr, "--cluster", CLUSTER]);
        assert_eq!(out.code, Some(0), "{out:?}");
        if !out.stdout.contains(" DOWN") {
            return out.stdout;
        }
        assert!(
            Instant::now() < deadline,
            "participants never came up:\n{}",
            out.stdout
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn submit(server: &Server, ops: &[&str]) -> super::support::Finished {
    let addr = server.addr.to_string();
    let mut args = vec![
        "submit",
        "--addr",
        &addr,
        "--cluster",
        CLUSTER,
        "--timeout-ms",
        "2000",
    ];
    args.extend_from_slice(ops);
    run(&args)
}

#[test]
fn submit_commits_aborts_reads_and_rejects() {
    let one = FakeParticipant::start(1);
    let two = FakeParticipant::start(2);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("c.db").display().to_string();
    let server = Server::start(&serve_args(&db, &[&one, &two], None));
    let status = wait_all_up(&server);
    assert!(status.contains("participants:"), "{status}");

    let out = submit(&server, &["1:add alice -5 min 0", "2:add bob 5"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.starts_with("txn ") && out.stdout.ends_with("committed\n"),
        "{out:?}"
    );
    for fake in [&one, &two] {
        let Seen::Prepared(txn) = fake.next() else {
            panic!("prepare expected")
        };
        assert_eq!(fake.next(), Seen::Decided(txn, Decision::Commit));
    }

    let out = submit(&server, &["1:add alice -5 min 0", "2:add refuse 5"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout
            .contains("aborted: participant 2 voted no: refused by test"),
        "{out:?}"
    );
    let Seen::Prepared(txn) = one.next() else {
        panic!("prepare expected")
    };
    assert_eq!(one.next(), Seen::Decided(txn, Decision::Abort));
    assert!(matches!(two.next(), Seen::Prepared(_)));

    let out = submit(&server, &["1:get alice", "2:get bob"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.ends_with("committed\n1:alice = 1\n2:bob = 1\n"),
        "{out:?}"
    );

    let out = submit(&server, &["7:get x"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout.contains("rejected: unknown participant 7"),
        "{out:?}"
    );
}

#[test]
fn commit_logged_before_a_crash_is_sent_after_restart() {
    let one = FakeParticipant::start(1);
    let two = FakeParticipant::start(2);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("c.db").display().to_string();
    let mut server = Server::start(&serve_args(
        &db,
        &[&one, &two],
        Some("coordinator.after_commit_logged"),
    ));
    wait_all_up(&server);
    let out = submit(&server, &["1:add alice -5 min 0", "2:add bob 5"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("outcome UNKNOWN"), "{out:?}");
    assert_ne!(
        server.wait_exit(),
        Some(0),
        "the crash point must kill the process"
    );
    let Seen::Prepared(txn) = one.next() else {
        panic!("prepare expected")
    };
    assert_eq!(two.next(), Seen::Prepared(txn));

    // Restarted without the crash point: recovery finds the durable commit and sends it.
    let server = Server::start(&serve_args(&db, &[&one, &two], None));
    assert_eq!(one.next(), Seen::Decided(txn, Decision::Commit));
    assert_eq!(two.next(), Seen::Decided(txn, Decision::Commit));
    // Both acked: the commit ends, and nothing is left undecided.
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        let status = wait_all_up(&server);
        if status.contains("decided, not ended: 0") {
            break;
        }
        assert!(Instant::now() < deadline, "commit never ended:\n{status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn crash_before_the_commit_is_logged_presumes_abort_after_restart() {
    let one = FakeParticipant::start(1);
    let two = FakeParticipant::start(2);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("c.db").display().to_string();
    let mut server = Server::start(&serve_args(
        &db,
        &[&one, &two],
        Some("coordinator.before_commit_logged"),
    ));
    wait_all_up(&server);
    let out = submit(&server, &["1:add alice -5 min 0", "2:add bob 5"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_ne!(server.wait_exit(), Some(0));
    let Seen::Prepared(txn) = one.next() else {
        panic!("prepare expected")
    };

    let server = Server::start(&serve_args(&db, &[&one, &two], None));
    wait_all_up(&server);
    // An in-doubt participant asks: no record of a commit, so Abort (presumed abort).
    one.ask_decision(txn);
    assert_eq!(one.next(), Seen::Answer(txn, Answer::Abort));
}

fn submit_3pc(server: &Server, ops: &[&str]) -> super::support::Finished {
    let addr = server.addr.to_string();
    let mut args = vec![
        "submit",
        "--addr",
        &addr,
        "--cluster",
        CLUSTER,
        "--protocol",
        "3pc",
        "--timeout-ms",
        "2000",
    ];
    args.extend_from_slice(ops);
    run(&args)
}

/// Reads what `fake` saw until `wanted` (bounded: fails after `COMMAND_TIMEOUT`).
fn wait_seen(fake: &FakeParticipant, wanted: &Seen) {
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match fake.seen.recv_timeout(Duration::from_millis(100)) {
            Ok(event) if &event == wanted => return,
            Ok(event) => seen.push(event),
            Err(_) => {}
        }
    }
    panic!("fake participant never saw {wanted:?}; saw {seen:?}");
}

/// Polls `coordinator status` until no decided transaction is left unended.
fn wait_all_ended(server: &Server) {
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        let status = wait_all_up(server);
        if status.contains("decided, not ended: 0") {
            return;
        }
        assert!(Instant::now() < deadline, "txns never ended:\n{status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `(protocol, decision, reason, ended)` of `txn`'s row in the decision log.
fn decision_row(db: &str, txn: TxnId) -> (String, String, Option<String>, bool) {
    use sqlx::{Connection, Row};
    runtime::block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{db}?mode=ro"))
            .await
            .expect("open decision log");
        let row = sqlx::query(
            "SELECT protocol, decision, reason, ended_at IS NOT NULL AS ended \
             FROM decision WHERE txn_id = ?1",
        )
        .bind(txn.to_string())
        .fetch_one(&mut conn)
        .await
        .expect("decision row");
        (
            row.get("protocol"),
            row.get("decision"),
            row.get("reason"),
            row.get("ended"),
        )
    })
}

#[test]
fn three_phase_submit_precommits_then_commits() {
    let one = FakeParticipant::start(1);
    let two = FakeParticipant::start(2);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("c.db").display().to_string();
    let server = Server::start(&serve_args(&db, &[&one, &two], None));
    wait_all_up(&server);

    let out = submit_3pc(&server, &["1:add alice -5 min 0", "2:add bob 5"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.ends_with("committed\n"), "{out:?}");
    for fake in [&one, &two] {
        let Seen::Prepared(txn) = fake.next() else {
            panic!("CanCommit expected")
        };
        assert_eq!(fake.next(), Seen::PreCommitted(txn));
        assert_eq!(fake.next(), Seen::Decided(txn, Decision::Commit));
    }
    wait_all_ended(&server);

    let out = submit_3pc(&server, &["1:add alice -5 min 0", "2:add refuse 5"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout
            .contains("aborted: participant 2 voted no: refused by test"),
        "{out:?}"
    );
}

#[test]
fn three_phase_precommit_logged_before_a_crash_becomes_the_abort_the_participants_decided() {
    // Nobody got a PreCommit: with the coordinator down, the participants' termination
    // protocol aborts (the fakes report Aborted for a txn they got no PreCommit for).
    let one = FakeParticipant::start_with(1, TxnState::Aborted);
    let two = FakeParticipant::start_with(2, TxnState::Aborted);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("c.db").display().to_string();
    let mut server = Server::start(&serve_args(
        &db,
        &[&one, &two],
        Some("coordinator.after_commit_logged"),
    ));
    wait_all_up(&server);
    let out = submit_3pc(&server, &["1:add alice -5 min 0", "2:add bob 5"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_ne!(server.wait_exit(), Some(0));
    let Seen::Prepared(txn) = one.next() else {
        panic!("CanCommit expected")
    };
    assert_eq!(two.next(), Seen::Prepared(txn));
    assert_eq!(
        decision_row(&db, txn),
        ("3pc".to_string(), "commit".to_string(), None, false),
        "the precommit is durable"
    );

    // Restarted: it asks the states of whoever comes up first; the first Aborted reply is
    // enough to adopt the abort, so the other participant may get the Abort without ever
    // being asked. Only the durable outcome is certain.
    let server = Server::start(&serve_args(&db, &[&one, &two], None));
    wait_all_ended(&server);
    let (protocol, decision, reason, ended) = decision_row(&db, txn);
    assert_eq!(
        (protocol.as_str(), decision.as_str(), ended),
        ("3pc", "abort", true)
    );
    let reason = reason.expect("the adopted abort has a reason");
    assert!(
        reason.contains("aborted while the coordinator was down"),
        "{reason}"
    );
}

#[test]
fn three_phase_crash_after_a_precommit_ack_finishes_as_commit_after_restart() {
    let one = FakeParticipant::start(1);
    let two = FakeParticipant::start(2);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("c.db").display().to_string();
    let mut server = Server::start(&serve_args(
        &db,
        &[&one, &two],
        Some("coordinator.after_first_precommit_acked"),
    ));
    wait_all_up(&server);
    let out = submit_3pc(&server, &["1:add alice -5 min 0", "2:add bob 5"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_ne!(server.wait_exit(), Some(0));
    let Seen::Prepared(txn) = one.next() else {
        panic!("CanCommit expected")
    };

    // Restarted: asks the states; both participants restarted since their vote too, so
    // nobody else can decide: the coordinator commits.
    let server = Server::start(&serve_args(&db, &[&one, &two], None));
    for fake in [&one, &two] {
        wait_seen(fake, &Seen::StateQueried(txn));
        wait_seen(fake, &Seen::Decided(txn, Decision::Commit));
    }
    wait_all_ended(&server);
    // The end record is written lazily, after the transaction is forgotten: poll for it.
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    while !decision_row(&db, txn).3 {
        assert!(
            Instant::now() < deadline,
            "the end record never became durable"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        decision_row(&db, txn),
        ("3pc".to_string(), "commit".to_string(), None, true)
    );
}

#[test]
fn three_phase_recovery_waits_while_a_participant_may_still_decide() {
    let one = FakeParticipant::start(1);
    let two = FakeParticipant::start_operational(2);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("c.db").display().to_string();
    let mut server = Server::start(&serve_args(
        &db,
        &[&one, &two],
        Some("coordinator.after_first_precommit_acked"),
    ));
    wait_all_up(&server);
    let out = submit_3pc(&server, &["1:add alice -5 min 0", "2:add bob 5"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_ne!(server.wait_exit(), Some(0));
    let Seen::Prepared(txn) = one.next() else {
        panic!("CanCommit expected")
    };

    // Participant 2 is operational: its termination protocol may be deciding, so the
    // coordinator only asks (again and again), never PreCommits or decides itself.
    let server = Server::start(&serve_args(&db, &[&one, &two], None));
    wait_seen(&two, &Seen::StateQueried(txn));
    wait_seen(&two, &Seen::StateQueried(txn));
    let status = wait_all_up(&server);
    assert!(status.contains("decided, not ended: 1"), "{status}");
    while let Ok(seen) = two.seen.try_recv() {
        assert_eq!(seen, Seen::StateQueried(txn), "the coordinator acted alone");
    }
}

/// `(in flight, queued)` of participant `id`'s channel, from a status report.
fn channel_load(status: &str, id: u32) -> (usize, usize) {
    let line = status
        .lines()
        .find(|line| line.trim_start().starts_with(&format!("{id} ")))
        .unwrap_or_else(|| panic!("no line for participant {id}:\n{status}"));
    let count_before = |label: &str| -> usize {
        let head = line
            .split(label)
            .next()
            .unwrap_or_else(|| panic!("no {label:?} in {line:?}"));
        let number = head.split_whitespace().last().unwrap_or_default();
        number
            .parse()
            .unwrap_or_else(|_| panic!("no count before {label:?} in {line:?}"))
    };
    (count_before(" requests in flight"), count_before(" queued"))
}

#[test]
fn a_participant_that_stops_answering_gets_one_copy_of_each_request_not_one_per_resend() {
    let deaf = FakeParticipant::start_deaf_to_decide(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("c.db").display().to_string();
    let mut args = serve_args(&db, &[&deaf], None);
    args.extend(["--decide-resend-ms".to_string(), "50".to_string()]);
    let server = Server::start(&args);
    wait_all_up(&server);
    // 2PC: the client hears "committed" at its timeout though the ack never comes.
    let out = submit(&server, &["1:add alice 5"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let Seen::Prepared(txn) = deaf.next() else {
        panic!("prepare expected")
    };
    assert_eq!(deaf.next(), Seen::Decided(txn, Decision::Commit));
    // The submit alone took about 40 resend intervals; wait 10 more, then count.
    std::thread::sleep(Duration::from_millis(500));
    let status = wait_all_up(&server);
    assert!(status.contains("decided, not ended: 1"), "{status}");
    assert_eq!(
        channel_load(&status, 1),
        (1, 0),
        "only the first Commit is outstanding:\n{status}"
    );
    let resent: Vec<Seen> = deaf.seen.try_iter().collect();
    assert_eq!(resent, vec![], "no copy reached the participant");
}
