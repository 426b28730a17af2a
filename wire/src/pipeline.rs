//! The request pipeline (pure): outbound sequencing with a hard in-flight cap and a
//! bounded waiting queue, and the inbound sequencer that accepts ids 1, 2, 3, ... only.
//!
//! The channel owns one of each per connection; they hold no IO so they are unit-tested
//! exhaustively here.

use std::collections::{HashSet, VecDeque};

use crate::msg::RequestId;

/// Why a message was not queued on a channel.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The waiting queue is at `send_queue_max`: back off and retry.
    #[error("send queue full")]
    QueueFull,
    /// The channel is closed; a `Down` event follows (or already came).
    #[error("channel closed")]
    Closed,
}

/// Outbound requests of one connection: each gets the next id, waits in order in a
/// bounded queue, and is released to the wire only while fewer than `in_flight_max`
/// requests await their response. `T` is the request as the caller stores it (the
/// channel stores the encoded frame).
#[derive(Debug)]
pub struct Outbound<T> {
    next_id: u64,
    in_flight: HashSet<RequestId>,
    waiting: VecDeque<(RequestId, T)>,
    in_flight_max: usize,
    send_queue_max: usize,
}

impl<T> Outbound<T> {
    pub fn new(in_flight_max: usize, send_queue_max: usize) -> Self {
        Outbound {
            next_id: 1,
            in_flight: HashSet::new(),
            waiting: VecDeque::new(),
            in_flight_max,
            send_queue_max,
        }
    }

    /// The id the next accepted request will get.
    pub fn next_id(&self) -> RequestId {
        RequestId(self.next_id)
    }

    /// Queues a request under the next id. A full queue consumes no id, so the ids on
    /// the wire stay gap-free.
    pub fn push(&mut self, request: T) -> Result<RequestId, SendError> {
        if self.waiting.len() >= self.send_queue_max {
            return Err(SendError::QueueFull);
        }
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.waiting.push_back((id, request));
        Ok(id)
    }

    /// The oldest waiting request, if an in-flight slot is free; it is now in flight.
    pub fn pop_ready(&mut self) -> Option<(RequestId, T)> {
        if self.in_flight.len() >= self.in_flight_max {
            return None;
        }
        let (id, request) = self.waiting.pop_front()?;
        self.in_flight.insert(id);
        Some((id, request))
    }

    /// A response arrived: frees its slot. `false` if `id` was not in flight (the
    /// response is bogus or a duplicate and must be dropped).
    pub fn complete(&mut self, id: RequestId) -> bool {
        self.in_flight.remove(&id)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn queued(&self) -> usize {
        self.waiting.len()
    }

    pub fn check_invariants(&self) {
        assert!(self.in_flight.len() <= self.in_flight_max);
        assert!(self.waiting.len() <= self.send_queue_max);
        assert!(self.in_flight.iter().all(|id| id.0 < self.next_id));
        assert!(self.waiting.iter().all(|(id, _)| id.0 < self.next_id));
    }
}

/// A request id that broke the inbound sequence (a gap or a replay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfSequence {
    pub id: RequestId,
    pub expected: RequestId,
}

/// Inbound request ids of one connection: exactly 1, 2, 3, ... are accepted.
#[derive(Debug)]
pub struct Inbound {
    expected: u64,
}

impl Default for Inbound {
    fn default() -> Self {
        Inbound { expected: 1 }
    }
}

impl Inbound {
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `id` if it is the next in sequence; a gap or a replay is refused and does
    /// not move the sequence (the sender's stream is broken; it must reconnect).
    pub fn accept(&mut self, id: RequestId) -> Result<(), OutOfSequence> {
        if id.0 != self.expected {
            return Err(OutOfSequence {
                id,
                expected: RequestId(self.expected),
            });
        }
        self.expected += 1;
        Ok(())
    }

    pub fn expected(&self) -> RequestId {
        RequestId(self.expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(released: Vec<(RequestId, &str)>) -> Vec<u64> {
        released.into_iter().map(|(id, _)| id.0).collect()
    }

    fn drain(outbound: &mut Outbound<&'static str>) -> Vec<(RequestId, &'static str)> {
        let released = std::iter::from_fn(|| outbound.pop_ready()).collect();
        outbound.check_invariants();
        released
    }

    #[test]
    fn ids_are_sequential_from_one() {
        let mut outbound = Outbound::new(10, 10);
        let pushed: Vec<_> = ["a", "b", "c"].map(|r| outbound.push(r)).into();
        assert_eq!(
            pushed,
            vec![Ok(RequestId(1)), Ok(RequestId(2)), Ok(RequestId(3))]
        );
        assert_eq!(
            drain(&mut outbound),
            vec![
                (RequestId(1), "a"),
                (RequestId(2), "b"),
                (RequestId(3), "c")
            ]
        );
    }

    #[test]
    fn in_flight_never_exceeds_the_cap_and_waiting_requests_go_in_order() {
        let mut outbound = Outbound::new(2, 10);
        for request in ["a", "b", "c", "d", "e"] {
            outbound.push(request).unwrap();
            outbound.check_invariants();
        }
        assert_eq!(ids(drain(&mut outbound)), vec![1, 2]);
        assert_eq!((outbound.in_flight(), outbound.queued()), (2, 3));
        assert!(outbound.complete(RequestId(2)));
        assert_eq!(drain(&mut outbound), vec![(RequestId(3), "c")]);
        assert_eq!(drain(&mut outbound), vec![]);
        assert!(outbound.complete(RequestId(1)));
        assert!(outbound.complete(RequestId(3)));
        assert_eq!(ids(drain(&mut outbound)), vec![4, 5]);
        assert_eq!((outbound.in_flight(), outbound.queued()), (2, 0));
    }

    #[test]
    fn a_full_queue_refuses_without_consuming_an_id() {
        let mut outbound = Outbound::new(1, 2);
        assert_eq!(outbound.push("a"), Ok(RequestId(1)));
        assert_eq!(outbound.push("b"), Ok(RequestId(2)));
        assert_eq!(outbound.push("c"), Err(SendError::QueueFull));
        assert_eq!(ids(drain(&mut outbound)), vec![1]);
        assert_eq!(outbound.push("c"), Ok(RequestId(3)));
        assert_eq!(outbound.push("d"), Err(SendError::QueueFull));
        outbound.check_invariants();
    }

    #[test]
    fn a_response_not_in_flight_is_refused() {
        let mut outbound = Outbound::new(1, 2);
        outbound.push("a").unwrap();
        assert!(!outbound.complete(RequestId(1)), "queued, not yet sent");
        drain(&mut outbound);
        assert!(!outbound.complete(RequestId(7)));
        assert!(outbound.complete(RequestId(1)));
        assert!(!outbound.complete(RequestId(1)), "duplicate response");
    }

    #[test]
    fn inbound_accepts_the_sequence_and_rejects_gap_and_replay() {
        let mut inbound = Inbound::new();
        assert_eq!(inbound.accept(RequestId(1)), Ok(()));
        assert_eq!(inbound.accept(RequestId(2)), Ok(()));
        let gap = OutOfSequence {
            id: RequestId(4),
            expected: RequestId(3),
        };
        assert_eq!(inbound.accept(RequestId(4)), Err(gap));
        let replay = OutOfSequence {
            id: RequestId(2),
            expected: RequestId(3),
        };
        assert_eq!(inbound.accept(RequestId(2)), Err(replay));
        assert_eq!(inbound.accept(RequestId(3)), Ok(()));
        assert_eq!(inbound.expected(), RequestId(4));
    }
}
