//! Round trips and golden bytes of every `Frame`, `Request` and `Response` variant and
//! every field-less enum value (a serde, field or variant change that would break a
//! running cluster fails here first), and `kind`/`txn` of every message.

use uuid::Uuid;

use crate::admin::{InDoubtEntry, LogRow, TxnLookup, TxnRow};
use crate::frame::{self, DEFAULT_MAX_FRAME_LEN};
use crate::msg::*;

mod golden;
use golden::{GOLDEN, GOLDEN_UNIT_ENUMS};

fn txn() -> TxnId {
    TxnId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001))
}

/// One request of each variant of every request family.
fn requests() -> Vec<(&'static str, Request)> {
    vec![
        (
            "Prepare",
            ToParticipant::Prepare {
                txn: txn(),
                protocol: Protocol::TwoPhase,
                ops: vec![
                    Op::Get { key: "a".into() },
                    Op::Put {
                        key: "b".into(),
                        value: Value::Text("x".into()),
                    },
                    Op::Delete { key: "c".into() },
                    Op::Add {
                        key: "d".into(),
                        delta: -5,
                        min: Some(0),
                        max: None,
                    },
                ],
                timeout_ms: 1000,
                participants: vec![NodeId(1), NodeId(2)],
            }
            .into(),
        ),
        ("PreCommit", ToParticipant::PreCommit { txn: txn() }.into()),
        (
            "Decide",
            ToParticipant::Decide {
                txn: txn(),
                decision: Decision::Abort,
                reason: Some("participant 2 voted no: lock conflict".to_string()),
            }
            .into(),
        ),
        (
            "StateQuery",
            ToParticipant::StateQuery { txn: txn() }.into(),
        ),
        ("Release", ToParticipant::Release { txn: txn() }.into()),
        (
            "DecisionQuery",
            ToCoordinator::DecisionQuery { txn: txn() }.into(),
        ),
        (
            "Submit",
            ClientRequest::Submit {
                txn: txn(),
                spec: TxnSpec {
                    protocol: Protocol::TwoPhase,
                    timeout_ms: 500,
                    parts: vec![(NodeId(1), vec![Op::Get { key: "k".into() }])],
                },
            }
            .into(),
        ),
        ("Status", ClientRequest::Status.into()),
        ("InDoubt", ClientRequest::InDoubt.into()),
        ("Txn", ClientRequest::Txn { txn: txn() }.into()),
        (
            "Resolve",
            ClientRequest::Resolve {
                txn: txn(),
                decision: Decision::Abort,
                note: "drill".into(),
            }
            .into(),
        ),
    ]
}

/// One response of each variant of every response family.
fn responses() -> Vec<(&'static str, Response)> {
    vec![
        (
            "Vote",
            FromParticipant::Vote {
                txn: txn(),
                vote: Vote::No {
                    reason: "bound".into(),
                },
                reads: vec![Read {
                    key: "a".into(),
                    value: Some(Value::Int(7)),
                }],
            }
            .into(),
        ),
        (
            "Ack",
            FromParticipant::Ack {
                txn: txn(),
                outcome: Outcome::Committed,
            }
            .into(),
        ),
        (
            "StateReply",
            FromParticipant::StateReply {
                txn: txn(),
                state: TxnState::PreCommitted,
                recovered: true,
            }
            .into(),
        ),
        ("Released", FromParticipant::Released { txn: txn() }.into()),
        (
            "ParticipantRefused",
            FromParticipant::Refused {
                reason: "no".into(),
            }
            .into(),
        ),
        (
            "DecisionAnswer",
            FromCoordinator::DecisionAnswer {
                txn: txn(),
                answer: Answer::Undecided,
            }
            .into(),
        ),
        (
            "CoordinatorRefused",
            FromCoordinator::Refused {
                reason: "no".into(),
            }
            .into(),
        ),
        (
            "Result",
            ClientResponse::Result {
                txn: txn(),
                result: TxnResult::Committed {
                    reads: vec![(NodeId(2), vec![])],
                },
            }
            .into(),
        ),
        (
            "StatusReport",
            ClientResponse::StatusReport { text: "ok".into() }.into(),
        ),
        (
            "ClientRefused",
            ClientResponse::Refused {
                reason: "no".into(),
            }
            .into(),
        ),
        (
            "InDoubtList",
            ClientResponse::InDoubt {
                entries: vec![InDoubtEntry {
                    txn_id: "t".into(),
                    protocol: "2pc".into(),
                    coordinator: 100,
                    state: "prepared".into(),
                    created_at: "c".into(),
                    age_s: 3,
                    keys: Some("a".into()),
                    participants: None,
                }],
                omitted: 1,
            }
            .into(),
        ),
        (
            "TxnReport",
            ClientResponse::Txn {
                txn: txn(),
                lookup: Box::new(TxnLookup::Voted(TxnRow {
                    txn_id: "t".into(),
                    protocol: "2pc".into(),
                    coordinator: 100,
                    state: "prepared".into(),
                    reason: None,
                    created_at: "c".into(),
                    decided_at: None,
                    participants: Some("1,2".into()),
                    log: vec![LogRow {
                        seq: 0,
                        key: "a".into(),
                        op: "put".into(),
                        undo: None,
                        redo: Some(Value::Int(5)),
                    }],
                    log_omitted: 0,
                })),
            }
            .into(),
        ),
        (
            "Resolved",
            ClientResponse::Resolved {
                txn: txn(),
                decision: Decision::Abort,
                coordinator: NodeId(100),
            }
            .into(),
        ),
    ]
}

/// One frame of each `Frame` variant.
fn frames() -> Vec<(&'static str, Frame)> {
    vec![
        (
            "Hello",
            Frame::Hello(Hello {
                magic: MAGIC,
                protocol_version: PROTOCOL_VERSION,
                node_id: NodeId(3),
                role: Role::Participant,
                cluster_id: "c1".into(),
                instance: 7,
                nonce: [1; NONCE_LEN],
                auth: true,
                max_frame_len: 1 << 20,
            }),
        ),
        (
            "Auth",
            Frame::Auth {
                proof: [2; PROOF_LEN],
            },
        ),
        (
            "Reject",
            Frame::Reject {
                reason: "bad".into(),
            },
        ),
        ("Heartbeat", Frame::Heartbeat),
        (
            "Request",
            Frame::Request {
                id: RequestId(1),
                msg: ClientRequest::Status.into(),
            },
        ),
        (
            "Response",
            Frame::Response {
                id: RequestId(1),
                msg: ClientResponse::StatusReport { text: "ok".into() }.into(),
            },
        ),
        (
            "SequenceError",
            Frame::SequenceError {
                id: RequestId(5),
                expected: RequestId(2),
            },
        ),
    ]
}

/// Every sample: each frame variant, each request inside a request frame and each
/// response inside a response frame.
fn samples() -> Vec<(&'static str, Frame)> {
    let mut all = frames();
    all.extend(requests().into_iter().map(|(name, msg)| {
        let frame = Frame::Request {
            id: RequestId(9),
            msg,
        };
        (name, frame)
    }));
    all.extend(responses().into_iter().map(|(name, msg)| {
        let frame = Frame::Response {
            id: RequestId(9),
            msg,
        };
        (name, frame)
    }));
    all
}

#[test]
fn every_frame_and_msg_round_trips() {
    for (name, frame) in samples() {
        let bytes = frame::encode(&frame, DEFAULT_MAX_FRAME_LEN).unwrap();
        let decoded = frame::decode(&bytes, DEFAULT_MAX_FRAME_LEN).unwrap();
        assert_eq!(decoded, Some((frame, bytes.len())), "{name}");
    }
}

#[test]
fn every_frame_and_msg_encodes_to_its_golden_bytes() {
    let samples = samples();
    let actual: Vec<(&str, String)> = samples
        .iter()
        .map(|(name, frame)| {
            let bytes = frame::encode(frame, DEFAULT_MAX_FRAME_LEN).unwrap();
            (*name, hex::encode(bytes))
        })
        .collect();
    // Printed (shown on failure) in the table's own syntax, to review and paste after an
    // intended format change (which also needs a PROTOCOL_VERSION bump).
    for (name, hex) in &actual {
        println!("(\"{name}\", \"{hex}\"),");
    }
    let golden: Vec<(&str, String)> = GOLDEN
        .iter()
        .map(|(name, hex)| (*name, hex.to_string()))
        .collect();
    assert_eq!(actual, golden);
}

#[test]
fn samples_cover_every_variant() {
    // Adding a variant breaks these matches, a reminder to add a sample and its bytes.
    for (_, frame) in frames() {
        match frame {
            Frame::Hello(_)
            | Frame::Reject { .. }
            | Frame::Auth { .. }
            | Frame::Heartbeat
            | Frame::Request { .. }
            | Frame::Response { .. }
            | Frame::SequenceError { .. } => {}
        }
    }
    let request_variants: Vec<&str> = requests()
        .into_iter()
        .map(|(_, msg)| match msg {
            Request::Participant(msg) => match msg {
                ToParticipant::Prepare { .. } => "Prepare",
                ToParticipant::PreCommit { .. } => "PreCommit",
                ToParticipant::Decide { .. } => "Decide",
                ToParticipant::StateQuery { .. } => "StateQuery",
                ToParticipant::Release { .. } => "Release",
            },
            Request::Coordinator(msg) => match msg {
                ToCoordinator::DecisionQuery { .. } => "DecisionQuery",
            },
            Request::Client(msg) => match msg {
                ClientRequest::Submit { .. } => "Submit",
                ClientRequest::Status => "Status",
                ClientRequest::InDoubt => "InDoubt",
                ClientRequest::Txn { .. } => "Txn",
                ClientRequest::Resolve { .. } => "Resolve",
            },
        })
        .collect();
    let response_variants: Vec<&str> = responses()
        .into_iter()
        .map(|(_, msg)| match msg {
            Response::Participant(msg) => match msg {
                FromParticipant::Vote { .. } => "Vote",
                FromParticipant::Ack { .. } => "Ack",
                FromParticipant::StateReply { .. } => "StateReply",
                FromParticipant::Released { .. } => "Released",
                FromParticipant::Refused { .. } => "ParticipantRefused",
            },
            Response::Coordinator(msg) => match msg {
                FromCoordinator::DecisionAnswer { .. } => "DecisionAnswer",
                FromCoordinator::Refused { .. } => "CoordinatorRefused",
            },
            Response::Client(msg) => match msg {
                ClientResponse::Result { .. } => "Result",
                ClientResponse::StatusReport { .. } => "StatusReport",
                ClientResponse::Refused { .. } => "ClientRefused",
                ClientResponse::InDoubt { .. } => "InDoubtList",
                ClientResponse::Txn { .. } => "TxnReport",
                ClientResponse::Resolved { .. } => "Resolved",
            },
        })
        .collect();
    let request_names: Vec<&str> = requests().into_iter().map(|(name, _)| name).collect();
    let response_names: Vec<&str> = responses().into_iter().map(|(name, _)| name).collect();
    assert_eq!(request_names, request_variants);
    assert_eq!(response_names, response_variants);
    assert_eq!(request_variants.len() + response_variants.len(), 24);
}

#[test]
fn kind_and_txn_of_every_variant() {
    let requests: Vec<(&str, Option<TxnId>)> = requests()
        .iter()
        .map(|(_, msg)| (msg.kind(), msg.txn()))
        .collect();
    let t = Some(txn());
    assert_eq!(
        requests,
        vec![
            ("Prepare", t),
            ("PreCommit", t),
            ("Decide", t),
            ("StateQuery", t),
            ("Release", t),
            ("DecisionQuery", t),
            ("Submit", t),
            ("Status", None),
            ("InDoubt", None),
            ("Txn", t),
            ("Resolve", t),
        ]
    );
    let responses: Vec<(&str, Option<TxnId>)> = responses()
        .iter()
        .map(|(_, msg)| (msg.kind(), msg.txn()))
        .collect();
    assert_eq!(
        responses,
        vec![
            ("Vote", t),
            ("Ack", t),
            ("StateReply", t),
            ("Released", t),
            ("Refused", None),
            ("DecisionAnswer", t),
            ("Refused", None),
            ("Result", t),
            ("StatusReport", None),
            ("Refused", None),
            ("InDoubt", None),
            ("Txn", t),
            ("Resolved", t),
        ]
    );
}

#[test]
fn a_refusal_answers_in_the_family_of_its_request() {
    let families: Vec<(&str, &str)> = requests()
        .iter()
        .map(|(name, msg)| {
            let family = match msg.refused("no".into()) {
                Response::Participant(FromParticipant::Refused { .. }) => "participant",
                Response::Coordinator(FromCoordinator::Refused { .. }) => "coordinator",
                Response::Client(ClientResponse::Refused { .. }) => "client",
                other => panic!("{name}: refusal {other:?} is no refusal"),
            };
            (*name, family)
        })
        .collect();
    assert_eq!(
        families,
        vec![
            ("Prepare", "participant"),
            ("PreCommit", "participant"),
            ("Decide", "participant"),
            ("StateQuery", "participant"),
            ("Release", "participant"),
            ("DecisionQuery", "coordinator"),
            ("Submit", "client"),
            ("Status", "client"),
            ("InDoubt", "client"),
            ("Txn", "client"),
            ("Resolve", "client"),
        ]
    );
}

/// Every value of every field-less enum that crosses the network, encoded as a frame
/// body encodes it (MessagePack, named), each checked to decode back to itself.
fn unit_enum_values() -> Vec<(String, Vec<u8>)> {
    fn encoded<T>(values: &[T]) -> Vec<(String, Vec<u8>)>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let type_name = std::any::type_name::<T>().rsplit("::").next().unwrap_or("");
        values
            .iter()
            .map(|value| {
                let bytes = rmp_serde::to_vec_named(value).unwrap();
                let decoded: T = rmp_serde::from_slice(&bytes).unwrap();
                assert_eq!(&decoded, value);
                (format!("{type_name}::{value:?}"), bytes)
            })
            .collect()
    }
    // Each match is exhaustive: a new variant fails to compile here, a reminder to list it.
    let roles = [Role::Coordinator, Role::Participant, Role::Client];
    roles.iter().for_each(|value| match value {
        Role::Coordinator | Role::Participant | Role::Client => {}
    });
    let protocols = [Protocol::TwoPhase, Protocol::ThreePhase];
    protocols.iter().for_each(|value| match value {
        Protocol::TwoPhase | Protocol::ThreePhase => {}
    });
    let decisions = [Decision::Commit, Decision::Abort];
    decisions.iter().for_each(|value| match value {
        Decision::Commit | Decision::Abort => {}
    });
    let answers = [Answer::Commit, Answer::Abort, Answer::Undecided];
    answers.iter().for_each(|value| match value {
        Answer::Commit | Answer::Abort | Answer::Undecided => {}
    });
    let outcomes = [
        Outcome::Committed,
        Outcome::Aborted,
        Outcome::PreCommitted,
        Outcome::Unknown,
        Outcome::HeuristicCommitted,
        Outcome::HeuristicAborted,
    ];
    outcomes.iter().for_each(|value| match value {
        Outcome::Committed
        | Outcome::Aborted
        | Outcome::PreCommitted
        | Outcome::Unknown
        | Outcome::HeuristicCommitted
        | Outcome::HeuristicAborted => {}
    });
    let states = [
        TxnState::Prepared,
        TxnState::Waiting,
        TxnState::PreCommitted,
        TxnState::Committed,
        TxnState::Aborted,
    ];
    states.iter().for_each(|value| match value {
        TxnState::Prepared
        | TxnState::Waiting
        | TxnState::PreCommitted
        | TxnState::Committed
        | TxnState::Aborted => {}
    });
    let mut all = encoded(&roles);
    all.extend(encoded(&protocols));
    all.extend(encoded(&decisions));
    all.extend(encoded(&answers));
    all.extend(encoded(&outcomes));
    all.extend(encoded(&states));
    all
}

#[test]
fn every_unit_enum_value_round_trips_and_encodes_to_its_golden_bytes() {
    let actual: Vec<(String, String)> = unit_enum_values()
        .into_iter()
        .map(|(name, bytes)| (name, hex::encode(bytes)))
        .collect();
    for (name, hex) in &actual {
        println!("(\"{name}\", \"{hex}\"),");
    }
    let golden: Vec<(String, String)> = GOLDEN_UNIT_ENUMS
        .iter()
        .map(|(name, hex)| (name.to_string(), hex.to_string()))
        .collect();
    assert_eq!(actual, golden);
}

/// Messages live in futures and queues by value: a large variant's payload is boxed so
/// every message stays small (an unboxed txn row made deep async tests overflow their
/// stack in debug builds).
#[test]
fn messages_stay_small_by_value() {
    assert!(std::mem::size_of::<Request>() <= 96);
    assert!(std::mem::size_of::<Response>() <= 96);
}

/// Txn ids order as their UUIDs do (byte by byte), whatever the bytes.
#[test]
fn txn_ids_order_as_their_uuids() {
    let ids: Vec<u128> = vec![
        0,
        1,
        0xff,
        0x100,
        1 << 64,
        (1 << 64) - 1,
        1 << 127,
        u128::MAX,
        0x0190_0000_0000_7000_8000_0000_0000_0001,
        0x0190_0000_0000_7000_8000_0000_0000_0002,
        0x0191_0000_0000_7000_8000_0000_0000_0000,
    ];
    for &a in &ids {
        for &b in &ids {
            let (ua, ub) = (Uuid::from_u128(a), Uuid::from_u128(b));
            assert_eq!(TxnId(ua).cmp(&TxnId(ub)), ua.cmp(&ub), "{ua} vs {ub}");
            assert_eq!(TxnId(ua).cmp(&TxnId(ub)), ua.as_bytes().cmp(ub.as_bytes()));
        }
    }
}
