//! 2PC against the real binary, with this test as the coordinator (raw wire channels).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use participant::store::Store;
use uuid::Uuid;
use wire::runtime::{block_on, timeout};
use wire::{
    Answer, Channel, ChannelConfig, ChannelEvent, ClientRequest, ClientResponse, Decision,
    DialHandle, EventReceiver, FromCoordinator, FromParticipant, NodeId, Op, Outcome, Protocol,
    Read, Request, Response, Role, ToCoordinator, ToParticipant, TxnId, Value, Vote,
};

use crate::process::{CHILD_WAIT, CLUSTER, ChildGuard, participant, serve};

const PARTICIPANT: u32 = 4;
const COORDINATOR: NodeId = NodeId(1);

/// This test playing coordinator: one dialled channel to the participant.
struct Coordinator {
    channel: Channel,
    events: EventReceiver,
    _dial: DialHandle,
}

impl Coordinator {
    fn connect(addr: SocketAddr) -> Coordinator {
        let config = Arc::new(ChannelConfig::new(COORDINATOR, Role::Coordinator, CLUSTER));
        let (sender, events) = wire::event_queue(64);
        let dial = wire::dial(addr, NodeId(PARTICIPANT), Role::Participant, config, sender);
        match next_event(&events) {
            ChannelEvent::Up { channel } => Coordinator {
                channel,
                events,
                _dial: dial,
            },
            other => panic!("expected Up, got {other:?}"),
        }
    }

    /// Sends `msg` as a request and returns the response (bounded).
    fn call(&self, msg: impl Into<Request>) -> Response {
        let id = self.channel.request(msg.into()).expect("request");
        match next_event(&self.events) {
            ChannelEvent::Response { id: got, msg, .. } if got == id => msg,
            other => panic!("expected the response to {id:?}, got {other:?}"),
        }
    }

    /// The next request the participant sends us (bounded).
    fn next_request(&self) -> (wire::RequestId, Request) {
        match next_event(&self.events) {
            ChannelEvent::Request { id, msg, .. } => (id, msg),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn prepare(&self, txn: TxnId, ops: Vec<Op>) -> Response {
        self.call(ToParticipant::Prepare {
            txn,
            protocol: Protocol::TwoPhase,
            ops,
            timeout_ms: 5_000,
            participants: vec![NodeId(PARTICIPANT)],
        })
    }

    fn decide(&self, txn: TxnId, decision: Decision) -> Response {
        self.call(ToParticipant::Decide {
            txn,
            decision,
            reason: None,
        })
    }
}

fn next_event(events: &EventReceiver) -> ChannelEvent {
    block_on(timeout(CHILD_WAIT, events.recv()))
        .expect("no channel event in time")
        .expect("event queue open")
}

fn put(key: &str, value: Value) -> Op {
    Op::Put {
        key: key.to_string(),
        value,
    }
}

fn get(key: &str) -> Op {
    Op::Get {
        key: key.to_string(),
    }
}

fn yes(txn: TxnId, reads: Vec<Read>) -> Response {
    FromParticipant::Vote {
        txn,
        vote: Vote::Yes,
        reads,
    }
    .into()
}

fn no(txn: TxnId, reason: String) -> Response {
    FromParticipant::Vote {
        txn,
        vote: Vote::No { reason },
        reads: vec![],
    }
    .into()
}

fn read(key: &str, value: Option<Value>) -> Read {
    Read {
        key: key.to_string(),
        value,
    }
}

fn read_only(txn: TxnId, reads: Vec<Read>) -> Response {
    FromParticipant::Vote {
        txn,
        vote: Vote::ReadOnly,
        reads,
    }
    .into()
}

fn ack(txn: TxnId, outcome: Outcome) -> Response {
    FromParticipant::Ack { txn, outcome }.into()
}

fn committed_value(db: &Path, key: &str) -> Option<Value> {
    block_on(async {
        let store = Store::open(db).await.expect("open store");
        let values = store.values([key]).await.expect("read");
        store.close().await;
        values[key].clone()
    })
}

#[test]
fn votes_commits_and_refuses_over_the_wire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("p.db");
    let serving = serve(PARTICIPANT, &db, &[]);
    let coordinator = Coordinator::connect(serving.addr);
    let (t1, t2, t3, t4, t5) = (
        TxnId(Uuid::now_v7()),
        TxnId(Uuid::now_v7()),
        TxnId(Uuid::now_v7()),
        TxnId(Uuid::now_v7()),
        TxnId(Uuid::now_v7()),
    );

    let ops = vec![
        put("a", Value::Int(5)),
        put("b", Value::Text("x".into())),
        get("c"),
    ];
    assert_eq!(
        coordinator.prepare(t1, ops.clone()),
        yes(t1, vec![read("c", None)])
    );
    assert_eq!(coordinator.prepare(t1, ops), yes(t1, vec![read("c", None)]));
    let conflict = format!("lock conflict on key \"a\" held by txn {t1}");
    assert_eq!(
        coordinator.prepare(t2, vec![put("a", Value::Int(6))]),
        no(t2, conflict)
    );
    assert_eq!(
        coordinator.decide(t1, Decision::Commit),
        ack(t1, Outcome::Committed)
    );
    assert_eq!(
        coordinator.decide(t1, Decision::Commit),
        ack(t1, Outcome::Committed)
    );
    assert_eq!(
        coordinator.prepare(t3, vec![get("a"), get("b")]),
        read_only(
            t3,
            vec![
                read("a", Some(Value::Int(5))),
                read("b", Some(Value::Text("x".into())))
            ]
        )
    );
    let below = "adding -10 to key \"a\" would make it -5, below the minimum 0".to_string();
    assert_eq!(
        coordinator.prepare(
            t4,
            vec![Op::Add {
                key: "a".into(),
                delta: -10,
                min: Some(0),
                max: None
            }]
        ),
        no(t4, below)
    );
    assert_eq!(
        coordinator.decide(t5, Decision::Commit),
        ack(t5, Outcome::Unknown)
    );
    // A commit waits for its record, and records become durable in order: after this
    // every earlier record (the two NO votes') is durable too.
    let t6 = TxnId(Uuid::now_v7());
    assert_eq!(
        coordinator.prepare(t6, vec![put("z", Value::Int(1))]),
        yes(t6, vec![])
    );
    assert_eq!(
        coordinator.decide(t6, Decision::Commit),
        ack(t6, Outcome::Committed)
    );
    assert_eq!(
        coordinator.call(ClientRequest::Status),
        Response::Client(ClientResponse::Refused {
            reason: format!(
                "participant {PARTICIPANT} does not serve Status requests from a Coordinator"
            )
        })
    );

    let mut status = participant();
    status
        .args([
            "status",
            "--addr",
            &serving.addr.to_string(),
            "--cluster",
            CLUSTER,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut status = ChildGuard::spawn(status);
    let mut stdout = status.take_stdout().expect("stdout piped");
    let text = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    assert!(status.wait().success());
    let text = text.join().expect("status output");
    assert!(
        text.contains("stored txns: aborted 2, committed 2"),
        "{text}"
    );
    assert!(text.contains("in doubt: 0"), "{text}");
    assert!(text.contains("locks held: 0"), "{text}");
    assert!(
        text.contains(&format!("connected coordinators: {COORDINATOR} (")),
        "{text}"
    );

    drop(coordinator);
    drop(serving);
    assert_eq!(committed_value(&db, "a"), Some(Value::Int(5)));
    assert_eq!(committed_value(&db, "b"), Some(Value::Text("x".into())));
}

#[test]
fn crash_after_prepare_logged_restarts_in_doubt_and_learns_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("p.db");
    let t1 = TxnId(Uuid::now_v7());
    let mut serving = serve(
        PARTICIPANT,
        &db,
        &["--crash-at", "participant.after_prepare_logged"],
    );
    let coordinator = Coordinator::connect(serving.addr);
    coordinator
        .channel
        .request(ToParticipant::Prepare {
            txn: t1,
            protocol: Protocol::TwoPhase,
            ops: vec![put("a", Value::Int(7))],
            timeout_ms: 5_000,
            participants: vec![NodeId(PARTICIPANT)],
        })
        .expect("request");
    let status = serving.child.wait();
    assert!(!status.success(), "crash point should abort: {status:?}");
    // The process died before answering: the channel goes down with no response.
    assert!(
        matches!(next_event(&coordinator.events), ChannelEvent::Down { .. }),
        "no response may precede the crash"
    );
    drop(coordinator);
    // Prepared but undecided: nothing applied.
    assert_eq!(committed_value(&db, "a"), None);

    let serving = serve(PARTICIPANT, &db, &["--decision-query-backoff-min-ms", "50"]);
    let coordinator = Coordinator::connect(serving.addr);
    let (id, msg) = coordinator.next_request();
    assert_eq!(msg, ToCoordinator::DecisionQuery { txn: t1 }.into());
    coordinator
        .channel
        .respond(
            id,
            FromCoordinator::DecisionAnswer {
                txn: t1,
                answer: Answer::Commit,
            },
        )
        .expect("respond");
    // A Decide now is answered once the commit is durable.
    assert_eq!(
        coordinator.decide(t1, Decision::Commit),
        ack(t1, Outcome::Committed)
    );
    let t2 = TxnId(Uuid::now_v7());
    assert_eq!(
        coordinator.prepare(t2, vec![get("a")]),
        read_only(t2, vec![read("a", Some(Value::Int(7)))])
    );
}

#[test]
fn crash_after_commit_applied_acks_the_repeated_commit_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("p.db");
    let t1 = TxnId(Uuid::now_v7());
    let mut serving = serve(
        PARTICIPANT,
        &db,
        &["--crash-at", "participant.after_commit_applied"],
    );
    let coordinator = Coordinator::connect(serving.addr);
    assert_eq!(
        coordinator.prepare(t1, vec![put("a", Value::Int(8))]),
        yes(t1, vec![])
    );
    coordinator
        .channel
        .request(ToParticipant::Decide {
            txn: t1,
            decision: Decision::Commit,
            reason: None,
        })
        .expect("request");
    let status = serving.child.wait();
    assert!(!status.success(), "crash point should abort: {status:?}");
    // The process died before answering: the channel goes down with no response.
    assert!(
        matches!(next_event(&coordinator.events), ChannelEvent::Down { .. }),
        "no response may precede the crash"
    );
    drop(coordinator);
    assert_eq!(committed_value(&db, "a"), Some(Value::Int(8)));

    let serving = serve(PARTICIPANT, &db, &[]);
    let coordinator = Coordinator::connect(serving.addr);
    assert_eq!(
        coordinator.decide(t1, Decision::Commit),
        ack(t1, Outcome::Committed)
    );
    assert_eq!(coordinator.prepare(t1, vec![]), yes(t1, vec![]));
    let t2 = TxnId(Uuid::now_v7());
    assert_eq!(
        coordinator.prepare(t2, vec![get("a")]),
        read_only(t2, vec![read("a", Some(Value::Int(8)))])
    );
}
