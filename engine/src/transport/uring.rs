//! The TCP transport on io_uring: every connection is a pair of tasks on the node's single
//! tokio-uring thread; no thread is ever blocked. Same wire protocol and the same [`Shared`]
//! logic as the thread backend.

use std::cell::Cell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch, Notify};
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::{TcpListener, TcpStream};

use super::error::HandshakeError;
use super::frame::{FrameDecoder, FrameKind};
use super::handshake::HANDSHAKE_BYTES;
use super::metrics::MetricsSnapshot;
use super::queue::{advance_parts, SendQueue, Wait, WriteBatch};
use super::tcp::{Backoff, InboundConn, Peer, Shared, INBOUND_CONNECTIONS_MAX};
use super::{
    Inbox, Incoming, NodeId, SendError, SnapshotSender, SnapshotStreamError, Transport,
    TransportConfig, TransportError,
};

/// Which TCP backend this host supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpBackend {
    /// io_uring works: run the node on a tokio-uring runtime with [`UringTransport`].
    Uring,
    /// io_uring is unavailable (old kernel, seccomp, container policy): use
    /// [`super::ThreadTransport`].
    Thread,
}

impl TcpBackend {
    /// Tries to start a tokio-uring runtime; on failure warns once per process and returns
    /// [`TcpBackend::Thread`].
    #[must_use]
    pub fn detect() -> TcpBackend {
        static WARNED: Once = Once::new();
        match tokio_uring::Runtime::new(&tokio_uring::builder()) {
            Ok(_) => TcpBackend::Uring,
            Err(error) => {
                WARNED.call_once(|| {
                    tracing::warn!(%error, "io_uring unavailable; TCP transport falls back to std::net threads");
                });
                TcpBackend::Thread
            }
        }
    }
}

/// TCP transport on io_uring. See [`Transport`] for the guarantees.
///
/// The handle is `Send + Sync`; the connections run as tasks on the tokio-uring runtime that
/// [`UringTransport::start`] was called on, and end when it stops. Dropping the handle shuts
/// the endpoint down (as [`Transport::shutdown`]).
///
/// Drive the runtime by awaiting, never by spinning on `yield_now`: tokio-uring submits
/// queued socket operations only when its thread parks, so a task that keeps yielding
/// starves every connection on the thread.
#[derive(Debug)]
pub struct UringTransport {
    shared: Arc<Shared>,
    /// Wakes the supervisor task that starts dialers for new peers, so that `add_peer` may
    /// be called from any thread.
    peers_changed: Arc<Notify>,
}

impl UringTransport {
    /// Binds `listen` (port 0 picks a free port) and starts the endpoint's tasks.
    ///
    /// # Errors
    /// [`TransportError::Config`] for an invalid configuration, [`TransportError::Bind`] if
    /// the address cannot be bound.
    ///
    /// # Panics
    /// If called outside a tokio-uring runtime (a programmer error).
    pub fn start(
        config: TransportConfig,
        listen: SocketAddr,
    ) -> Result<(Self, Inbox), TransportError> {
        config.validate()?;
        let bind = |source| TransportError::Bind {
            addr: listen,
            source,
        };
        let std_listener = std::net::TcpListener::bind(listen).map_err(bind)?;
        let local_addr = std_listener.local_addr()?;
        let listener = Listener::new(std_listener)?;
        let (tx, rx) = mpsc::channel(config.inbox_msgs_max);
        let shared = Arc::new(Shared::new(config, local_addr, tx));
        let peers_changed = Arc::new(Notify::new());
        tokio_uring::spawn(accept_loop(Arc::clone(&shared), listener));
        tokio_uring::spawn(supervise(Arc::clone(&shared), Arc::clone(&peers_changed)));
        let transport = UringTransport {
            shared,
            peers_changed,
        };
        Ok((transport, Inbox::new(rx)))
    }

    /// The address the endpoint listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }
}

impl Transport for UringTransport {
    fn local_id(&self) -> NodeId {
        self.shared.config.node_id
    }

    fn send(&self, to: NodeId, payload: Bytes) -> Result<(), SendError> {
        self.shared.send(to, payload)
    }

    fn start_snapshot(
        &self,
        to: NodeId,
        header: Bytes,
    ) -> Result<SnapshotSender, SnapshotStreamError> {
        self.shared.start_snapshot(to, header)
    }

    fn add_peer(&self, id: NodeId, addr: SocketAddr) -> Result<(), TransportError> {
        if self.shared.add_peer(id, addr)?.is_some() {
            self.peers_changed.notify_one();
        }
        Ok(())
    }

    fn remove_peer(&self, id: NodeId) {
        self.shared.remove_peer(id);
    }

    fn take_unreachable(&self) -> Vec<NodeId> {
        self.shared.take_unreachable()
    }

    fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    fn shutdown(&self) {
        self.shared.shutdown();
    }
}

/// Owns a socket and shuts it down when dropped. tokio-uring keeps a socket open while a
/// cancelled operation on it is still in flight (a read timed out, a write to a stalled
/// peer), so dropping the stream alone may leave the connection up indefinitely.
struct Conn(TcpStream);

impl std::ops::Deref for Conn {
    type Target = TcpStream;
    fn deref(&self) -> &TcpStream {
        &self.0
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Completes the pending operations and sends FIN; errors (not connected) are moot.
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// Owns the listening socket and shuts it down when dropped, for the same reason as [`Conn`]
/// and one more: tokio-uring 0.5 frees the data of a cancelled operation (here the accept's
/// peer-address buffer) when its runtime is dropped, before the kernel has processed the
/// cancellation, so a peer that redials in that window makes the kernel write into freed
/// memory. That corrupted the heap of a node at shutdown (SIGABRT "corrupted double-linked
/// list" when the node thread exited; issue 10). A listener that is shut down completes its
/// pending accept at once with an error and accepts nothing more, so no accept is in flight
/// when the runtime goes.
struct Listener {
    uring: TcpListener,
    /// The same socket (a duplicated descriptor), for `shutdown(2)`, which tokio-uring's
    /// listener does not offer.
    control: std::net::TcpListener,
}

impl Listener {
    fn new(std_listener: std::net::TcpListener) -> io::Result<Listener> {
        let control = std_listener.try_clone()?;
        Ok(Listener {
            uring: TcpListener::from_std(std_listener),
            control,
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Errors (already shut down) are moot.
        let _ = socket2::SockRef::from(&self.control).shutdown(std::net::Shutdown::Both);
    }
}

impl Drop for UringTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn shut_down(rx: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens with the endpoint: stop too.
    let _ = rx.wait_for(|shut| *shut).await;
}

/// Starts a dialer task for every peer that has none.
async fn supervise(shared: Arc<Shared>, peers_changed: Arc<Notify>) {
    let mut shutdown = shared.shutdown_tx.subscribe();
    let mut dialing: HashMap<NodeId, Arc<Peer>> = HashMap::new();
    loop {
        dialing.retain(|_, peer| !peer.is_removed());
        for peer in shared.peers() {
            let running = dialing
                .get(&peer.id)
                .is_some_and(|known| Arc::ptr_eq(known, &peer));
            if !running {
                dialing.insert(peer.id, Arc::clone(&peer));
                tokio_uring::spawn(dial_loop(Arc::clone(&shared), peer));
            }
        }
        tokio::select! {
            () = peers_changed.notified() => {}
            () = shut_down(&mut shutdown) => return,
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: Listener) {
    let mut shutdown = shared.shutdown_tx.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = listener.uring.accept() => accepted,
            () = shut_down(&mut shutdown) => return,
        };
        let (stream, remote) = match accepted {
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
        tokio_uring::spawn(async move {
            let mut shutdown = shared.shutdown_tx.subscribe();
            let stream = Conn(stream);
            tokio::select! {
                () = inbound(&shared, &stream, remote) => {}
                () = shut_down(&mut shutdown) => {}
            }
            shared.inbound_conns.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

async fn read_exact(stream: &TcpStream, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let filled = buf.len();
        let (read, slice) = stream.read(buf.slice(filled..len)).await;
        buf = slice.into_inner();
        if read? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buf)
}

async fn write_all(stream: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes.to_vec()).await.0
}

fn io_reason(error: &io::Error) -> HandshakeError {
    match error.kind() {
        io::ErrorKind::TimedOut => HandshakeError::Timeout,
        _ => HandshakeError::Io(error.to_string()),
    }
}

async fn read_hello(
    stream: &TcpStream,
    timeout: Duration,
) -> Result<[u8; HANDSHAKE_BYTES], HandshakeError> {
    let read = tokio::time::timeout(timeout, read_exact(stream, HANDSHAKE_BYTES)).await;
    let bytes = read
        .map_err(|_| HandshakeError::Timeout)?
        .map_err(|error| io_reason(&error))?;
    bytes
        .try_into()
        .map_err(|_| HandshakeError::Io("short handshake".into()))
}

async fn accept_handshake(
    shared: &Shared,
    stream: &TcpStream,
    remote: SocketAddr,
) -> Option<NodeId> {
    let timeout = shared.config.handshake_timeout;
    let hello = match read_hello(stream, timeout).await {
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
                let _ = tokio::time::timeout(timeout, write_all(stream, &refusal)).await;
            }
            None
        }
    }
}

async fn inbound(shared: &Arc<Shared>, stream: &TcpStream, remote: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let Some(from) = accept_handshake(shared, stream, remote).await else {
        return;
    };
    let Some(inbox) = shared.inbox() else {
        return;
    };
    let generation = shared.next_generation();
    let slot = shared.inbound_slot(from);
    *slot.lock().await = generation;
    shared.inbound_registered(from, generation, remote);
    let conn = InboundConn {
        from,
        generation,
        acks: shared.new_ack_queue(),
    };
    // Replied only now: once the dialer knows it is accepted, the connection it replaces can
    // no longer deliver.
    let reply = shared.reply_to(from);
    let timeout = shared.config.handshake_timeout;
    if !matches!(
        tokio::time::timeout(timeout, write_all(stream, &reply)).await,
        Ok(Ok(()))
    ) {
        shared.inbound_ended(&conn, &"handshake reply failed");
        return;
    }
    let in_flight = Cell::new(0);
    let reason = tokio::select! {
        reason = read_inbound(shared, stream, &conn, &slot, &inbox, remote) => reason,
        reason = write_loop(shared, stream, &conn.acks, &in_flight, &|| false) => reason,
    };
    shared.inbound_ended(&conn, &reason);
}

/// Reads into the buffer the decoder hands out (no copy); `Ok(0)` at end of stream.
async fn read_some(
    stream: &TcpStream,
    decoder: &mut FrameDecoder,
    idle: Duration,
) -> io::Result<usize> {
    let (buffer, target) = decoder.take_read();
    let read = tokio::time::timeout(idle, stream.read(buffer.slice(target.range.clone()))).await;
    // On a timeout or an error the buffer goes with the read; the connection closes anyway.
    let (result, slice) = read.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?;
    let read = result?;
    decoder.restore_read(slice.into_inner(), target, read);
    Ok(read)
}

async fn read_inbound(
    shared: &Shared,
    stream: &TcpStream,
    conn: &InboundConn,
    slot: &tokio::sync::Mutex<u64>,
    inbox: &mpsc::Sender<Incoming>,
    remote: SocketAddr,
) -> String {
    let mut decoder = FrameDecoder::new(shared.config.frame_bytes_max);
    let mut ready = Vec::new();
    loop {
        match read_some(stream, &mut decoder, shared.config.idle_timeout).await {
            Ok(0) => return "closed by peer".into(),
            Ok(_) => {}
            Err(error) => return error.to_string(),
        }
        if let Err(reason) = shared.drain_inbound(conn, remote, &mut decoder, &mut ready) {
            return reason;
        }
        // Deliver under the slot lock: a superseded connection never delivers after its
        // successor (see `Shared::inbound`).
        let current = slot.lock().await;
        if *current != conn.generation {
            return "superseded by a newer connection".into();
        }
        if !shared.is_peer(conn.from) {
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

/// Drains `queue` into coalesced writes until it closes or a write fails. `in_flight` holds
/// the number of messages in the write under way, so that a cancelled write is counted.
async fn write_loop(
    shared: &Shared,
    stream: &TcpStream,
    queue: &SendQueue,
    in_flight: &Cell<usize>,
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
        if let Err(error) = writev_all(stream, write.take_parts()).await {
            return error.to_string();
        }
        in_flight.set(0);
        shared.count_sent(write.frames(), write.len());
        batch.clear();
        write.clear();
    }
}

/// Writes every byte of `parts` with as few `writev` operations as the socket allows.
async fn writev_all(stream: &TcpStream, mut parts: Vec<Bytes>) -> io::Result<()> {
    while !parts.is_empty() {
        let (written, returned) = stream.writev(parts).await;
        parts = returned;
        match written? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => advance_parts(&mut parts, n),
        }
    }
    Ok(())
}

async fn dial(shared: &Shared, peer: &Peer, addr: SocketAddr) -> Result<Conn, HandshakeError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|error| io_reason(&error))?;
    let stream = Conn(stream);
    let _ = stream.set_nodelay(true);
    write_all(&stream, &shared.hello_for(peer.id))
        .await
        .map_err(|error| io_reason(&error))?;
    let reply = read_hello(&stream, shared.config.handshake_timeout).await?;
    shared.check_reply(peer.id, &reply)?;
    Ok(stream)
}

async fn dial_loop(shared: Arc<Shared>, peer: Arc<Peer>) {
    let mut backoff = Backoff::new(&shared.config, peer.id);
    while !peer.is_removed() {
        // A redial request is served by this dial: it reads the current address.
        let _ = peer.take_redial();
        let addr = peer.addr();
        let dialed =
            tokio::time::timeout(shared.config.handshake_timeout, dial(&shared, &peer, addr)).await;
        match dialed.unwrap_or(Err(HandshakeError::Timeout)) {
            Ok(stream) => {
                let since = tokio::time::Instant::now();
                shared.outbound_up(&peer);
                let in_flight = Cell::new(0);
                let redial = || peer.take_redial();
                let reason = tokio::select! {
                    reason = write_loop(&shared, &stream, &peer.queue, &in_flight, &redial) => reason,
                    reason = read_outbound(&shared, &peer, &stream) => reason,
                };
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
            tokio::time::sleep(delay.min(Duration::from_millis(20))).await;
        }
    }
}

async fn read_outbound(shared: &Shared, peer: &Peer, stream: &TcpStream) -> String {
    let mut decoder = FrameDecoder::new(shared.config.frame_bytes_max);
    loop {
        match read_some(stream, &mut decoder, shared.config.idle_timeout).await {
            Ok(0) => return "closed by peer".into(),
            Ok(_) => {}
            Err(error) => return error.to_string(),
        }
        if let Err(reason) = shared.drain_outbound(peer, &mut decoder) {
            return reason;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The accept of a stopped endpoint must not stay in flight (issue 10: tokio-uring frees
    /// a cancelled accept's address buffer when its runtime is dropped, before the kernel has
    /// cancelled the accept, and a peer that redialled then corrupted the heap). Observable
    /// from outside: once the accept task has ended, the listening port refuses connections
    /// while the runtime still runs; a listener kept open by the cancelled accept took them.
    #[test]
    fn a_stopped_endpoint_refuses_connections_before_its_runtime_ends() {
        if TcpBackend::detect() != TcpBackend::Uring {
            eprintln!("SKIPPED: io_uring is unavailable");
            return;
        }
        tokio_uring::start(async {
            let any = SocketAddr::from(([127, 0, 0, 1], 0));
            let (t, _inbox) =
                UringTransport::start(TransportConfig::new(7, NodeId(1)), any).expect("start");
            let addr = t.local_addr();
            // Parking submits the accept: it is in flight when the shutdown comes.
            tokio::time::sleep(Duration::from_millis(10)).await;
            t.shutdown();
            // The accept task was woken by the shutdown signal: it runs (and ends) before
            // this timer fires.
            tokio::time::sleep(Duration::from_millis(10)).await;
            let refused = std::net::TcpStream::connect(addr).is_err();
            assert!(refused, "{addr} still takes connections after shutdown");
        });
    }
}
