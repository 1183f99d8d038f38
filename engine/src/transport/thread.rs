//! The TCP transport for hosts without io_uring: the same connection lifecycle as the
//! io_uring backend (`conn.rs`), run on one thread of the endpoint's own with a
//! current-thread tokio runtime, where bytes move by readiness (epoll) and `read`/`writev`.
//! Its own thread, so that it works whatever runtime (or none) the caller has.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

use super::conn::{self, Conn, Net};
use super::frame::READ_CHUNK_BYTES;
use super::metrics::MetricsSnapshot;
use super::queue::advance_parts;
use super::tcp::{lock, Shared};
use super::{
    Inbox, NodeId, SendError, SnapshotSender, SnapshotStreamError, Transport, TransportConfig,
    TransportError,
};

/// TCP transport on tokio's epoll reactor, on a thread of its own. See [`Transport`] for the
/// guarantees.
///
/// Dropping the handle shuts the endpoint down (as [`Transport::shutdown`]).
#[derive(Debug)]
pub struct ThreadTransport {
    shared: Arc<Shared>,
    peers_changed: Arc<Notify>,
    /// The endpoint's thread; joined at shutdown, so that its sockets are closed by then.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl ThreadTransport {
    /// Binds `listen` (port 0 picks a free port) and starts the endpoint's thread.
    ///
    /// # Errors
    /// [`TransportError::Config`] for an invalid configuration, [`TransportError::Bind`] if
    /// the address cannot be bound, [`TransportError::Io`] if the thread or its runtime
    /// cannot start.
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
        std_listener.set_nonblocking(true)?;
        let local_addr = std_listener.local_addr()?;
        let (tx, rx) = mpsc::channel(config.inbox_msgs_max);
        let name = format!("ringraft-net-{}", config.node_id);
        let shared = Arc::new(Shared::new(config, local_addr, tx));
        let peers_changed = Arc::new(Notify::new());
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let (thread_shared, notify) = (Arc::clone(&shared), Arc::clone(&peers_changed));
        let thread = thread::Builder::new().name(name).spawn(move || {
            run(&thread_shared, std_listener, &notify, &started_tx);
        })?;
        let started = started_rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("transport thread died at start")));
        if let Err(error) = started {
            let _ = thread.join();
            return Err(error.into());
        }
        let transport = ThreadTransport {
            shared,
            peers_changed,
            thread: Mutex::new(Some(thread)),
        };
        Ok((transport, Inbox::new(rx)))
    }

    /// The address the endpoint listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }
}

/// The endpoint's thread: its runtime runs every connection until shutdown.
fn run(
    shared: &Arc<Shared>,
    std_listener: std::net::TcpListener,
    peers_changed: &Arc<Notify>,
    started: &std::sync::mpsc::SyncSender<io::Result<()>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = started.send(Err(error));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let listener = match TcpListener::from_std(std_listener) {
            Ok(listener) => listener,
            Err(error) => {
                let _ = started.send(Err(error));
                return;
            }
        };
        conn::start::<Epoll>(shared, listener, peers_changed);
        let _ = started.send(Ok(()));
        let mut shutdown = shared.shutdown_tx.subscribe();
        conn::shut_down(&mut shutdown).await;
    });
    // Dropping the tasks (with the local set) closes every socket.
    drop(local);
}

impl Transport for ThreadTransport {
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
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ThreadTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A connection on tokio's reactor.
struct EpollConn(TcpStream);

impl Conn for EpollConn {
    async fn read(&self, mut buffer: Vec<u8>, range: Range<usize>) -> (io::Result<usize>, Vec<u8>) {
        // `read` wants initialised memory: a buffer shorter than the range (a large frame's,
        // see `FrameDecoder`) is zeroed up to one read chunk at a time, never its whole rest.
        let range = range.start..range.end.min(range.start + READ_CHUNK_BYTES);
        let len = buffer.len();
        if len < range.end {
            buffer.resize(range.end, 0);
        }
        let result = loop {
            if let Err(error) = self.0.readable().await {
                break Err(error);
            }
            match self.0.try_read(&mut buffer[range.clone()]) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                result => break result,
            }
        };
        if len < range.end {
            let read = *result.as_ref().unwrap_or(&0);
            buffer.truncate(len.max(range.start + read));
        }
        (result, buffer)
    }

    async fn write_all(&self, mut parts: Vec<Bytes>) -> io::Result<()> {
        while !parts.is_empty() {
            self.0.writable().await?;
            let slices: Vec<IoSlice<'_>> = parts.iter().map(|part| IoSlice::new(part)).collect();
            match self.0.try_write_vectored(&slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => advance_parts(&mut parts, n),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

/// The backend: tokio's reactor, tasks on the endpoint thread's local set.
struct Epoll;

impl Net for Epoll {
    type Conn = EpollConn;
    type Listener = TcpListener;

    async fn connect(addr: SocketAddr) -> io::Result<EpollConn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(EpollConn(stream))
    }

    async fn accept(listener: &TcpListener) -> io::Result<(EpollConn, SocketAddr)> {
        let (stream, remote) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok((EpollConn(stream), remote))
    }

    fn spawn(task: impl std::future::Future<Output = ()> + 'static) {
        tokio::task::spawn_local(task);
    }
}
