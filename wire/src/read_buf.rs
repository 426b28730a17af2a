//! A connection's read buffer (pure): grows with the bytes of a large frame as they
//! arrive, never past that frame, and shrinks back once the frame is consumed, so a
//! single large frame does not pin its size for the connection's lifetime.

use crate::frame::{self, FrameError, HEADER_LEN};
use crate::memory::Held;
use crate::msg::Frame;

/// Bytes asked of the socket per read: small, because an idle connection keeps twice
/// this (a few syscalls more under load are cheaper than memory held by every client).
pub const READ_CHUNK_LEN: usize = 8 * 1024;
/// Capacity a buffer keeps between large frames (and starts with): room for one read
/// past a partly arrived frame, so reads straddling frames do not reallocate.
pub const READ_BUF_KEEP_LEN: usize = 2 * READ_CHUNK_LEN;

/// Largest capacity a buffer ever has with frames of at most `max_frame_len` body bytes.
pub const fn read_buf_len_max(max_frame_len: usize) -> usize {
    let frame = HEADER_LEN + max_frame_len + READ_CHUNK_LEN;
    if frame > READ_BUF_KEEP_LEN {
        frame
    } else {
        READ_BUF_KEEP_LEN
    }
}

pub(crate) struct ReadBuf {
    /// Initialized once: the bytes past `end` are room for reads, kept from one read to
    /// the next, so a read does not zero its room first (8 KiB per read).
    bytes: Vec<u8>,
    /// Bytes before this are decoded frames, dropped at the next `compact`.
    start: usize,
    /// Bytes before this arrived.
    end: usize,
    max_frame_len: usize,
    held: Held,
}

impl ReadBuf {
    pub(crate) fn new(max_frame_len: usize, mut held: Held) -> ReadBuf {
        let bytes = Vec::with_capacity(READ_BUF_KEEP_LEN);
        held.set(bytes.capacity());
        ReadBuf {
            bytes,
            start: 0,
            end: 0,
            max_frame_len,
            held,
        }
    }

    /// The next whole frame, if one has arrived; `Err` for a bad one (close the connection).
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        match frame::decode(&self.bytes[self.start..self.end], self.max_frame_len)? {
            Some((frame, used)) => {
                self.start += used;
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    /// True if a whole frame is buffered past what was decoded.
    pub(crate) fn holds_frame(&self) -> bool {
        let rest = &self.bytes[self.start..self.end];
        frame::frame_len(rest).is_some_and(|len| len <= rest.len())
    }

    /// Drops the decoded frames; gives back memory once no large frame is pending.
    pub(crate) fn compact(&mut self) {
        if self.start > 0 {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let pending = frame::frame_len(&self.bytes[..self.end]).unwrap_or(0);
        if self.bytes.capacity() > READ_BUF_KEEP_LEN
            && self.end + READ_CHUNK_LEN <= READ_BUF_KEEP_LEN
            && pending <= READ_BUF_KEEP_LEN
        {
            self.bytes.truncate(READ_BUF_KEEP_LEN);
            self.bytes.shrink_to(READ_BUF_KEEP_LEN);
        }
        self.held.set(self.bytes.capacity());
    }

    /// Room for the next read (call after `compact`): up to `READ_CHUNK_LEN` bytes. The
    /// capacity grows by doubling, but never past the pending frame's own length (checked
    /// against the maximum by the decode before), plus one chunk.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        let end = self.end;
        let target = end + READ_CHUNK_LEN;
        let capacity = self.bytes.capacity();
        if target > capacity {
            let pending = frame::frame_len(&self.bytes[..end])
                .filter(|&total| total <= HEADER_LEN + self.max_frame_len)
                .unwrap_or(0);
            let limit = pending.max(target);
            let grow_to = target.max((capacity * 2).min(limit));
            self.bytes.reserve_exact(grow_to - self.bytes.len());
            self.held.set(self.bytes.capacity());
        }
        if target > self.bytes.len() {
            self.bytes.resize(target, 0);
        }
        &mut self.bytes[end..target]
    }

    /// `read` bytes of the last `spare` were filled.
    pub(crate) fn filled(&mut self, read: usize) {
        debug_assert!(read <= READ_CHUNK_LEN);
        self.end += read;
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryGauge;
    use crate::msg::{ClientResponse, RequestId};

    const MAX: usize = 16 * 1024 * 1024;

    fn feed(buf: &mut ReadBuf, mut bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let spare = buf.spare();
            let read = spare.len().min(bytes.len());
            spare[..read].copy_from_slice(&bytes[..read]);
            buf.filled(read);
            bytes = &bytes[read..];
            while let Some(frame) = buf.next_frame().unwrap() {
                frames.push(frame);
            }
            buf.compact();
        }
        frames
    }

    fn large(len: usize) -> Vec<u8> {
        let frame = Frame::Response {
            id: RequestId(1),
            msg: ClientResponse::StatusReport {
                text: "x".repeat(len),
            }
            .into(),
        };
        frame::encode(&frame, MAX).unwrap()
    }

    #[test]
    fn a_large_frame_grows_the_buffer_to_about_its_size_and_it_shrinks_back_after() {
        let gauge = MemoryGauge::new();
        let mut buf = ReadBuf::new(MAX, Held::new(&gauge));
        assert_eq!(gauge.held(), READ_BUF_KEEP_LEN);
        let bytes = large(4 * 1024 * 1024);
        let heartbeat = frame::encode(&Frame::Heartbeat, MAX).unwrap();
        let mut stream = bytes.clone();
        stream.extend_from_slice(&heartbeat);
        assert_eq!(feed(&mut buf, &stream).len(), 2);
        // Never more than the frame plus one read, not the doubling's next power of two.
        assert!(
            gauge.peak() <= bytes.len() + READ_CHUNK_LEN,
            "peak {}",
            gauge.peak()
        );
        assert!(gauge.peak() >= bytes.len(), "peak {}", gauge.peak());
        assert_eq!(buf.capacity(), READ_BUF_KEEP_LEN);
        assert_eq!(gauge.held(), READ_BUF_KEEP_LEN);
        drop(buf);
        assert_eq!(gauge.held(), 0);
    }

    #[test]
    fn small_frames_never_grow_the_buffer() {
        let gauge = MemoryGauge::new();
        let mut buf = ReadBuf::new(MAX, Held::new(&gauge));
        let one = frame::encode(&Frame::Heartbeat, MAX).unwrap();
        let stream: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(one.len() * 100_000)
            .collect();
        assert_eq!(feed(&mut buf, &stream).len(), 100_000);
        assert_eq!(gauge.peak(), READ_BUF_KEEP_LEN);
    }

    #[test]
    fn the_bound_holds_for_the_largest_frame() {
        assert!(read_buf_len_max(MAX) >= HEADER_LEN + MAX);
        assert_eq!(read_buf_len_max(1024), READ_BUF_KEEP_LEN);
    }
}
