//! A fault-injecting TCP proxy for one dialled path (node A dials participant B through
//! it): it forwards bytes both ways and, when told, holds them (cut), discards them
//! (drop), delays them, or closes every connection at once (reset). No root needed: the
//! nodes are simply given the proxy's port instead of the participant's.
//!
//! Threads and std::net: an accept thread, and per connection one reader and one writer
//! thread per direction, with a bounded queue between them (order is kept; a full queue
//! stops the reader, which is TCP's own backpressure).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Chunks of bytes queued between a direction's reader and writer.
pub const CHUNKS_QUEUED_MAX: usize = 256;
/// Bytes read at once.
const CHUNK_BYTES: usize = 16 * 1024;
/// Connections one proxy keeps open at once (more are refused: closed on accept).
pub const CONNECTIONS_MAX: usize = 64;
/// How often a held direction or an idle writer looks at its faults again.
const POLL: Duration = Duration::from_millis(10);

/// Faults on one direction of the link.
#[derive(Clone, Copy, Default, Debug)]
pub struct Faults {
    pub cut: bool,
    pub drop: bool,
    pub delay: Duration,
}

/// The two directions of a proxied path: `up` is dialler to target.
#[derive(Default, Debug)]
struct State {
    up: Faults,
    down: Faults,
    /// Open connections (both sockets), for `reset`; `None` once closed.
    connections: Vec<Option<(TcpStream, TcpStream)>>,
}

/// One proxy: listens on `addr`, forwards to `target`. Stops (closing every connection)
/// when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stopped: Arc<AtomicBool>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Proxy {
    /// Binds a free 127.0.0.1 port now (so it can be given to nodes before they start).
    pub fn start(target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let stopped = Arc::new(AtomicBool::new(false));
        let (accept_state, accept_stopped) = (state.clone(), stopped.clone());
        thread::spawn(move || accept(listener, target, accept_state, accept_stopped));
        Ok(Proxy {
            addr,
            state,
            stopped,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the faults of one direction (`up`: dialler to target).
    pub fn update(&self, up: bool, change: impl FnOnce(&mut Faults)) {
        let mut state = lock(&self.state);
        change(if up { &mut state.up } else { &mut state.down });
    }

    /// Closes every open connection; returns how many there were.
    pub fn reset(&self) -> usize {
        let mut state = lock(&self.state);
        let mut closed = 0;
        for (a, b) in state.connections.iter_mut().filter_map(Option::take) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
            closed += 1;
        }
        state.connections.clear();
        closed
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.reset();
        // Wakes the accept thread so it sees `stopped`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

fn accept(
    listener: TcpListener,
    target: SocketAddr,
    state: Arc<Mutex<State>>,
    stopped: Arc<AtomicBool>,
) {
    for client in listener.incoming() {
        if stopped.load(Ordering::Relaxed) {
            return;
        }
        let Ok(client) = client else { continue };
        // The target may be down (a killed node): the dialler sees its connection close,
        // as it would have seen a refusal.
        let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        {
            let mut state = lock(&state);
            state.connections.retain(Option::is_some);
            if state.connections.len() >= CONNECTIONS_MAX {
                continue;
            }
            let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            state.connections.push(Some((a, b)));
        }
        for (from, to, up) in [(&client, &server, true), (&server, &client, false)] {
            let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                break;
            };
            let (tx, rx) = sync_channel(CHUNKS_QUEUED_MAX);
            let reader_state = state.clone();
            thread::spawn(move || read_side(from, tx, reader_state, up));
            let writer_state = state.clone();
            thread::spawn(move || write_side(to, rx, writer_state, up));
        }
    }
}

fn faults(state: &Mutex<State>, up: bool) -> Faults {
    let state = lock(state);
    if up { state.up } else { state.down }
}

/// Reads chunks and queues them with their read time; a dropped chunk marks the stream
/// broken (the writer closes it once the drop is lifted). Ends at EOF or error.
fn read_side(
    mut from: TcpStream,
    queue: SyncSender<(Instant, Option<Vec<u8>>)>,
    state: Arc<Mutex<State>>,
    up: bool,
) {
    let mut buf = vec![0; CHUNK_BYTES];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // `None` says "bytes were lost here".
        let chunk = (!faults(&state, up).drop).then(|| buf[..n].to_vec());
        if queue.send((Instant::now(), chunk)).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
}

/// Writes queued chunks in order, each no earlier than its read time plus the delay and
/// not while the direction is cut. Ends (closing both ways) when the reader ends, the
/// write fails, or a gap left by a drop is reached after the drop was lifted.
fn write_side(
    mut to: TcpStream,
    queue: Receiver<(Instant, Option<Vec<u8>>)>,
    state: Arc<Mutex<State>>,
    up: bool,
) {
    let mut broken = false;
    loop {
        let (read_at, chunk) = match queue.recv_timeout(POLL) {
            Ok(item) => item,
            Err(RecvTimeoutError::Timeout) => {
                if broken && !faults(&state, up).drop {
                    break;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let Some(chunk) = chunk else {
            broken = true;
            continue;
        };
        if broken {
            // The stream has a gap: nothing after it may be delivered.
            if !faults(&state, up).drop {
                break;
            }
            continue;
        }
        loop {
            let now = faults(&state, up);
            let due = read_at + now.delay;
            if !now.cut && Instant::now() >= due {
                break;
            }
            let left = due.saturating_duration_since(Instant::now());
            thread::sleep(if now.cut { POLL } else { left.min(POLL) });
        }
        if to.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback.
    fn echo() -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || {
                    let mut reader = stream.try_clone().unwrap();
                    let mut writer = stream;
                    let _ = std::io::copy(&mut reader, &mut writer);
                });
            }
        });
        addr
    }

    fn roundtrip(stream: &mut TcpStream, text: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(text)?;
        let mut back = vec![0; text.len()];
        stream.read_exact(&mut back)?;
        Ok(back)
    }

    #[test]
    fn forwards_holds_while_cut_and_resets() {
        let proxy = Proxy::start(echo()).unwrap();
        let mut stream = TcpStream::connect(proxy.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(roundtrip(&mut stream, b"hello").unwrap(), b"hello");

        proxy.update(true, |faults| faults.cut = true);
        stream.write_all(b"held").unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut byte = [0; 1];
        assert!(stream.read(&mut byte).is_err(), "nothing passes a cut");
        proxy.update(true, |faults| faults.cut = false);
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut back = [0; 4];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"held", "held bytes arrive on heal, in order");

        assert_eq!(proxy.reset(), 1);
        assert_eq!(stream.read(&mut byte).unwrap_or(0), 0, "reset closes it");
    }

    #[test]
    fn a_dropped_stream_is_closed_when_the_drop_ends() {
        let proxy = Proxy::start(echo()).unwrap();
        let mut stream = TcpStream::connect(proxy.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        proxy.update(false, |faults| faults.drop = true);
        stream.write_all(b"lost").unwrap();
        thread::sleep(Duration::from_millis(100));
        proxy.update(false, |faults| faults.drop = false);
        let mut byte = [0; 1];
        assert_eq!(
            stream.read(&mut byte).unwrap_or(0),
            0,
            "closed, not resumed"
        );
    }
}
