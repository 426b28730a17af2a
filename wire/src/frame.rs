//! The frame codec (pure): a 4-byte big-endian body length, then the `Frame` as
//! MessagePack. A `Hello` keeps its fields named (a peer of another version still reads
//! which version it met); every other frame writes its structs as arrays, in field order
//! (`write_body`). The decoder takes either form.
//!
//! The length is checked against the maximum *before* anything is allocated for the
//! body, so a peer cannot make us reserve memory by lying in a header.

use std::io::ErrorKind;

use serde::Deserialize;

use crate::msg::Frame;
use crate::quote::{ERROR_TEXT_CHARS_MAX, truncate};

/// Default largest frame body accepted or produced, in bytes.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;
/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;
/// Bytes reserved for a frame before it is encoded: a protocol message of a transfer
/// (80 to 200 bytes) then needs no reallocation, where growing from the header would
/// take five or six.
const ENCODE_CAPACITY: usize = 256;
/// Nesting bound for decoding: our frames are a few levels deep, so anything deeper is
/// garbage, refused before it can exhaust the stack.
const DECODE_DEPTH_MAX: usize = 32;

/// A frame that cannot be encoded or decoded. From a peer this is a protocol error:
/// the connection is closed.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame length 0 is invalid")]
    Empty,
    #[error("frame length {len} exceeds the maximum {max}")]
    TooLarge { len: usize, max: usize },
    #[error("cannot decode frame body: {0}")]
    Decode(String),
    #[error("cannot encode frame: {0}")]
    Encode(String),
}

/// Encodes one frame: length prefix then body. Fails if the body exceeds `max_frame_len`.
pub fn encode(frame: &Frame, max_frame_len: usize) -> Result<Vec<u8>, FrameError> {
    let mut buf = Vec::with_capacity(ENCODE_CAPACITY);
    buf.extend_from_slice(&[0; HEADER_LEN]);
    write_body(&mut buf, frame)?;
    let len = buf.len() - HEADER_LEN;
    let max = max_frame_len.min(u32::MAX as usize);
    if len > max {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame_len,
        });
    }
    // Cannot truncate: `len <= max <= u32::MAX`.
    buf[..HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(buf)
}

/// Body bytes of the frame that carries request `msg`, under the request id that encodes
/// longest (so under any id): what a peer's frame limit is checked against before the
/// request is made. Counted, not buffered.
pub fn request_body_len(msg: &crate::msg::Request) -> Result<usize, FrameError> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let frame = Frame::Request {
        id: crate::msg::RequestId(u64::MAX),
        msg: msg.clone(),
    };
    let mut count = Count(0);
    write_body(&mut count, &frame)?;
    Ok(count.0)
}

/// A frame's body. Field names took about a third of the decoder's instructions (each
/// read as a string, checked as UTF-8 and matched) and a share of every frame's bytes. A
/// changed field order or field set is an incompatible change (`PROTOCOL_VERSION`), which
/// the `Hello`, still named, lets the peer report.
fn write_body(out: &mut impl std::io::Write, frame: &Frame) -> Result<(), FrameError> {
    let written = match frame {
        Frame::Hello(_) => rmp_serde::encode::write_named(out, frame),
        _ => rmp_serde::encode::write(out, frame),
    };
    written.map_err(|error| FrameError::Encode(error.to_string()))
}

/// The whole length (header and body) of the frame starting `buf`, once its header has
/// arrived; `None` before that. Not checked against any maximum.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    let header = buf.first_chunk::<HEADER_LEN>()?;
    Some(HEADER_LEN + u32::from_be_bytes(*header) as usize)
}

/// Decodes the first frame in `buf`: `Ok(None)` if `buf` does not hold a whole frame yet,
/// else the frame and how many bytes it used.
pub fn decode(buf: &[u8], max_frame_len: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*header) as usize;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max_frame_len {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame_len,
        });
    }
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    // Decoded from the slice: strings and field names are read in place (no buffer per
    // frame; about half the time of a `Read`-based decoder), and an inner length is
    // checked against the bytes left before anything is taken, so a lying one cannot
    // allocate more than the body holds.
    let mut de = rmp_serde::Deserializer::from_read_ref(body);
    de.set_max_depth(DECODE_DEPTH_MAX);
    let frame = Frame::deserialize(&mut de).map_err(decode_error)?;
    // The body must end with the frame. Asking for one more unit reads a marker, and no
    // further marker whatever follows (the unit refuses a sequence or map before its
    // elements): so it fails reading that marker only if there is no byte left.
    match <()>::deserialize(&mut de) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(error))
            if error.kind() == ErrorKind::UnexpectedEof => {}
        _ => {
            return Err(FrameError::Decode(
                "trailing bytes after the frame".to_string(),
            ));
        }
    }
    Ok(Some((frame, HEADER_LEN + len)))
}

/// A decoder's message may quote the peer's bytes (a wrong-typed string): kept short.
fn decode_error(error: rmp_serde::decode::Error) -> FrameError {
    FrameError::Decode(truncate(error.to_string(), ERROR_TEXT_CHARS_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{ClientResponse, RequestId};

    const MAX: usize = 1024;

    fn response(id: u64) -> Frame {
        Frame::Response {
            id: RequestId(id),
            msg: ClientResponse::StatusReport {
                text: "hello".into(),
            }
            .into(),
        }
    }

    /// A header claiming `len` body bytes, followed by `body`.
    fn with_header(len: u32, body: &[u8]) -> Vec<u8> {
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn a_requests_counted_length_is_its_encoded_body_under_any_id() {
        let msg: crate::msg::Request = crate::msg::ClientRequest::Status.into();
        let counted = request_body_len(&msg).unwrap();
        for id in [0, 1, 300, u64::MAX] {
            let frame = Frame::Request {
                id: RequestId(id),
                msg: msg.clone(),
            };
            let body = encode(&frame, MAX).unwrap().len() - HEADER_LEN;
            assert!(body <= counted, "id {id}: {body} > {counted}");
            if id == u64::MAX {
                assert_eq!(body, counted);
            }
        }
    }

    /// A `Hello` names its fields, so a peer of any version can read which version it
    /// met; other frames are arrays, and the decoder still reads their named form.
    #[test]
    fn only_a_hello_names_its_fields_and_both_forms_decode() {
        let hello = Frame::Hello(crate::handshake::hello(
            crate::msg::NodeId(1),
            crate::msg::Role::Participant,
            "c",
            false,
        ));
        let contains = |bytes: &[u8], name: &str| {
            bytes
                .windows(name.len())
                .any(|window| window == name.as_bytes())
        };
        let bytes = encode(&hello, MAX).unwrap();
        assert!(contains(&bytes, "protocol_version"));
        assert_eq!(decode(&bytes, MAX), Ok(Some((hello, bytes.len()))));
        let bytes = encode(&response(7), MAX).unwrap();
        assert!(!contains(&bytes, "text"), "{bytes:?}");
        assert_eq!(decode(&bytes, MAX), Ok(Some((response(7), bytes.len()))));
        let body = rmp_serde::to_vec_named(&response(7)).unwrap();
        let named = with_header(body.len() as u32, &body);
        assert!(named.len() > bytes.len());
        assert_eq!(decode(&named, MAX), Ok(Some((response(7), named.len()))));
    }

    #[test]
    fn every_strict_prefix_of_a_frame_is_incomplete() {
        let bytes = encode(&response(1), MAX).unwrap();
        for len in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..len], MAX),
                Ok(None),
                "prefix of {len} bytes"
            );
        }
        assert_eq!(decode(&bytes, MAX), Ok(Some((response(1), bytes.len()))));
    }

    #[test]
    fn two_frames_in_one_buffer_decode_one_after_the_other() {
        let mut bytes = encode(&response(1), MAX).unwrap();
        let first_len = bytes.len();
        bytes.extend(encode(&Frame::Heartbeat, MAX).unwrap());
        let (first, used) = decode(&bytes, MAX).unwrap().unwrap();
        assert_eq!((first, used), (response(1), first_len));
        let (second, used_second) = decode(&bytes[used..], MAX).unwrap().unwrap();
        assert_eq!(second, Frame::Heartbeat);
        assert_eq!(used + used_second, bytes.len());
    }

    #[test]
    fn zero_length_is_an_error() {
        assert_eq!(decode(&with_header(0, &[]), MAX), Err(FrameError::Empty));
    }

    #[test]
    fn oversized_length_is_an_error_before_the_body_arrives() {
        // 4 GiB claimed, nothing after: must fail now, not wait for (or allocate) the body.
        assert_eq!(
            decode(&with_header(u32::MAX, &[]), MAX),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                max: MAX
            })
        );
        assert_eq!(
            decode(&with_header(MAX as u32 + 1, &[]), MAX),
            Err(FrameError::TooLarge {
                len: MAX + 1,
                max: MAX
            })
        );
    }

    #[test]
    fn garbage_body_is_a_decode_error() {
        let garbage = [0xc1, 0xff, 0x00, 0x13];
        let result = decode(&with_header(garbage.len() as u32, &garbage), MAX);
        assert!(matches!(result, Err(FrameError::Decode(_))), "{result:?}");
    }

    #[test]
    fn trailing_bytes_inside_a_body_are_a_decode_error() {
        let mut body = encode(&Frame::Heartbeat, MAX)
            .unwrap()
            .split_off(HEADER_LEN);
        body.push(0xc0);
        let result = decode(&with_header(body.len() as u32, &body), MAX);
        assert!(matches!(result, Err(FrameError::Decode(_))), "{result:?}");
    }

    #[test]
    fn trailing_bytes_that_are_no_value_are_a_decode_error_too() {
        let frame = encode(&Frame::Heartbeat, MAX)
            .unwrap()
            .split_off(HEADER_LEN);
        // A reserved marker, a str32 header whose length never comes, and an array32
        // claiming more elements than follow.
        for tail in [&[0xc1][..], &[0xdb, 0x00], &[0xdd, 0x00, 0x10, 0x00, 0x00]] {
            let body = [&frame[..], tail].concat();
            let result = decode(&with_header(body.len() as u32, &body), MAX);
            assert!(
                matches!(result, Err(FrameError::Decode(_))),
                "{tail:?}: {result:?}"
            );
        }
    }

    #[test]
    fn inner_length_larger_than_the_body_is_a_decode_error() {
        // A str32 header claiming 4 GiB of text inside a 6-byte body.
        let body = [0xdb, 0xff, 0xff, 0xff, 0xff, 0x41];
        let result = decode(&with_header(body.len() as u32, &body), MAX);
        assert!(matches!(result, Err(FrameError::Decode(_))), "{result:?}");
    }

    #[test]
    fn encoding_a_frame_over_the_maximum_is_refused() {
        let frame = Frame::Reject {
            reason: "x".repeat(MAX),
        };
        assert!(matches!(
            encode(&frame, MAX),
            Err(FrameError::TooLarge { max: MAX, .. })
        ));
    }
}
