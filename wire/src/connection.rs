//! Runs one handshaken connection to its end: the writer task that coalesces queued
//! frames into few writes, the heartbeat task (read timeout, request deadlines, and
//! heartbeats only while the node's event loop takes input), and the reader that checks
//! the request sequence and feeds the node's event queue.

use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use futures::future::{Either, select};
use futures::{AsyncReadExt, AsyncWriteExt};
use tracing::{error, info, warn};

use crate::channel::{Channel, Parts, release_ready};
use crate::config::ChannelConfig;
use crate::events::{ChannelEvent, EventSender};
use crate::frame::{self};
use crate::handshake::{self, Handshaken};
use crate::memory::Held;
use crate::msg::Frame;
use crate::pipeline::Inbound;
use crate::read_buf::ReadBuf;
use crate::runtime::{self, Receiver, TcpStream};

/// Largest write buffer: small frames are copied into it and written together; a frame
/// this large or larger is written on its own, uncopied.
pub const WRITE_COALESCE_LEN: usize = 64 * 1024;
/// Capacity the write buffer keeps while the queue is empty: a burst's larger buffer is
/// given back before the writer waits, so idle connections hold little.
pub const WRITE_BUF_IDLE_LEN: usize = 4 * 1024;
/// The buffers an idle connection holds at most (read buffer, write buffer), as counted by
/// its config's `MemoryGauge`; queued frames come on top while the peer does not read.
pub const IDLE_CONNECTION_BYTES_MAX: usize =
    crate::read_buf::READ_BUF_KEEP_LEN + WRITE_BUF_IDLE_LEN;

/// Runs one handshaken connection to its end: starts the writer and heartbeat tasks,
/// emits `Up` (so a busy node's full queue delays the Up, not the heartbeats the peer
/// judges us by), runs the reader, then emits `Down` once. Returns the close reason.
/// `stop` closing (its owner dropped or stopped) closes the connection.
pub(crate) async fn run_connection(
    conn: Handshaken,
    config: Arc<ChannelConfig>,
    events: EventSender,
    stop: Receiver<()>,
) -> String {
    let Handshaken {
        stream,
        local_addr,
        peer_addr,
        peer,
        claim,
        slot,
    } = conn;
    // Both held until the connection ends: the member's claim and the listener's slot.
    let _held = slot;
    let (wake_writer, wake_rx) = runtime::bounded(1);
    let (closing, closing_rx) = runtime::bounded(1);
    let parts = Parts {
        send_frame_len_max: handshake::send_frame_len_max(config.max_frame_len, peer.max_frame_len),
        peer: peer.node_id,
        peer_role: peer.role,
        peer_addr,
        local_addr,
        stream: stream.clone(),
        wake_writer,
        closing,
    };
    let channel = Channel::new(parts, config.clone());
    if let Some(claim) = &claim {
        claim.running(&channel);
    }
    let (peer_id, epoch) = (channel.peer(), channel.epoch());
    info!(peer = %peer_id, role = ?peer.role, addr = %peer_addr, %epoch, "channel up");
    runtime::spawn(write_loop(channel.clone(), stream.clone(), wake_rx));
    runtime::spawn(heartbeat_loop(
        channel.clone(),
        closing_rx.clone(),
        events.clone(),
    ));

    // The peer's silence is not held against it while the node has not taken the Up.
    channel.delivery_started();
    let up = events.send(ChannelEvent::Up {
        channel: channel.clone(),
    });
    let (closing_recv, stop_recv) = (pin!(closing_rx.recv()), pin!(stop.recv()));
    let delivered = match select(pin!(up), select(closing_recv, stop_recv)).await {
        Either::Left((delivered, _)) => delivered.is_ok(),
        // Closed or stopped before the node heard of it: no Up, so no Down either.
        Either::Right(_) => false,
    };
    channel.delivery_ended();
    if !delivered {
        channel.close_with("closed before the node took its Up".into());
        return channel.close_reason();
    }

    let reader = pin!(read_loop(&channel, &events, stream));
    let (closing_recv, stop_recv) = (pin!(closing_rx.recv()), pin!(stop.recv()));
    let reason = match select(reader, select(closing_recv, stop_recv)).await {
        Either::Left((reason, _)) => reason,
        // Either `close()` was called (its reason is recorded) or our owner stopped.
        Either::Right(_) => "stopped by its owner".into(),
    };
    channel.close_with(reason);
    let reason = channel.close_reason();
    info!(peer = %peer_id, addr = %peer_addr, %epoch, %reason, "channel down");
    let _ = events
        .send(ChannelEvent::Down {
            peer: peer_id,
            epoch,
            reason: reason.clone(),
        })
        .await;
    reason
}

/// Drains the outgoing queue: small frames go out coalesced, one flush per batch, so a
/// burst costs few syscalls; a large frame is written from its own buffer, so the copy
/// never exceeds `WRITE_COALESCE_LEN`. The batch's bytes leave the channel's byte bound
/// once written; the buffer shrinks to `WRITE_BUF_IDLE_LEN` before the writer waits.
async fn write_loop(channel: Channel, mut stream: TcpStream, wake: Receiver<()>) {
    let mut buf = Vec::new();
    let mut held = Held::new(&channel.shared.config.memory);
    loop {
        let batch = {
            let mut state = channel.shared.state();
            if state.close_reason.is_some() {
                return;
            }
            std::mem::take(&mut state.outgoing)
        };
        if batch.is_empty() {
            buf.shrink_to(WRITE_BUF_IDLE_LEN);
            held.set(buf.capacity());
            if wake.recv().await.is_err() {
                return;
            }
            continue;
        }
        let frames = batch.len();
        let mut batch_bytes = 0;
        let mut written = Ok(());
        for bytes in batch {
            batch_bytes += bytes.len();
            if written.is_err() {
                continue;
            }
            if buf.len() + bytes.len() > WRITE_COALESCE_LEN && !buf.is_empty() {
                written = stream.write_all(&buf).await;
                buf.clear();
            }
            if written.is_ok() {
                if bytes.len() >= WRITE_COALESCE_LEN {
                    written = stream.write_all(&bytes).await;
                } else {
                    append_coalesced(&mut buf, &bytes);
                }
            }
        }
        if written.is_ok() && !buf.is_empty() {
            written = stream.write_all(&buf).await;
        }
        held.set(buf.capacity());
        buf.clear();
        if written.is_ok() {
            written = stream.flush().await;
        }
        if let Err(error) = written {
            channel.close_with(format!("write failed: {error}"));
            return;
        }
        channel.written(batch_bytes);
        channel.shared.config.traffic.written(frames, batch_bytes);
    }
}

/// Appends a small frame to the write buffer, growing it by doubling but never past
/// `WRITE_COALESCE_LEN` (the caller writes the buffer out before it would overflow).
fn append_coalesced(buf: &mut Vec<u8>, bytes: &[u8]) {
    let needed = buf.len() + bytes.len();
    if needed > buf.capacity() {
        let target = (buf.capacity() * 2).clamp(needed, WRITE_COALESCE_LEN.max(needed));
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(bytes);
}

/// Every interval: closes the channel when the peer has been silent for
/// `dead_after_heartbeats` intervals, expires requests past their deadline, and sends a
/// heartbeat, unless the node's event loop has left input waiting for `dead_after`:
/// then the heartbeats stop, so the peer declares this node dead (a stuck loop must not
/// look alive) until the loop takes input again.
async fn heartbeat_loop(channel: Channel, closing: Receiver<()>, events: EventSender) {
    let config = channel.shared.config.clone();
    let heartbeat = match frame::encode(&Frame::Heartbeat, config.max_frame_len) {
        Ok(bytes) => bytes,
        Err(error) => {
            channel.close_with(format!("cannot encode heartbeat: {error}"));
            return;
        }
    };
    let dead_after = config.dead_after();
    let mut withholding = false;
    loop {
        if runtime::timeout(config.heartbeat_interval, closing.recv())
            .await
            .is_some()
        {
            return;
        }
        let now = Instant::now();
        if let Some(silent) = channel.silence(now)
            && silent >= dead_after
        {
            warn!(peer = %channel.peer(), addr = %channel.peer_addr(), epoch = %channel.epoch(),
                ?silent, "peer silent; closing channel");
            channel.close_with(format!(
                "peer silent for {silent:?} (over {} heartbeats of {:?})",
                config.dead_after_heartbeats, config.heartbeat_interval
            ));
            return;
        }
        expire_requests(&channel, now);
        let stalled = events
            .stalled_for(now)
            .filter(|stalled| *stalled >= dead_after);
        match (stalled, withholding) {
            (Some(stalled), false) => {
                warn!(peer = %channel.peer(), epoch = %channel.epoch(), ?stalled,
                    "our event loop has taken no input; heartbeats withheld so peers see us as dead");
                withholding = true;
            }
            (None, true) => {
                info!(peer = %channel.peer(), epoch = %channel.epoch(),
                    "our event loop takes input again; heartbeats resumed");
                withholding = false;
            }
            _ => {}
        }
        if !withholding && !channel.push_heartbeat(&heartbeat) {
            return;
        }
    }
}

/// Frees the slots of requests unanswered past their deadline.
fn expire_requests(channel: &Channel, now: Instant) {
    let config = &channel.shared.config;
    let mut state = channel.shared.state();
    let expired = state.outbound.expire(now);
    if let (Some(first), Some(last)) = (expired.first(), expired.last()) {
        warn!(peer = %channel.peer(), addr = %channel.peer_addr(), epoch = %channel.epoch(),
            count = expired.len(), first = first.0, last = last.0,
            timeout = ?config.request_timeout, "requests unanswered past their deadline; slots freed");
        release_ready(&mut state);
        drop(state);
        channel.wake_writer();
    }
}

/// Reads and handles frames until the connection breaks; returns why. Every read counts
/// as hearing from the peer (a large frame arriving slowly is not silence); the phi
/// detector is fed when a read completes a frame, at the time the bytes arrived.
async fn read_loop(channel: &Channel, events: &EventSender, mut stream: TcpStream) -> String {
    let config = &channel.shared.config;
    let mut inbound = Inbound::new();
    let mut buf = ReadBuf::new(config.max_frame_len, Held::new(&config.memory));
    loop {
        loop {
            match buf.next_frame() {
                Ok(Some(frame)) => {
                    config.traffic.frame_in();
                    if let Err(reason) = handle_frame(channel, events, &mut inbound, frame).await {
                        return reason;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    config.traffic.frame_rejected();
                    warn!(peer = %channel.peer(), addr = %channel.peer_addr(), epoch = %channel.epoch(),
                        %error, "bad frame from peer; closing its connection");
                    return format!("protocol error: {error}");
                }
            }
        }
        buf.compact();
        match stream.read(buf.spare()).await {
            Ok(0) => return "connection closed by peer".into(),
            Ok(read) => {
                let arrived = Instant::now();
                config.traffic.read(read);
                buf.filled(read);
                channel.heard(arrived, buf.holds_frame());
            }
            Err(error) => return format!("read failed: {error}"),
        }
    }
}

/// Handles one frame after the handshake; `Err` closes the connection with that reason.
async fn handle_frame(
    channel: &Channel,
    events: &EventSender,
    inbound: &mut Inbound,
    frame: Frame,
) -> Result<(), String> {
    let (peer, epoch, addr) = (channel.peer(), channel.epoch(), channel.peer_addr());
    let event = match frame {
        Frame::Heartbeat => return Ok(()),
        Frame::Request { id, msg } => match inbound.accept(id) {
            Ok(()) => ChannelEvent::Request {
                peer,
                epoch,
                id,
                msg,
            },
            Err(gap) => {
                channel.shared.config.traffic.frame_rejected();
                warn!(%peer, %addr, %epoch, id = gap.id.0, expected = gap.expected.0,
                    "request out of sequence; not delivered");
                let refused = Frame::SequenceError {
                    id: gap.id,
                    expected: gap.expected,
                };
                return match channel.push_frame(&refused) {
                    Ok(()) => Ok(()),
                    Err(error) => Err(format!("cannot answer out-of-sequence request: {error}")),
                };
            }
        },
        Frame::Response { id, msg } => {
            let known = {
                let mut state = channel.shared.state();
                let known = state.outbound.complete(id);
                release_ready(&mut state);
                known
            };
            if !known {
                warn!(%peer, %addr, %epoch, id = id.0, "response for a request not in flight (bogus, duplicate, or expired); dropped");
                return Ok(());
            }
            channel.wake_writer();
            ChannelEvent::Response {
                peer,
                epoch,
                id,
                msg,
            }
        }
        Frame::SequenceError { id, expected } => {
            error!(%peer, %addr, %epoch, id = id.0, expected = expected.0,
                "peer refused our request as out of sequence; closing the broken stream");
            return Err(format!(
                "peer reported sequence error: request {} but expected {}",
                id.0, expected.0
            ));
        }
        Frame::Reject { reason } => {
            let reason = crate::quote::quote(&reason);
            warn!(%peer, %addr, %epoch, %reason, "peer rejected the connection");
            return Err(format!("rejected by peer: {reason}"));
        }
        Frame::Hello(_) | Frame::Auth { .. } => {
            warn!(%peer, %addr, %epoch, "handshake frame after the handshake; closing");
            return Err("protocol error: handshake frame after the handshake".into());
        }
    };
    channel.delivery_started();
    let delivered = events.send(event).await;
    channel.delivery_ended();
    delivered.map_err(|closed| closed.to_string())
}

/// Configs are validated where they are built (from flags); this catches the rest loudly.
pub(crate) fn warn_if_invalid(config: &ChannelConfig) {
    if let Err(problem) = config.validate() {
        error!(%problem, "invalid channel config; channels may misbehave");
    }
}
