//! The TCP transport on io_uring: every connection is a pair of tasks on the node's single
//! tokio-uring thread; no thread is ever blocked. The connection lifecycle is `conn.rs`,
//! shared with the thread backend; this file only says how bytes move on io_uring.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Once};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::{TcpListener, TcpStream};

use super::conn::{self, Conn, Net};
use super::metrics::MetricsSnapshot;
use super::queue::advance_parts;
use super::tcp::Shared;
use super::{
    Inbox, NodeId, SendError, SnapshotSender, SnapshotStreamError, Transport, TransportConfig,
    TransportError,
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
        let listener = UringListener::new(std_listener)?;
        let (tx, rx) = mpsc::channel(config.inbox_msgs_max);
        let shared = Arc::new(Shared::new(config, local_addr, tx));
        let peers_changed = Arc::new(Notify::new());
        conn::start::<Uring>(&shared, listener, &peers_changed);
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

impl Drop for UringTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A connection on io_uring. Shuts the socket down when dropped: tokio-uring keeps a socket
/// open while a cancelled operation on it is still in flight (a read timed out, a write to
/// a stalled peer), so dropping the stream alone may leave the connection up indefinitely.
struct UringConn(TcpStream);

impl Drop for UringConn {
    fn drop(&mut self) {
        // Completes the pending operations and sends FIN; errors (not connected) are moot.
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// Owns the listening socket and shuts it down when dropped, for the reason of [`UringConn`]
/// and one more: tokio-uring 0.5 frees the data of a cancelled operation (here the accept's
/// peer-address buffer) when its runtime is dropped, before the kernel has processed the
/// cancellation, so a peer that redials in that window makes the kernel write into freed
/// memory. That corrupted the heap of a node at shutdown (SIGABRT "corrupted double-linked
/// list" when the node thread exited; issue 10). A listener that is shut down completes its
/// pending accept at once with an error and accepts nothing more, so no accept is in flight
/// when the runtime goes.
struct UringListener {
    uring: TcpListener,
    /// The same socket (a duplicated descriptor), for `shutdown(2)`, which tokio-uring's
    /// listener does not offer.
    control: std::net::TcpListener,
}

impl UringListener {
    fn new(std_listener: std::net::TcpListener) -> io::Result<UringListener> {
        let control = std_listener.try_clone()?;
        Ok(UringListener {
            uring: TcpListener::from_std(std_listener),
            control,
        })
    }
}

impl Drop for UringListener {
    fn drop(&mut self) {
        // Errors (already shut down) are moot.
        let _ = socket2::SockRef::from(&self.control).shutdown(std::net::Shutdown::Both);
    }
}

impl Conn for UringConn {
    async fn read(&self, buffer: Vec<u8>, range: Range<usize>) -> (io::Result<usize>, Vec<u8>) {
        // Straight into the caller's buffer: the kernel writes where the frame will live.
        let (result, slice) = self.0.read(buffer.slice(range)).await;
        (result, slice.into_inner())
    }

    /// Every byte of `parts` with as few `writev` operations as the socket allows.
    async fn write_all(&self, mut parts: Vec<Bytes>) -> io::Result<()> {
        while !parts.is_empty() {
            let (written, returned) = self.0.writev(parts).await;
            parts = returned;
            match written? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => advance_parts(&mut parts, n),
            }
        }
        Ok(())
    }
}

/// The backend: tokio-uring, tasks on the node's own thread.
struct Uring;

impl Net for Uring {
    type Conn = UringConn;
    type Listener = UringListener;

    async fn connect(addr: SocketAddr) -> io::Result<UringConn> {
        let stream = UringConn(TcpStream::connect(addr).await?);
        let _ = stream.0.set_nodelay(true);
        Ok(stream)
    }

    async fn accept(listener: &UringListener) -> io::Result<(UringConn, SocketAddr)> {
        let (stream, remote) = listener.uring.accept().await?;
        let stream = UringConn(stream);
        let _ = stream.0.set_nodelay(true);
        Ok((stream, remote))
    }

    fn spawn(task: impl std::future::Future<Output = ()> + 'static) {
        tokio_uring::spawn(task);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
