//! 3PC and the participant mesh against real binaries: two participants (1 and 2, 2 dials
//! 1), this test playing the coordinator over raw wire channels, then "dying" (closing its
//! channels) so that the participants finish the txn among themselves.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use participant::core::StoredState;
use participant::store::Store;
use uuid::Uuid;
use wire::runtime::{block_on, timeout};
use wire::{
    Answer, Channel, ChannelConfig, ChannelEvent, Decision, DialHandle, EventReceiver,
    FromCoordinator, FromParticipant, NodeId, Op, Outcome, Protocol, Request, RequestId, Response,
    Role, ToCoordinator, ToParticipant, TxnId, Value, Vote,
};

use crate::process::{CHILD_WAIT, CLUSTER, ChildGuard, Serving, participant, serve};

const COORDINATOR: NodeId = NodeId(100);
/// How long the test waits for state to converge (a bound, not a timing assertion).
const CONVERGE: Duration = Duration::from_secs(20);

/// This test playing coordinator on one participant: one dialled channel.
struct Link {
    channel: Channel,
    events: EventReceiver,
    _dial: DialHandle,
}

impl Link {
    fn connect(addr: SocketAddr, participant: u32) -> Link {
        let config = Arc::new(ChannelConfig::new(COORDINATOR, Role::Coordinator, CLUSTER));
        let (sender, events) = wire::event_queue(64);
        let dial = wire::dial(addr, NodeId(participant), Role::Participant, config, sender);
        match next_event(&events) {
            ChannelEvent::Up { channel } => Link {
                channel,
                events,
                _dial: dial,
            },
            other => panic!("expected Up, got {other:?}"),
        }
    }

    /// Sends `msg` and returns its response (bounded); requests the participant sends us
    /// meanwhile (decision queries) are answered "undecided".
    fn call(&self, msg: impl Into<Request>) -> Response {
        let id = self.channel.request(msg.into()).expect("request");
        loop {
            match next_event(&self.events) {
                ChannelEvent::Response { id: got, msg, .. } if got == id => return msg,
                ChannelEvent::Request { id, msg, .. } => self.undecided(id, &msg),
                other => panic!("expected the response to {id:?}, got {other:?}"),
            }
        }
    }

    fn undecided(&self, id: RequestId, msg: &Request) {
        if let Request::Coordinator(ToCoordinator::DecisionQuery { txn }) = msg {
            let answer = FromCoordinator::DecisionAnswer {
                txn: *txn,
                answer: Answer::Undecided,
            };
            let _ = self.channel.respond(id, answer);
        }
    }

    fn prepare(&self, txn: TxnId, protocol: Protocol, key: &str) -> Response {
        self.call(ToParticipant::Prepare {
            txn,
            protocol,
            ops: vec![Op::Put {
                key: key.to_string(),
                value: Value::Int(1),
            }],
            timeout_ms: 10_000,
            participants: vec![NodeId(1), NodeId(2)],
        })
    }
}

fn next_event(events: &EventReceiver) -> ChannelEvent {
    block_on(timeout(CHILD_WAIT, events.recv()))
        .expect("no channel event in time")
        .expect("event queue open")
}

fn yes(txn: TxnId) -> Response {
    FromParticipant::Vote {
        txn,
        vote: Vote::Yes,
        reads: vec![],
    }
    .into()
}

fn ack(txn: TxnId, outcome: Outcome) -> Response {
    FromParticipant::Ack { txn, outcome }.into()
}

/// The txn's state in the participant's database (read while it runs, as sqlite3 would).
fn stored_state(db: &Path, txn: TxnId) -> Option<StoredState> {
    block_on(async {
        let store = Store::open(db).await.expect("open store");
        let stored = store.txn(txn).await.expect("read txn");
        store.close().await;
        stored.map(|stored| stored.state)
    })
}

/// Polls `done` until it holds, at most `CONVERGE`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + CONVERGE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn status_text(addr: SocketAddr) -> String {
    let mut command = participant();
    command
        .args(["status", "--addr", &addr.to_string(), "--cluster", CLUSTER])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = ChildGuard::spawn(command);
    let mut stdout = child.take_stdout().expect("stdout piped");
    let text = thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    assert!(child.wait().success());
    text.join().expect("status output")
}

/// Participant 1 (lists no peer) and participant 2 (lists 1, so it dials 1), connected.
fn pair(dir: &Path, extra_2: &[&str]) -> (Serving, Serving) {
    let fast = ["--decision-query-backoff-min-ms", "50"];
    let one = serve(1, &dir.join("p1.db"), &fast);
    let peer = format!("1={}", one.addr);
    let two = serve(
        2,
        &dir.join("p2.db"),
        &[&fast[..], &["--peer", &peer], extra_2].concat(),
    );
    wait_until("the mesh channel", || {
        status_text(one.addr).contains("peer 2 (")
            && status_text(two.addr).contains("connected, dialled by us")
    });
    (one, two)
}

#[test]
fn coordinator_dying_after_the_first_precommit_makes_the_termination_protocol_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, two) = pair(dir.path(), &[]);
    let status = status_text(two.addr);
    assert!(
        status.contains(&format!("peer 1 ({}): connected, dialled by us", one.addr)),
        "{status}"
    );
    assert!(status.contains("phi "), "{status}");
    let t1 = TxnId(Uuid::now_v7());
    let (link_1, link_2) = (Link::connect(one.addr, 1), Link::connect(two.addr, 2));
    assert_eq!(link_1.prepare(t1, Protocol::ThreePhase, "a"), yes(t1));
    assert_eq!(link_2.prepare(t1, Protocol::ThreePhase, "b"), yes(t1));
    assert_eq!(
        link_2.call(ToParticipant::PreCommit { txn: t1 }),
        ack(t1, Outcome::PreCommitted)
    );
    let status = status_text(one.addr);
    assert!(status.contains("1 waiting"), "{status}");
    // The coordinator dies before PreCommit reaches participant 1.
    drop((link_1, link_2));
    let db_1 = dir.path().join("p1.db");
    let db_2 = dir.path().join("p2.db");
    wait_until("both committed", || {
        stored_state(&db_1, t1) == Some(StoredState::Committed)
            && stored_state(&db_2, t1) == Some(StoredState::Committed)
    });
    // A late DoCommit from a restarted coordinator is acked with the outcome.
    let link_1 = Link::connect(one.addr, 1);
    assert_eq!(
        link_1.call(ToParticipant::Decide {
            txn: t1,
            decision: Decision::Commit,
            reason: None,
        }),
        ack(t1, Outcome::Committed)
    );
}

#[test]
fn coordinator_dying_before_any_precommit_makes_the_termination_protocol_abort() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, two) = pair(dir.path(), &[]);
    let t1 = TxnId(Uuid::now_v7());
    let (link_1, link_2) = (Link::connect(one.addr, 1), Link::connect(two.addr, 2));
    assert_eq!(link_1.prepare(t1, Protocol::ThreePhase, "a"), yes(t1));
    assert_eq!(link_2.prepare(t1, Protocol::ThreePhase, "b"), yes(t1));
    drop((link_1, link_2));
    let db_1 = dir.path().join("p1.db");
    let db_2 = dir.path().join("p2.db");
    wait_until("both aborted", || {
        stored_state(&db_1, t1) == Some(StoredState::Aborted)
            && stored_state(&db_2, t1) == Some(StoredState::Aborted)
    });
    // The coordinator's PreCommit, too late, learns the truth: no state goes backwards.
    let link_2 = Link::connect(two.addr, 2);
    assert_eq!(
        link_2.call(ToParticipant::PreCommit { txn: t1 }),
        ack(t1, Outcome::Aborted)
    );
    assert_eq!(stored_state(&db_2, t1), Some(StoredState::Aborted));
}

#[test]
fn in_doubt_2pc_participant_learns_the_commit_from_its_peer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, two) = pair(dir.path(), &[]);
    let t1 = TxnId(Uuid::now_v7());
    let (link_1, link_2) = (Link::connect(one.addr, 1), Link::connect(two.addr, 2));
    assert_eq!(link_1.prepare(t1, Protocol::TwoPhase, "a"), yes(t1));
    assert_eq!(link_2.prepare(t1, Protocol::TwoPhase, "b"), yes(t1));
    assert_eq!(
        link_1.call(ToParticipant::Decide {
            txn: t1,
            decision: Decision::Commit,
            reason: None,
        }),
        ack(t1, Outcome::Committed)
    );
    // The coordinator dies before telling participant 2, which asks participant 1.
    drop((link_1, link_2));
    let db_2 = dir.path().join("p2.db");
    wait_until("participant 2 committed", || {
        stored_state(&db_2, t1) == Some(StoredState::Committed)
    });
}

#[test]
fn crash_after_precommit_logged_recovers_precommitted_and_finishes_with_its_peer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, mut two) = pair(
        dir.path(),
        &["--crash-at", "participant.after_precommit_logged"],
    );
    let t1 = TxnId(Uuid::now_v7());
    let (link_1, link_2) = (Link::connect(one.addr, 1), Link::connect(two.addr, 2));
    assert_eq!(link_1.prepare(t1, Protocol::ThreePhase, "a"), yes(t1));
    assert_eq!(link_2.prepare(t1, Protocol::ThreePhase, "b"), yes(t1));
    link_2
        .channel
        .request(ToParticipant::PreCommit { txn: t1 })
        .expect("request");
    let status = two.child.wait();
    assert!(!status.success(), "crash point should abort: {status:?}");
    drop(link_2);
    let db_2 = dir.path().join("p2.db");
    assert_eq!(stored_state(&db_2, t1), Some(StoredState::PreCommitted));

    // Restarted, participant 2 finds the txn precommitted and rejoins the mesh; then the
    // coordinator dies too, and participant 1 (waiting, never failed) leads the termination
    // protocol. A recovered participant's `precommitted` is no evidence (the operational
    // ones may have aborted while it was down), so participant 1 decides on its own
    // `waiting`: abort, which participant 2 applies.
    let peer = format!("1={}", one.addr);
    let two = serve(2, &db_2, &["--peer", &peer]);
    wait_until("participant 2 back in the mesh", || {
        status_text(two.addr).contains("connected, dialled by us")
    });
    let status = status_text(two.addr);
    assert!(status.contains("1 precommitted"), "{status}");
    assert!(status.contains("recovered"), "{status}");
    drop(link_1);
    let db_1 = dir.path().join("p1.db");
    wait_until("both aborted", || {
        stored_state(&db_1, t1) == Some(StoredState::Aborted)
            && stored_state(&db_2, t1) == Some(StoredState::Aborted)
    });
}
