//! The request pipeline (pure): outbound sequencing with a hard in-flight cap, a deadline
//! per request in flight and a bounded waiting queue, and the inbound sequencer that
//! accepts ids 1, 2, 3, ... only.
//!
//! The channel owns one of each per connection; they hold no IO (time is passed in) so
//! they are unit-tested exhaustively here.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

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
    /// The message encodes to a frame larger than this channel may send: the smaller of
    /// our `max_frame_len` and the one the peer announced in its Hello. Nothing was
    /// queued; the channel stays up.
    #[error(
        "message of {len} bytes is over this connection's frame limit of {max} bytes \
         (the smaller of ours and the peer's, set with --frame-bytes-max)"
    )]
    TooLarge { len: usize, max: usize },
}

/// Outbound requests of one connection: each gets the next id, waits in order in a
/// bounded queue, and is released to the wire only while fewer than `in_flight_max`
/// requests await their response. A request in flight longer than `request_timeout`
/// expires and frees its slot, so a peer that never answers some requests cannot pin the
/// table. `T` is the request as the caller stores it (the channel stores the encoded frame).
#[derive(Debug)]
pub struct Outbound<T> {
    next_id: u64,
    /// Request id → deadline. Requests are released in id order and each deadline is at
    /// least the previous one, so the first entry is always the next to expire.
    in_flight: BTreeMap<RequestId, Instant>,
    waiting: VecDeque<(RequestId, T)>,
    in_flight_max: usize,
    send_queue_max: usize,
    request_timeout: Duration,
}

impl<T> Outbound<T> {
    pub fn new(in_flight_max: usize, send_queue_max: usize, request_timeout: Duration) -> Self {
        Outbound {
            next_id: 1,
            in_flight: BTreeMap::new(),
            waiting: VecDeque::new(),
            in_flight_max,
            send_queue_max,
            request_timeout,
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

    /// The oldest waiting request, if an in-flight slot is free; it is now in flight, due
    /// by `now + request_timeout`.
    pub fn pop_ready(&mut self, now: Instant) -> Option<(RequestId, T)> {
        if self.in_flight.len() >= self.in_flight_max {
            return None;
        }
        let (id, request) = self.waiting.pop_front()?;
        // Never earlier than the last deadline, even if the caller's clock stepped back:
        // `expire` relies on deadlines growing with ids.
        let deadline = match self.in_flight.last_key_value() {
            Some((_, last)) => (now + self.request_timeout).max(*last),
            None => now + self.request_timeout,
        };
        self.in_flight.insert(id, deadline);
        Some((id, request))
    }

    /// A response arrived: frees its slot. `false` if `id` was not in flight (the
    /// response is bogus, a duplicate, or too late: its request expired) and must be dropped.
    pub fn complete(&mut self, id: RequestId) -> bool {
        self.in_flight.remove(&id).is_some()
    }

    /// Frees the slot of every request whose deadline is at or before `now`; returns their
    /// ids, oldest first. A response that comes for one later is refused by `complete`.
    pub fn expire(&mut self, now: Instant) -> Vec<RequestId> {
        let mut expired = Vec::new();
        while let Some(entry) = self.in_flight.first_entry() {
            if *entry.get() > now {
                break;
            }
            expired.push(entry.remove_entry().0);
        }
        expired
    }

    /// When the next request in flight expires.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.in_flight.first_key_value().map(|(_, at)| *at)
    }

    /// True while request `id` is queued or in flight (not answered, not expired).
    pub fn is_pending(&self, id: RequestId) -> bool {
        // Waiting ids are the newest ones, contiguous up to `next_id`.
        let waiting = self
            .waiting
            .front()
            .is_some_and(|(first, _)| *first <= id && id.0 < self.next_id);
        waiting || self.in_flight.contains_key(&id)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Drops every request still waiting (the channel closed: nobody will send them).
    pub fn clear_waiting(&mut self) {
        self.waiting.clear();
    }

    pub fn queued(&self) -> usize {
        self.waiting.len()
    }

    pub fn check_invariants(&self) {
        assert!(self.in_flight.len() <= self.in_flight_max);
        assert!(self.waiting.len() <= self.send_queue_max);
        assert!(self.in_flight.keys().all(|id| id.0 < self.next_id));
        assert!(self.waiting.iter().all(|(id, _)| id.0 < self.next_id));
        let deadlines: Vec<Instant> = self.in_flight.values().copied().collect();
        assert!(deadlines.windows(2).all(|pair| pair[0] <= pair[1]));
        if let (Some((sent, _)), Some((queued, _))) =
            (self.in_flight.last_key_value(), self.waiting.front())
        {
            assert!(
                sent < queued,
                "a request in flight is newer than one waiting"
            );
        }
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

    const TIMEOUT: Duration = Duration::from_secs(30);

    fn ids(released: Vec<(RequestId, &str)>) -> Vec<u64> {
        released.into_iter().map(|(id, _)| id.0).collect()
    }

    fn drain(outbound: &mut Outbound<&'static str>) -> Vec<(RequestId, &'static str)> {
        drain_at(outbound, Instant::now())
    }

    fn drain_at(
        outbound: &mut Outbound<&'static str>,
        now: Instant,
    ) -> Vec<(RequestId, &'static str)> {
        let released = std::iter::from_fn(|| outbound.pop_ready(now)).collect();
        outbound.check_invariants();
        released
    }

    #[test]
    fn ids_are_sequential_from_one() {
        let mut outbound = Outbound::new(10, 10, TIMEOUT);
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
        let mut outbound = Outbound::new(2, 10, TIMEOUT);
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
        let mut outbound = Outbound::new(1, 2, TIMEOUT);
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
        let mut outbound = Outbound::new(1, 2, TIMEOUT);
        outbound.push("a").unwrap();
        assert!(!outbound.complete(RequestId(1)), "queued, not yet sent");
        drain(&mut outbound);
        assert!(!outbound.complete(RequestId(7)));
        assert!(outbound.complete(RequestId(1)));
        assert!(!outbound.complete(RequestId(1)), "duplicate response");
    }

    #[test]
    fn requests_past_their_deadline_expire_oldest_first_and_free_their_slots() {
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        let mut outbound = Outbound::new(2, 10, Duration::from_millis(100));
        for request in ["a", "b", "c", "d"] {
            outbound.push(request).unwrap();
        }
        assert_eq!(ids(drain_at(&mut outbound, ms(0))), vec![1, 2]);
        assert!(outbound.complete(RequestId(2)));
        assert_eq!(ids(drain_at(&mut outbound, ms(50))), vec![3]);
        assert_eq!(outbound.next_deadline(), Some(ms(100)));
        assert_eq!(outbound.expire(ms(99)), vec![]);
        assert_eq!(outbound.expire(ms(100)), vec![RequestId(1)]);
        assert_eq!((outbound.in_flight(), outbound.queued()), (1, 1));
        assert_eq!(drain_at(&mut outbound, ms(100)), vec![(RequestId(4), "d")]);
        assert_eq!(outbound.next_deadline(), Some(ms(150)));
        assert_eq!(outbound.expire(ms(1_000)), vec![RequestId(3), RequestId(4)]);
        assert_eq!((outbound.in_flight(), outbound.queued()), (0, 0));
        assert_eq!(outbound.next_deadline(), None);
        outbound.check_invariants();
    }

    #[test]
    fn a_response_after_its_request_expired_is_refused() {
        let start = Instant::now();
        let mut outbound = Outbound::new(1, 10, Duration::from_millis(100));
        outbound.push("a").unwrap();
        outbound.push("b").unwrap();
        drain_at(&mut outbound, start);
        let late = start + Duration::from_millis(100);
        assert_eq!(outbound.expire(late), vec![RequestId(1)]);
        assert!(!outbound.is_pending(RequestId(1)));
        assert!(
            !outbound.complete(RequestId(1)),
            "too late: dropped like a bogus one"
        );
        assert_eq!(drain_at(&mut outbound, late), vec![(RequestId(2), "b")]);
        assert!(outbound.complete(RequestId(2)));
    }

    #[test]
    fn deadlines_never_go_back_even_if_the_clock_does() {
        let start = Instant::now() + Duration::from_secs(1);
        let mut outbound = Outbound::new(2, 10, Duration::from_millis(100));
        outbound.push("a").unwrap();
        outbound.push("b").unwrap();
        drain_at(&mut outbound, start);
        drain_at(&mut outbound, start - Duration::from_millis(50));
        assert_eq!(
            outbound.expire(start + Duration::from_millis(99)),
            vec![],
            "b must not expire before a"
        );
        assert_eq!(
            outbound.expire(start + Duration::from_millis(100)),
            vec![RequestId(1), RequestId(2)]
        );
    }

    #[test]
    fn pending_means_queued_or_in_flight() {
        let mut outbound = Outbound::new(1, 10, TIMEOUT);
        outbound.push("a").unwrap();
        outbound.push("b").unwrap();
        assert!(outbound.is_pending(RequestId(1)) && outbound.is_pending(RequestId(2)));
        drain(&mut outbound);
        assert!(outbound.is_pending(RequestId(1)), "in flight");
        assert!(outbound.is_pending(RequestId(2)), "queued");
        assert!(!outbound.is_pending(RequestId(3)), "never pushed");
        assert!(!outbound.is_pending(RequestId(0)));
        assert!(outbound.complete(RequestId(1)));
        assert!(!outbound.is_pending(RequestId(1)), "answered");
        assert!(outbound.is_pending(RequestId(2)));
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
