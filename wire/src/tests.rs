//! Round trips and golden bytes of every `Frame`, `Request` and `Response` variant and
//! every field-less enum value (a serde, field or variant change that would break a
//! running cluster fails here first), and `kind`/`txn` of every message.

use uuid::Uuid;

use crate::admin::{InDoubtEntry, LogRow, TxnLookup, TxnRow};
use crate::frame::{self, DEFAULT_MAX_FRAME_LEN};
use crate::msg::*;

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

/// Pinned encodings, computed once from the samples above.
const GOLDEN: &[(&str, &str)] = &[
    (
        "Hello",
        "0000008981a548656c6c6f89a56d61676963ce41434d54b070726f746f636f6c5f76657273696f6e05a76e6f64655f696403a4726f6c65ab5061727469636970616e74aa636c75737465725f6964a26331a8696e7374616e636507a56e6f6e6365dc001001010101010101010101010101010101a461757468c3ad6d61785f6672616d655f6c656ece00100000",
    ),
    (
        "Auth",
        "0000003081a44175746881a570726f6f66dc00200202020202020202020202020202020202020202020202020202020202020202",
    ),
    ("Reject", "0000001481a652656a65637481a6726561736f6ea3626164"),
    ("Heartbeat", "0000000aa9486561727462656174"),
    (
        "Request",
        "0000002181a75265717565737482a2696401a36d736781a6436c69656e74a6537461747573",
    ),
    (
        "Response",
        "0000003281a8526573706f6e736582a2696401a36d736781a6436c69656e7481ac5374617475735265706f727481a474657874a26f6b",
    ),
    (
        "SequenceError",
        "0000001e81ad53657175656e63654572726f7282a2696405a8657870656374656402",
    ),
    (
        "Prepare",
        "000000c181a75265717565737482a2696409a36d736781ab5061727469636970616e7481a75072657061726585a374786ec41001900000000070008000000000000001a870726f746f636f6ca3327063a36f70739481a347657481a36b6579a16181a350757482a36b6579a162a576616c756581a454657874a17881a644656c65746581a36b6579a16381a341646484a36b6579a164a564656c7461fba36d696e00a36d6178c0aa74696d656f75745f6d73cd03e8ac7061727469636970616e7473920102",
    ),
    (
        "PreCommit",
        "0000004181a75265717565737482a2696409a36d736781ab5061727469636970616e7481a9507265436f6d6d697481a374786ec41001900000000070008000000000000001",
    ),
    (
        "Decide",
        "0000007b81a75265717565737482a2696409a36d736781ab5061727469636970616e7481a644656369646583a374786ec41001900000000070008000000000000001a86465636973696f6ea541626f7274a6726561736f6ed9257061727469636970616e74203220766f746564206e6f3a206c6f636b20636f6e666c696374",
    ),
    (
        "StateQuery",
        "0000004281a75265717565737482a2696409a36d736781ab5061727469636970616e7481aa5374617465517565727981a374786ec41001900000000070008000000000000001",
    ),
    (
        "Release",
        "0000003f81a75265717565737482a2696409a36d736781ab5061727469636970616e7481a752656c6561736581a374786ec41001900000000070008000000000000001",
    ),
    (
        "DecisionQuery",
        "0000004581a75265717565737482a2696409a36d736781ab436f6f7264696e61746f7281ad4465636973696f6e517565727981a374786ec41001900000000070008000000000000001",
    ),
    (
        "Submit",
        "0000007081a75265717565737482a2696409a36d736781a6436c69656e7481a65375626d697482a374786ec41001900000000070008000000000000001a47370656383a870726f746f636f6ca3327063aa74696d656f75745f6d73cd01f4a570617274739192019181a347657481a36b6579a16b",
    ),
    (
        "Status",
        "0000002181a75265717565737482a2696409a36d736781a6436c69656e74a6537461747573",
    ),
    (
        "InDoubt",
        "0000002281a75265717565737482a2696409a36d736781a6436c69656e74a7496e446f756274",
    ),
    (
        "Txn",
        "0000003681a75265717565737482a2696409a36d736781a6436c69656e7481a354786e81a374786ec41001900000000070008000000000000001",
    ),
    (
        "Resolve",
        "0000005481a75265717565737482a2696409a36d736781a6436c69656e7481a75265736f6c766583a374786ec41001900000000070008000000000000001a86465636973696f6ea541626f7274a46e6f7465a56472696c6c",
    ),
    (
        "Vote",
        "0000006e81a8526573706f6e736582a2696409a36d736781ab5061727469636970616e7481a4566f746583a374786ec41001900000000070008000000000000001a4766f746581a24e6f81a6726561736f6ea5626f756e64a572656164739182a36b6579a161a576616c756581a3496e7407",
    ),
    (
        "Ack",
        "0000004e81a8526573706f6e736582a2696409a36d736781ab5061727469636970616e7481a341636b82a374786ec41001900000000070008000000000000001a76f7574636f6d65a9436f6d6d6974746564",
    ),
    (
        "StateReply",
        "0000006181a8526573706f6e736582a2696409a36d736781ab5061727469636970616e7481aa53746174655265706c7983a374786ec41001900000000070008000000000000001a57374617465ac507265436f6d6d6974746564a97265636f7665726564c3",
    ),
    (
        "Released",
        "0000004181a8526573706f6e736582a2696409a36d736781ab5061727469636970616e7481a852656c656173656481a374786ec41001900000000070008000000000000001",
    ),
    (
        "ParticipantRefused",
        "0000003481a8526573706f6e736582a2696409a36d736781ab5061727469636970616e7481a75265667573656481a6726561736f6ea26e6f",
    ),
    (
        "DecisionAnswer",
        "0000005881a8526573706f6e736582a2696409a36d736781ab436f6f7264696e61746f7281ae4465636973696f6e416e7377657282a374786ec41001900000000070008000000000000001a6616e73776572a9556e64656369646564",
    ),
    (
        "CoordinatorRefused",
        "0000003481a8526573706f6e736582a2696409a36d736781ab436f6f7264696e61746f7281a75265667573656481a6726561736f6ea26e6f",
    ),
    (
        "Result",
        "0000005781a8526573706f6e736582a2696409a36d736781a6436c69656e7481a6526573756c7482a374786ec41001900000000070008000000000000001a6726573756c7481a9436f6d6d697474656481a5726561647391920290",
    ),
    (
        "StatusReport",
        "0000003281a8526573706f6e736582a2696409a36d736781a6436c69656e7481ac5374617475735265706f727481a474657874a26f6b",
    ),
    (
        "ClientRefused",
        "0000002f81a8526573706f6e736582a2696409a36d736781a6436c69656e7481a75265667573656481a6726561736f6ea26e6f",
    ),
    (
        "InDoubtList",
        "0000009381a8526573706f6e736582a2696409a36d736781a6436c69656e7481a7496e446f75627482a7656e74726965739188a674786e5f6964a174a870726f746f636f6ca3327063ab636f6f7264696e61746f7264a57374617465a87072657061726564aa637265617465645f6174a163a56167655f7303a46b657973a161ac7061727469636970616e7473c0a76f6d697474656401",
    ),
    (
        "TxnReport",
        "000000e081a8526573706f6e736582a2696409a36d736781a6436c69656e7481a354786e82a374786ec41001900000000070008000000000000001a66c6f6f6b757081a5566f7465648aa674786e5f6964a174a870726f746f636f6ca3327063ab636f6f7264696e61746f7264a57374617465a87072657061726564a6726561736f6ec0aa637265617465645f6174a163aa646563696465645f6174c0ac7061727469636970616e7473a3312c32a36c6f679185a373657100a36b6579a161a26f70a3707574a4756e646fc0a47265646f81a3496e7405ab6c6f675f6f6d697474656400",
    ),
    (
        "Resolved",
        "0000005881a8526573706f6e736582a2696409a36d736781a6436c69656e7481a85265736f6c76656483a374786ec41001900000000070008000000000000001a86465636973696f6ea541626f7274ab636f6f7264696e61746f7264",
    ),
];

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

/// Pinned encodings of every field-less enum value, computed once.
const GOLDEN_UNIT_ENUMS: &[(&str, &str)] = &[
    ("Role::Coordinator", "ab436f6f7264696e61746f72"),
    ("Role::Participant", "ab5061727469636970616e74"),
    ("Role::Client", "a6436c69656e74"),
    ("Protocol::TwoPhase", "a3327063"),
    ("Protocol::ThreePhase", "a3337063"),
    ("Decision::Commit", "a6436f6d6d6974"),
    ("Decision::Abort", "a541626f7274"),
    ("Answer::Commit", "a6436f6d6d6974"),
    ("Answer::Abort", "a541626f7274"),
    ("Answer::Undecided", "a9556e64656369646564"),
    ("Outcome::Committed", "a9436f6d6d6974746564"),
    ("Outcome::Aborted", "a741626f72746564"),
    ("Outcome::PreCommitted", "ac507265436f6d6d6974746564"),
    ("Outcome::Unknown", "a7556e6b6e6f776e"),
    (
        "Outcome::HeuristicCommitted",
        "b2486575726973746963436f6d6d6974746564",
    ),
    (
        "Outcome::HeuristicAborted",
        "b048657572697374696341626f72746564",
    ),
    ("TxnState::Prepared", "a85072657061726564"),
    ("TxnState::Waiting", "a757616974696e67"),
    ("TxnState::PreCommitted", "ac507265436f6d6d6974746564"),
    ("TxnState::Committed", "a9436f6d6d6974746564"),
    ("TxnState::Aborted", "a741626f72746564"),
];

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
