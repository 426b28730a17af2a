//! The simulated network: one connection (channel epoch) at a time per node pair, FIFO
//! per direction, and per-side Up/Down notices as the wire channel gives them.
//!
//! A connection breaks on a crash, a partition or a reset: the directions that can no
//! longer carry data stop delivering at once (what was in flight is lost), and each side
//! still up is told `Down` after a delay (an RST is quick, a silent peer takes the failure
//! detector's bound). Only the dialling side reconnects, and only once it has seen its
//! `Down`; the accepting side may see the new connection's `Up` before the old one's
//! `Down`, which its shell then ignores as stale, exactly as on real sockets.

use std::collections::BTreeMap;

use wire::{NodeId, Request, RequestId, Response};

/// A request or a response on a connection.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Frame {
    Request { id: RequestId, msg: Request },
    Response { id: RequestId, msg: Response },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    /// Handshake under way: `Up` not yet delivered.
    Pending,
    Up,
    /// Told down (or the handshake never finished).
    Down,
}

/// One connection between `a` (the dialler) and `b`.
#[derive(Clone, Debug)]
pub struct Conn {
    pub a: NodeId,
    pub b: NodeId,
    /// Data still gets through a→b, b→a.
    pub flowing: [bool; 2],
    pub side: [Side; 2],
    /// Broken by a crash, partition or reset: no new data, sides going down.
    pub broken: bool,
    /// The last request id each side used (ids are per connection and direction).
    next_request: [u64; 2],
}

impl Conn {
    fn index(&self, node: NodeId) -> usize {
        usize::from(node != self.a)
    }

    pub fn peer_of(&self, node: NodeId) -> NodeId {
        if node == self.a { self.b } else { self.a }
    }

    pub fn side(&self, node: NodeId) -> Side {
        self.side[self.index(node)]
    }

    pub fn set_side(&mut self, node: NodeId, side: Side) {
        let index = self.index(node);
        self.side[index] = side;
    }

    pub fn flowing(&self, from: NodeId) -> bool {
        self.flowing[self.index(from)]
    }

    pub fn stop(&mut self, from: NodeId) {
        let index = self.index(from);
        self.flowing[index] = false;
    }

    pub fn next_request_id(&mut self, from: NodeId) -> RequestId {
        let index = self.index(from);
        self.next_request[index] += 1;
        RequestId(self.next_request[index])
    }
}

/// A node pair, ordered so that `dialler` is the side that connects.
#[derive(Clone, Debug)]
pub struct Pair {
    pub dialler: NodeId,
    pub acceptor: NodeId,
    /// The newest connection (epoch), if any.
    pub current: Option<u64>,
    /// dialler→acceptor and acceptor→dialler cut by a partition.
    pub cut: [bool; 2],
}

impl Pair {
    pub fn is_cut(&self) -> bool {
        self.cut[0] || self.cut[1]
    }
}

#[derive(Debug, Default)]
pub struct Net {
    pub conns: BTreeMap<u64, Conn>,
    /// Keyed by (smaller id, larger id).
    pub pairs: BTreeMap<(NodeId, NodeId), Pair>,
    /// Delivery time of the last message per directed link (FIFO).
    last_delivery_ms: BTreeMap<(NodeId, NodeId), u64>,
    next_epoch: u64,
}

pub fn pair_key(x: NodeId, y: NodeId) -> (NodeId, NodeId) {
    (x.min(y), x.max(y))
}

impl Net {
    pub fn add_pair(&mut self, dialler: NodeId, acceptor: NodeId) {
        self.pairs.insert(
            pair_key(dialler, acceptor),
            Pair {
                dialler,
                acceptor,
                current: None,
                cut: [false, false],
            },
        );
    }

    pub fn pair(&self, x: NodeId, y: NodeId) -> Option<&Pair> {
        self.pairs.get(&pair_key(x, y))
    }

    pub fn pair_mut(&mut self, x: NodeId, y: NodeId) -> Option<&mut Pair> {
        self.pairs.get_mut(&pair_key(x, y))
    }

    /// Whether a new connection may start: no partition, and the current one (if any) is
    /// broken and its dialling side has been told so.
    pub fn may_connect(&self, x: NodeId, y: NodeId) -> bool {
        let Some(pair) = self.pair(x, y) else {
            return false;
        };
        if pair.is_cut() {
            return false;
        }
        match pair.current.and_then(|epoch| self.conns.get(&epoch)) {
            None => true,
            Some(conn) => conn.broken && conn.side(pair.dialler) == Side::Down,
        }
    }

    /// Starts a new connection (both sides pending); returns its epoch.
    pub fn connect(&mut self, x: NodeId, y: NodeId) -> u64 {
        self.next_epoch += 1;
        let epoch = self.next_epoch;
        let pair = self.pairs.get_mut(&pair_key(x, y)).expect("known pair");
        pair.current = Some(epoch);
        self.conns.insert(
            epoch,
            Conn {
                a: pair.dialler,
                b: pair.acceptor,
                flowing: [true, true],
                side: [Side::Pending, Side::Pending],
                broken: false,
                next_request: [0, 0],
            },
        );
        epoch
    }

    /// The healthy current connection of a pair.
    pub fn healthy(&self, x: NodeId, y: NodeId) -> Option<u64> {
        let epoch = self.pair(x, y)?.current?;
        let conn = self.conns.get(&epoch)?;
        (!conn.broken).then_some(epoch)
    }

    /// The connections touching `node` that are not yet down on both sides.
    pub fn live_conns_of(&self, node: NodeId) -> Vec<u64> {
        self.conns
            .iter()
            .filter(|(_, conn)| conn.a == node || conn.b == node)
            .filter(|(_, conn)| conn.side != [Side::Down, Side::Down])
            .map(|(epoch, _)| *epoch)
            .collect()
    }

    /// When a message sent now with `delay_ms` arrives: never before an earlier message
    /// on the same directed link.
    pub fn arrival_ms(&mut self, from: NodeId, to: NodeId, now_ms: u64, delay_ms: u64) -> u64 {
        let last = self.last_delivery_ms.entry((from, to)).or_insert(0);
        let at = (now_ms + delay_ms).max(*last);
        *last = at;
        at
    }

    /// Forgets connections that are down on both sides (nothing can refer to them).
    pub fn prune(&mut self) {
        let current: Vec<u64> = self
            .pairs
            .values()
            .filter_map(|pair| pair.current)
            .collect();
        self.conns
            .retain(|epoch, conn| conn.side != [Side::Down, Side::Down] || current.contains(epoch));
    }
}
