//! The TCP transport on `std::net` and plain threads: the fallback where io_uring is not
//! available. Same wire protocol and the same [`Shared`] logic as the io_uring backend.
//!
//! Threads: one acceptor, one dialer/writer per peer plus a reader for its acknowledgements,
//! and a reader plus an acknowledgement writer per inbound connection.

use std::collections::HashMap;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::error::HandshakeError;
use super::frame::{FrameDecoder, FrameKind};
use super::handshake::HANDSHAKE_BYTES;
use super::metrics::MetricsSnapshot;
use super::queue::{advance_parts, SendQueue, Wait, WriteBatch};
use super::tcp::{lock, Backoff, InboundConn, Peer, Shared, INBOUND_CONNECTIONS_MAX};
use super::{
    Inbox, Incoming, NodeId, SendError, SnapshotSender, SnapshotStreamError, Transport,
    TransportConfig, TransportError,
};

/// Longest sleep of a dialer between checks of whether its peer was removed.
const DIALER_POLL: Duration = Duration::from_millis(20);
/// Wait between attempts to deliver into a full inbox: only paid under backpressure.
const INBOX_FULL_POLL: Duration = Duration::from_millis(1);

/// Open sockets, so that shutdown can unblock the threads reading or writing them.
#[derive(Debug, Default)]
struct Sockets {
    next: AtomicU64,
    open: Mutex<HashMap<u64, TcpStream>>,
}

impl Sockets {
    fn register(&self, stream: &TcpStream) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = stream.try_clone() {
            lock(&self.open).insert(id, clone);
        }
        id
    }

    fn unregister(&self, id: u64) {
        lock(&self.open).remove(&id);
    }

    fn shutdown_all(&self) {
        for (_, stream) in lock(&self.open).drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    sockets: Sockets,
}

/// TCP transport on `std::net` and threads. See [`Transport`] for the guarantees.
///
/// Dropping the handle shuts the endpoint down (as [`Transport::shutdown`]).
#[derive(Debug)]
pub struct ThreadTransport {
    inner: Arc<Inner>,
}

impl ThreadTransport {
    /// Binds `listen` (port 0 picks a free port) and starts accepting connections.
    ///
    /// # Errors
    /// [`TransportError::Config`] for an invalid configuration, [`TransportError::Bind`] if
    /// the address cannot be bound.
    pub fn start(
        config: TransportConfig,
        listen: SocketAddr,
    ) -> Result<(Self, Inbox), TransportError> {
        config.validate()?;
        let listener = TcpListener::bind(listen).map_err(|source| TransportError::Bind {
            addr: listen,
            source,
        })?;
        let local_addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(config.inbox_msgs_max);
        let shared = Arc::new(Shared::new(config, local_addr, tx));
        let inner = Arc::new(Inner {
            shared,
            sockets: Sockets::default(),
        });
        let acceptor = Arc::clone(&inner);
        thread::Builder::new()
            .name(format!("ringraft-accept-{}", inner.shared.config.node_id))
            .spawn(move || accept_loop(&acceptor, &listener))?;
        Ok((ThreadTransport { inner }, Inbox::new(rx)))
    }

    /// The address the endpoint listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.shared.local_addr
    }
}

impl Transport for ThreadTransport {
    fn local_id(&self) -> NodeId {
        self.inner.shared.config.node_id
    }

    fn send(&self, to: NodeId, payload: Bytes) -> Result<(), SendError> {
        self.inner.shared.send(to, payload)
    }

    fn start_snapshot(
        &self,
        to: NodeId,
        header: Bytes,
    ) -> Result<SnapshotSender, SnapshotStreamError> {
        self.inner.shared.start_snapshot(to, header)
    }

    fn add_peer(&self, id: NodeId, addr: SocketAddr) -> Result<(), TransportError> {
        if let Some(peer) = self.inner.shared.add_peer(id, addr)? {
            let inner = Arc::clone(&self.inner);
            thread::Builder::new()
                .name(format!("ringraft-dial-{id}"))
                .spawn(move || dial_loop(&inner, &peer))?;
        }
        Ok(())
    }

    fn remove_peer(&self, id: NodeId) {
        self.inner.shared.remove_peer(id);
    }

    fn take_unreachable(&self) -> Vec<NodeId> {
        self.inner.shared.take_unreachable()
    }

    fn metrics(&self) -> MetricsSnapshot {
        self.inner.shared.metrics.snapshot()
    }

    fn shutdown(&self) {
        if self.inner.shared.is_shut() {
            return;
        }
        self.inner.shared.shutdown();
        self.inner.sockets.shutdown_all();
        // Unblock the acceptor with a connection of our own.
        let mut wake = self.inner.shared.local_addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
    }
}

impl Drop for ThreadTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Decrements the inbound connection count when a connection thread ends.
struct InboundSlot<'a>(&'a Shared);

impl Drop for InboundSlot<'_> {
    fn drop(&mut self) {
        self.0.inbound_conns.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(inner: &Arc<Inner>, listener: &TcpListener) {
    for accepted in listener.incoming() {
        if inner.shared.is_shut() {
            return;
        }
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let count = inner.shared.inbound_conns.fetch_add(1, Ordering::AcqRel);
        if count >= INBOUND_CONNECTIONS_MAX {
            inner.shared.inbound_conns.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(remote = ?stream.peer_addr().ok(), "too many inbound connections");
            continue;
        }
        let conn_inner = Arc::clone(inner);
        let spawned = thread::Builder::new()
            .name("ringraft-inbound".into())
            .spawn(move || {
                let _slot = InboundSlot(&conn_inner.shared);
                let id = conn_inner.sockets.register(&stream);
                inbound(&conn_inner, stream);
                conn_inner.sockets.unregister(id);
            });
        if let Err(error) = spawned {
            inner.shared.inbound_conns.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(%error, "cannot spawn a connection thread");
        }
    }
}

fn io_reason(error: &io::Error) -> HandshakeError {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HandshakeError::Timeout,
        _ => HandshakeError::Io(error.to_string()),
    }
}

/// Reads and checks the dialer's hello; the dialer's node id if accepted (the reply is sent
/// by the caller once the connection is registered).
fn accept_handshake(shared: &Shared, stream: &mut TcpStream, remote: SocketAddr) -> Option<NodeId> {
    let timeout = Some(shared.config.handshake_timeout);
    let mut hello = [0u8; HANDSHAKE_BYTES];
    let read = stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .and_then(|()| stream.read_exact(&mut hello));
    if let Err(error) = read {
        shared.refuse(remote, &io_reason(&error));
        return None;
    }
    match shared.accept_hello(remote, &hello) {
        Ok(from) => Some(from),
        Err(refusal) => {
            if let Some(refusal) = refusal {
                let _ = stream.write_all(&refusal);
            }
            None
        }
    }
}

fn inbound(inner: &Arc<Inner>, mut stream: TcpStream) {
    let shared = &inner.shared;
    let Ok(remote) = stream.peer_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let Some(from) = accept_handshake(shared, &mut stream, remote) else {
        return;
    };
    let Some(inbox) = shared.inbox() else {
        return;
    };
    let generation = shared.next_generation();
    let slot = shared.inbound_slot(from);
    *slot.blocking_lock() = generation;
    shared.inbound_registered(from, generation, remote);
    let conn = InboundConn {
        from,
        generation,
        acks: shared.new_ack_queue(),
    };
    // Replied only now: once the dialer knows it is accepted, the connection it replaces can
    // no longer deliver.
    if let Err(error) = stream.write_all(&shared.reply_to(from)) {
        shared.inbound_ended(&conn, &error);
        return;
    }
    let writer = match stream.try_clone() {
        Ok(clone) => {
            let shared = Arc::clone(shared);
            let acks = Arc::clone(&conn.acks);
            thread::Builder::new()
                .name(format!("ringraft-ack-{from}"))
                .spawn(move || write_loop(&shared, clone, &acks, &|| false))
                .ok()
        }
        Err(_) => None,
    };
    let reason = read_inbound(shared, &mut stream, &conn, &slot, &inbox, remote);
    shared.inbound_ended(&conn, &reason);
    let _ = stream.shutdown(Shutdown::Both);
    if let Some(writer) = writer {
        let _ = writer.join();
    }
}

/// Reads and delivers until the connection fails, is superseded, or the peer is removed.
fn read_inbound(
    shared: &Shared,
    stream: &mut TcpStream,
    conn: &InboundConn,
    slot: &tokio::sync::Mutex<u64>,
    inbox: &mpsc::Sender<Incoming>,
    remote: SocketAddr,
) -> String {
    if let Err(error) = stream.set_read_timeout(Some(shared.config.idle_timeout)) {
        return error.to_string();
    }
    let mut decoder = FrameDecoder::new(shared.config.frame_bytes_max);
    let mut ready = Vec::new();
    loop {
        match decoder.read_with(|buf| stream.read(buf)) {
            Ok(0) => return "closed by peer".into(),
            Ok(_) => {}
            Err(error) => return error.to_string(),
        }
        if let Err(reason) = shared.drain_inbound(conn, remote, &mut decoder, &mut ready) {
            return reason;
        }
        // Deliver under the slot lock: a superseded connection never delivers after its
        // successor (see `Shared::inbound`).
        let current = slot.blocking_lock();
        if *current != conn.generation {
            return "superseded by a newer connection".into();
        }
        if !shared.is_peer(conn.from) {
            return "peer removed".into();
        }
        for item in ready.drain(..) {
            // Counted first, so that whoever receives the message also sees the count.
            shared.count_delivered();
            if let Err(reason) = deliver(shared, inbox, item) {
                return reason.into();
            }
        }
    }
}

/// Hands `item` to the node, waiting while the inbox is full (TCP then pushes back on the
/// sender). Polls rather than blocking in `blocking_send` so that a shutdown ends the wait
/// even if the application keeps a full inbox and stops reading.
fn deliver(
    shared: &Shared,
    inbox: &mpsc::Sender<Incoming>,
    mut item: Incoming,
) -> Result<(), &'static str> {
    loop {
        match inbox.try_send(item) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err("inbox closed"),
            Err(mpsc::error::TrySendError::Full(back)) => {
                if shared.is_shut() {
                    return Err("shut down");
                }
                item = back;
                thread::sleep(INBOX_FULL_POLL);
            }
        }
    }
}

/// Drains `queue` into coalesced writes until it closes, `dead` is set, or a write fails.
/// Returns the number of messages lost in a failed write and the reason.
fn write_loop(
    shared: &Shared,
    mut stream: TcpStream,
    queue: &SendQueue,
    stop: &dyn Fn() -> bool,
) -> (usize, String) {
    let batch_max = shared.config.write_batch_bytes_max;
    let mut batch = Vec::new();
    let mut write = WriteBatch::default();
    loop {
        let wait = queue.wait_blocking(shared.config.keepalive_interval);
        if stop() {
            return (0, "reader ended or address changed".into());
        }
        match wait {
            Wait::Closed => return (0, "queue closed".into()),
            Wait::Idle => write.push(FrameKind::Keepalive, 0, &Bytes::new()),
            Wait::Ready => {
                if !queue.take_batch(&mut batch, batch_max) {
                    return (0, "queue closed".into());
                }
                write.push_all(&batch);
            }
        }
        if let Err(error) = write_parts(&mut stream, write.take_parts()) {
            let _ = stream.shutdown(Shutdown::Both);
            return (write.msgs(), error.to_string());
        }
        shared.count_sent(write.frames(), write.len());
        batch.clear();
        write.clear();
    }
}

/// Writes every byte of `parts` with as few `writev` calls as the socket allows.
fn write_parts(stream: &mut TcpStream, mut parts: Vec<Bytes>) -> io::Result<()> {
    while !parts.is_empty() {
        let slices: Vec<IoSlice<'_>> = parts.iter().map(|part| IoSlice::new(part)).collect();
        match stream.write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => advance_parts(&mut parts, n),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Connects to `peer` and completes the dialer's side of the handshake.
fn dial(shared: &Shared, peer: &Peer, addr: SocketAddr) -> Result<TcpStream, HandshakeError> {
    let timeout = shared.config.handshake_timeout;
    let io = |error: io::Error| io_reason(&error);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    stream.write_all(&shared.hello_for(peer.id)).map_err(io)?;
    let mut reply = [0u8; HANDSHAKE_BYTES];
    stream.read_exact(&mut reply).map_err(io)?;
    shared.check_reply(peer.id, &reply)?;
    stream.set_write_timeout(None).map_err(io)?;
    stream
        .set_read_timeout(Some(shared.config.idle_timeout))
        .map_err(io)?;
    Ok(stream)
}

fn dial_loop(inner: &Arc<Inner>, peer: &Arc<Peer>) {
    let shared = &inner.shared;
    let mut backoff = Backoff::new(&shared.config, peer.id);
    while !peer.is_removed() {
        // A redial request is served by this dial: it reads the current address.
        let _ = peer.take_redial();
        let addr = peer.addr();
        match dial(shared, peer, addr) {
            Ok(stream) => {
                let since = std::time::Instant::now();
                let id = inner.sockets.register(&stream);
                shared.outbound_up(peer);
                let (lost, reason) = run_outbound(shared, peer, stream);
                inner.sockets.unregister(id);
                shared.outbound_down(peer, lost, &reason);
                backoff.reset_after(since.elapsed());
            }
            Err(reason) => {
                if matches!(
                    reason,
                    HandshakeError::Refused(_) | HandshakeError::WrongPeer { .. }
                ) {
                    tracing::warn!(peer = %peer.id, %addr, %reason, "handshake refused");
                }
                shared.dial_failed(peer, addr, &reason);
            }
        }
        let mut delay = backoff.next_delay();
        while !delay.is_zero() && !peer.is_removed() {
            let step = delay.min(DIALER_POLL);
            thread::sleep(step);
            delay -= step;
        }
    }
}

/// Runs an established outbound connection: this thread writes, a helper reads the acks.
fn run_outbound(shared: &Arc<Shared>, peer: &Arc<Peer>, stream: TcpStream) -> (usize, String) {
    let dead = Arc::new(AtomicBool::new(false));
    let reader = stream.try_clone().ok().and_then(|mut clone| {
        let (shared, peer, dead) = (Arc::clone(shared), Arc::clone(peer), Arc::clone(&dead));
        thread::Builder::new()
            .name(format!("ringraft-acks-{}", peer.id))
            .spawn(move || {
                let reason = read_outbound(&shared, &peer, &mut clone);
                dead.store(true, Ordering::Release);
                peer.queue.wake();
                let _ = clone.shutdown(Shutdown::Both);
                reason
            })
            .ok()
    });
    let Some(reader) = reader else {
        return (0, "cannot start the reader".into());
    };
    let Ok(writer_stream) = stream.try_clone() else {
        return (0, "cannot clone the socket".into());
    };
    let stop = || dead.load(Ordering::Acquire) || peer.take_redial();
    let (lost, mut reason) = write_loop(shared, writer_stream, &peer.queue, &stop);
    let _ = stream.shutdown(Shutdown::Both);
    if let Ok(read_reason) = reader.join() {
        if dead.load(Ordering::Acquire) {
            reason = read_reason;
        }
    }
    (lost, reason)
}

fn read_outbound(shared: &Shared, peer: &Peer, stream: &mut TcpStream) -> String {
    let mut decoder = FrameDecoder::new(shared.config.frame_bytes_max);
    loop {
        match decoder.read_with(|buf| stream.read(buf)) {
            Ok(0) => return "closed by peer".into(),
            Ok(_) => {}
            Err(error) => return error.to_string(),
        }
        if let Err(reason) = shared.drain_outbound(peer, &mut decoder) {
            return reason;
        }
    }
}
