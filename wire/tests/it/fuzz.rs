//! Property runs over the frame decoder and message decoding with many cases (bounded in
//! time by small inputs), and the regression corpus in `tests/corpus/` replayed: no
//! panic, no allocation beyond the bytes given, a clear error for every bad input.

use std::path::Path;

use proptest::prelude::*;
use wire::frame::{self, FrameError, HEADER_LEN};
use wire::{
    ClientRequest, ClientResponse, Frame, Hello, MAGIC, NONCE_LEN, NodeId, PROTOCOL_VERSION,
    RequestId, Role,
};

/// The decoder's maximum in these runs: far above any input, so a length claim larger
/// than the input can only be honoured by allocating what is not there.
const MAX: usize = 1 << 20;

/// Valid frames to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let frames = [
        Frame::Heartbeat,
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
        Frame::Auth { proof: [9; 32] },
        Frame::Reject {
            reason: "bad".into(),
        },
        Frame::Request {
            id: RequestId(1),
            msg: ClientRequest::Status.into(),
        },
        Frame::Response {
            id: RequestId(2),
            msg: ClientResponse::StatusReport { text: "ok".into() }.into(),
        },
    ];
    frames
        .iter()
        .map(|frame| frame::encode(frame, MAX).unwrap())
        .collect()
}

/// Decodes `bytes` and checks what any outcome must satisfy.
fn check_decode(bytes: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    let result = frame::decode(bytes, MAX);
    match &result {
        Ok(Some((frame, used))) => {
            assert!(*used <= bytes.len() && *used > HEADER_LEN);
            // What decoded re-encodes and decodes to the same frame.
            let again = frame::encode(frame, MAX).expect("a decoded frame encodes");
            let (round, _) = frame::decode(&again, MAX).unwrap().unwrap();
            assert_eq!(&round, frame);
        }
        Ok(None) => assert!(
            bytes.len() < HEADER_LEN || frame::frame_len(bytes).unwrap() > bytes.len(),
            "incomplete only while the frame has not all arrived"
        ),
        Err(error) => {
            let text = error.to_string();
            assert!(
                !text.is_empty() && text.len() < 400,
                "unclear error {text:?}"
            );
        }
    }
    result
}

/// A body with a correct length header.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        check_decode(&bytes).ok();
    }

    #[test]
    fn random_bodies_behind_a_correct_header_decode_or_fail_clearly(body in proptest::collection::vec(any::<u8>(), 1..128)) {
        let bytes = framed(&body);
        check_decode(&bytes).ok();
    }

    /// MessagePack length markers (str32, bin32, array32, map32) claiming up to 4 Gi
    /// inside small bodies: refused without reserving what they claim.
    #[test]
    fn huge_inner_length_claims_are_refused(
        prefix in proptest::collection::vec(any::<u8>(), 0..16),
        marker in prop::sample::select(vec![0xdbu8, 0xc6, 0xdd, 0xdf]),
        claim in (1u32 << 20)..=u32::MAX,
        suffix in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut body = prefix;
        body.push(marker);
        body.extend_from_slice(&claim.to_be_bytes());
        body.extend_from_slice(&suffix);
        let bytes = framed(&body);
        prop_assert!(check_decode(&bytes).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Valid frames with bytes flipped, cut or inserted (the header fixed up or not).
    #[test]
    fn mutated_frames_decode_or_fail_clearly(
        seed in 0usize..6,
        edits in proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 1..6),
        fix_header in any::<bool>(),
    ) {
        let mut bytes = seeds()[seed].clone();
        for (at, byte, kind) in edits {
            let at = usize::from(at) % bytes.len();
            match kind {
                0 => bytes[at] ^= byte | 1,
                1 => bytes.insert(at, byte),
                _ => { bytes.remove(at); }
            }
            if bytes.len() <= HEADER_LEN {
                break;
            }
        }
        if fix_header && bytes.len() > HEADER_LEN {
            let len = (bytes.len() - HEADER_LEN) as u32;
            bytes[..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
        }
        check_decode(&bytes).ok();
    }

    /// A valid stream of frames split anywhere decodes to the same frames.
    #[test]
    fn a_stream_split_anywhere_decodes_to_the_same_frames(order in proptest::collection::vec(0usize..6, 1..8), cut in any::<u16>()) {
        let seeds = seeds();
        let stream: Vec<u8> = order.iter().flat_map(|&i| seeds[i].clone()).collect();
        let cut = usize::from(cut) % stream.len();
        let mut frames = 0;
        let mut rest = &stream[..cut];
        while let Some((_, used)) = check_decode(rest).unwrap() {
            rest = &rest[used..];
            frames += 1;
        }
        let mut buf = rest.to_vec();
        buf.extend_from_slice(&stream[cut..]);
        let mut rest = &buf[..];
        while let Some((_, used)) = check_decode(rest).unwrap() {
            rest = &rest[used..];
            frames += 1;
        }
        prop_assert_eq!(frames, order.len());
        prop_assert!(rest.is_empty());
    }
}

/// Every file in the corpus: `ok-*` decodes, `incomplete-*` waits for more, `err-*` is a
/// clear error. Add a file for every input that ever broke the decoder.
#[test]
fn the_regression_corpus_decodes_as_named() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let bytes = hex::decode(text.trim()).unwrap_or_else(|error| panic!("{name}: {error}"));
        let result = check_decode(&bytes);
        match name.split('-').next() {
            Some("ok") => assert!(matches!(result, Ok(Some(_))), "{name}: {result:?}"),
            Some("incomplete") => assert!(matches!(result, Ok(None)), "{name}: {result:?}"),
            Some("err") => assert!(result.is_err(), "{name}: {result:?}"),
            _ => panic!("{name}: corpus files are named ok-*, incomplete-* or err-*"),
        }
        replayed += 1;
    }
    assert!(replayed >= 20, "only {replayed} corpus files");
}
