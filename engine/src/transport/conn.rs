//! The one connection lifecycle of both TCP backends: accept, handshake, register, read and
//! deliver, write, dial, reconnect with backoff. It is written once, as async code over the
//! [`Conn`] and [`Net`] traits; a backend only says how bytes move (io_uring's owned-buffer
//! operations in `uring.rs`, readiness and `read`/`writev` on tokio's epoll reactor in
//! `thread.rs`) and how a task is spawned. Every protocol decision is in [`Shared`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch, Notify};

use super::error::HandshakeError;
use super::frame::{FrameDecoder, FrameKind};
use super::handshake::HANDSHAKE_BYTES;
use super::queue::{SendQueue, Wait, WriteBatch};
use super::tcp::{Backoff, InboundConn, Peer, Shared, INBOUND_CONNECTIONS_MAX};
use super::{Incoming, NodeId};

/// One established TCP connection, as a backend moves its bytes.
///
/// # Correctness
/// - `read` fills a prefix of `buffer[range]` and returns how many bytes it read (0 only at
///   end of stream) with the buffer; bytes it read are initialised in the buffer (a `Vec`
///   shorter than `range.end` grows to cover them, as io_uring's `set_init` does).
/// - `write_all` writes every byte of `parts`, in order, or fails.
/// - Dropping the connection closes it (both directions), also with an operation cancelled
///   in flight.
pub(super) trait Conn: 'static {
    /// Reads once into `buffer[range]`.
    async fn read(&self, buffer: Vec<u8>, range: Range<usize>) -> (io::Result<usize>, Vec<u8>);
    /// Writes all of `parts`.
    async fn write_all(&self, parts: Vec<Bytes>) -> io::Result<()>;
}

/// How a backend connects, accepts and runs tasks.
pub(super) trait Net: 'static {
    /// The backend's connection.
    type Conn: Conn;
    /// The backend's listener.
    type Listener: 'static;
    /// Connects to `addr` with `TCP_NODELAY` set.
    async fn connect(addr: SocketAddr) -> io::Result<Self::Conn>;
    /// The next inbound connection, with `TCP_NODELAY` set.
    async fn accept(listener: &Self::Listener) -> io::Result<(Self::Conn, SocketAddr)>;
    /// Runs `task` on the endpoint's thread.
    fn spawn(task: impl Future<Output = ()> + 'static);
}

/// Starts the endpoint's accept loop and the supervisor that starts a dialer per peer.
pub(super) fn start<N: Net>(
    shared: &Arc<Shared>,
    listener: N::Listener,
    peers_changed: &Arc<Notify>,
) {
    N::spawn(accept_loop::<N>(Arc::clone(shared), listener));
    N::spawn(supervise::<N>(
        Arc::clone(shared),
        Arc::clone(peers_changed),
    ));
}

/// Resolves once the endpoint shuts down.
pub(super) async fn shut_down(rx: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens with the endpoint: stop too.
    let _ = rx.wait_for(|shut| *shut).await;
}

/// Starts a dialer task for every peer that has none.
async fn supervise<N: Net>(shared: Arc<Shared>, peers_changed: Arc<Notify>) {
    let mut shutdown = shared.shutdown_tx.subscribe();
    let mut dialing: std::collections::HashMap<NodeId, Arc<Peer>> = Default::default();
    loop {
        dialing.retain(|_, peer| !peer.is_removed());
        for peer in shared.peers() {
            let running = dialing
                .get(&peer.id)
                .is_some_and(|known| Arc::ptr_eq(known, &peer));
            if !running {
                dialing.insert(peer.id, Arc::clone(&peer));
                N::spawn(dial_loop::<N>(Arc::clone(&shared), peer));
            }
        }
        tokio::select! {
            () = peers_changed.notified() => {}
            () = shut_down(&mut shutdown) => return,
        }
    }
}

async fn accept_loop<N: Net>(shared: Arc<Shared>, listener: N::Listener) {
    let mut shutdown = shared.shutdown_tx.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = N::accept(&listener) => accepted,
            () = shut_down(&mut shutdown) => return,
        };
        let (conn, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let count = shared.inbound_conns.fetch_add(1, Ordering::AcqRel);
        if count >= INBOUND_CONNECTIONS_MAX {
            shared.inbound_conns.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(%remote, "too many inbound connections");
            continue;
        }
        let shared = Arc::clone(&shared);
        N::spawn(async move {
            let mut shutdown = shared.shutdown_tx.subscribe();
            tokio::select! {
                () = inbound(&shared, &conn, remote) => {}
                () = shut_down(&mut shutdown) => {}
            }
            drop(conn);
            shared.inbound_conns.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

async fn read_exact(conn: &impl Conn, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let mut filled = 0;
    while filled < len {
        let (read, back) = conn.read(buf, filled..len).await;
        buf = back;
        match read? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => filled += n,
        }
    }
    Ok(buf)
}

async fn write_bytes(conn: &impl Conn, bytes: &[u8]) -> io::Result<()> {
    conn.write_all(vec![Bytes::copy_from_slice(bytes)]).await
}

fn io_reason(error: &io::Error) -> HandshakeError {
    match error.kind() {
        io::ErrorKind::TimedOut => HandshakeError::Timeout,
        _ => HandshakeError::Io(error.to_string()),
    }
}

async fn read_hello(
    conn: &impl Conn,
    timeout: Duration,
) -> Result<[u8; HANDSHAKE_BYTES], HandshakeError> {
    let read = tokio::time::timeout(timeout, read_exact(conn, HANDSHAKE_BYTES)).await;
    let bytes = read
        .map_err(|_| HandshakeError::Timeout)?
        .map_err(|error| io_reason(&error))?;
    bytes
        .try_into()
        .map_err(|_| HandshakeError::Io("short handshake".into()))
}

async fn accept_handshake(shared: &Shared, conn: &impl Conn, remote: SocketAddr) -> Option<NodeId> {
    let timeout = shared.config.handshake_timeout;
    let hello = match read_hello(conn, timeout).await {
        Ok(hello) => hello,
        Err(reason) => {
            shared.refuse(remote, &reason);
            return None;
        }
    };
    match shared.accept_hello(remote, &hello) {
        Ok(from) => Some(from),
        Err(refusal) => {
            if let Some(refusal) = refusal {
                let _ = tokio::time::timeout(timeout, write_bytes(conn, &refusal)).await;
            }
            None
        }
    }
}

async fn inbound(shared: &Arc<Shared>, conn: &impl Conn, remote: SocketAddr) {
    let Some(from) = accept_handshake(shared, conn, remote).await else {
        return;
    };
    let Some(inbox) = shared.inbox() else {
        return;
    };
    let generation = shared.next_generation();
    let slot = shared.inbound_slot(from);
    *slot.lock().await = generation;
    shared.inbound_registered(from, generation, remote);
    let link = InboundConn {
        from,
        generation,
        acks: shared.new_ack_queue(),
    };
    // Replied only now: once the dialer knows it is accepted, the connection it replaces can
    // no longer deliver.
    let reply = shared.reply_to(from);
    let timeout = shared.config.handshake_timeout;
    if !matches!(
        tokio::time::timeout(timeout, write_bytes(conn, &reply)).await,
        Ok(Ok(()))
    ) {
        shared.inbound_ended(&link, &"handshake reply failed");
        return;
    }
    let in_flight = std::cell::Cell::new(0);
    let reason = tokio::select! {
        reason = read_inbound(shared, conn, &link, &slot, &inbox, remote) => reason,
        reason = write_loop(shared, conn, &link.acks, &in_flight, &|| false) => reason,
    };
    shared.inbound_ended(&link, &reason);
}

/// Reads into the buffer the decoder hands out (no copy); `Ok(0)` at end of stream.
async fn read_some(
    conn: &impl Conn,
    decoder: &mut FrameDecoder,
    idle: Duration,
) -> io::Result<usize> {
    let (buffer, target) = decoder.take_read();
    let read = tokio::time::timeout(idle, conn.read(buffer, target.range.clone())).await;
    // On a timeout or an error the buffer goes with the read; the connection closes anyway.
    let (result, buffer) = read.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?;
    let read = result?;
    decoder.restore_read(buffer, target, read);
    Ok(read)
}

async fn read_inbound(
    shared: &Shared,
    conn: &impl Conn,
    link: &InboundConn,
    slot: &tokio::sync::Mutex<u64>,
    inbox: &mpsc::Sender<Incoming>,
    remote: SocketAddr,
) -> String {
    let mut decoder = FrameDecoder::new(shared.config.frame_bytes_max);
    let mut ready = Vec::new();
    loop {
        match read_some(conn, &mut decoder, shared.config.idle_timeout).await {
            Ok(0) => return "closed by peer".into(),
            Ok(_) => {}
            Err(error) => return error.to_string(),
        }
        if let Err(reason) = shared.drain_inbound(link, remote, &mut decoder, &mut ready) {
            return reason;
        }
        // Deliver under the slot lock: a superseded connection never delivers after its
        // successor (see `Shared::inbound`).
        let current = slot.lock().await;
        if *current != link.generation {
            return "superseded by a newer connection".into();
        }
        if !shared.is_peer(link.from) {
            return "peer removed".into();
        }
        for item in ready.drain(..) {
            // Counted first, so that whoever receives the message also sees the count.
            shared.count_delivered();
            if inbox.send(item).await.is_err() {
                return "inbox closed".into();
            }
        }
    }
}

/// Drains `queue` into coalesced writes until it closes, `stop` says so, or a write fails.
/// `in_flight` holds the number of messages in the write under way, so that a cancelled
/// write is counted.
async fn write_loop(
    shared: &Shared,
    conn: &impl Conn,
    queue: &SendQueue,
    in_flight: &std::cell::Cell<usize>,
    stop: &dyn Fn() -> bool,
) -> String {
    let batch_max = shared.config.write_batch_bytes_max;
    let mut batch = Vec::new();
    let mut write = WriteBatch::default();
    loop {
        let wait = queue.wait(shared.config.keepalive_interval).await;
        if stop() {
            return "address changed".into();
        }
        match wait {
            Wait::Closed => return "queue closed".into(),
            Wait::Idle => write.push(FrameKind::Keepalive, 0, &Bytes::new()),
            Wait::Ready => {
                if !queue.take_batch(&mut batch, batch_max) {
                    return "queue closed".into();
                }
                write.push_all(&batch);
                in_flight.set(write.msgs());
            }
        }
        if let Err(error) = conn.write_all(write.take_parts()).await {
            return error.to_string();
        }
        in_flight.set(0);
        shared.count_sent(write.frames(), write.len());
        batch.clear();
        write.clear();
    }
}

async fn dial<N: Net>(
    shared: &Shared,
    peer: &Peer,
    addr: SocketAddr,
) -> Result<N::Conn, HandshakeError> {
    let conn = N::connect(addr).await.map_err(|error| io_reason(&error))?;
    write_bytes(&conn, &shared.hello_for(peer.id))
        .await
        .map_err(|error| io_reason(&error))?;
    let reply = read_hello(&conn, shared.config.handshake_timeout).await?;
    shared.check_reply(peer.id, &reply)?;
    Ok(conn)
}

async fn dial_loop<N: Net>(shared: Arc<Shared>, peer: Arc<Peer>) {
    let mut backoff = Backoff::new(&shared.config, peer.id);
    while !peer.is_removed() {
        // A redial request is served by this dial: it reads the current address.
        let _ = peer.take_redial();
        let addr = peer.addr();
        let timeout = shared.config.handshake_timeout;
        let dialed = tokio::time::timeout(timeout, dial::<N>(&shared, &peer, addr)).await;
        match dialed.unwrap_or(Err(HandshakeError::Timeout)) {
            Ok(conn) => {
                let since = tokio::time::Instant::now();
                shared.outbound_up(&peer);
                let in_flight = std::cell::Cell::new(0);
                let redial = || peer.take_redial();
                let reason = tokio::select! {
                    reason = write_loop(&shared, &conn, &peer.queue, &in_flight, &redial) => reason,
                    reason = read_outbound(&shared, &peer, &conn) => reason,
                };
                drop(conn);
                shared.outbound_down(&peer, in_flight.get(), &reason);
                backoff.reset_after(since.elapsed());
            }
            Err(reason) => {
                if matches!(
                    reason,
                    HandshakeError::Refused(_) | HandshakeError::WrongPeer { .. }
                ) {
                    tracing::warn!(peer = %peer.id, %addr, %reason, "handshake refused");
                }
                shared.dial_failed(&peer, addr, &reason);
            }
        }
        let delay = backoff.next_delay();
        let deadline = tokio::time::Instant::now() + delay;
        while tokio::time::Instant::now() < deadline && !peer.is_removed() {
            tokio::time::sleep(delay.min(DIALER_POLL)).await;
        }
    }
}

/// Longest sleep of a dialer between checks of whether its peer was removed.
const DIALER_POLL: Duration = Duration::from_millis(20);

async fn read_outbound(shared: &Shared, peer: &Peer, conn: &impl Conn) -> String {
    let mut decoder = FrameDecoder::new(shared.config.frame_bytes_max);
    loop {
        match read_some(conn, &mut decoder, shared.config.idle_timeout).await {
            Ok(0) => return "closed by peer".into(),
            Ok(_) => {}
            Err(error) => return error.to_string(),
        }
        if let Err(reason) = shared.drain_outbound(peer, &mut decoder) {
            return reason;
        }
    }
}
