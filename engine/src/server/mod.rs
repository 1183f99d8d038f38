//! The `ringraft` server: a Redis-compatible (RESP2, and RESP3 after `HELLO 3`) front end
//! on a node running the [`KvStateMachine`], as served by `ringraft serve` and
//! `ringraft cluster`. See docs/server.md for the commands and the choices behind them.
//!
//! - `conn`: one task per connection: read, parse every complete request of the read,
//!   execute them as a pipeline, write the replies in request order;
//! - `command`: requests parsed into typed operations; `exec`: a pipeline executed (the writes
//!   of a run proposed as one log entry, the reads of a run served by one read barrier);
//! - `forward`: writes that reach a follower, forwarded to the leader's client port;
//! - `info`: `INFO` and `RAFT.STATUS`; `admin`: the `RAFT.*` membership and snapshot commands;
//! - `metrics_http`: the Prometheus text endpoint.
//!
//! ```no_run
//! # async fn doc() -> Result<(), Box<dyn std::error::Error>> {
//! use ringraft::kv::KvStateMachine;
//! use ringraft::node::{Node, NodeConfig};
//! use ringraft::raft::NodeId;
//! use ringraft::server::{Server, ServerConfig};
//!
//! let node = Node::start(NodeConfig::new(7, NodeId(1), "/tmp/n1"), KvStateMachine::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:6379").await?;
//! let server = Server::start(listener, ServerConfig::default(), node.handle())?;
//! // redis-cli -p 6379 set k v
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod command;
mod command_table;
mod conn;
mod elections;
mod exec;
mod forward;
mod info;
mod metrics_http;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::kv::KvStateMachine;
use crate::node::NodeHandle;
use crate::raft::{NodeId, ReadMode};

use self::forward::Forwarder;

/// Default bound on open client connections: each holds at most about
/// [`crate::kv::resp::REQUEST_BYTES_MAX`] of request and [`REPLY_BYTES_FLUSH`] plus one
/// value of reply buffers.
pub const CONNECTIONS_MAX_DEFAULT: usize = 4096;
/// Most requests taken from one connection's buffer per round: the bound on the pipeline
/// depth served at once (further requests wait in the socket buffer: backpressure).
pub const PIPELINE_REQUESTS_MAX: usize = 1024;
/// Replies buffered past this many bytes are written out before the rest of the pipeline runs,
/// and a run of reads stops there: the bound on a connection's reply buffer.
pub const REPLY_BYTES_FLUSH: usize = 1 << 20;

/// Configuration of a [`Server`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Read mode of new connections (`RAFT.READMODE` changes it per connection).
    pub read_mode: ReadMode,
    /// Forward writes that reach a follower to the leader (the default); when false, answer
    /// them with `-MOVED 0 <leader client address>`. `RAFT.NOFORWARD on` sets it per
    /// connection.
    pub forward: bool,
    /// Bound on open client connections; one more is answered with an error and closed.
    pub connections_max: usize,
    /// Client (RESP) addresses of the other nodes, for forwarding and `-MOVED`.
    pub peer_clients: BTreeMap<NodeId, SocketAddr>,
    /// Identifier of the cluster (reported by `INFO`).
    pub cluster_id: u64,
    /// Where to serve Prometheus text metrics (GET /metrics), if anywhere.
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            read_mode: ReadMode::Lease,
            forward: true,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            peer_clients: BTreeMap::new(),
            cluster_id: 0,
            metrics_addr: None,
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A listener could not be set up.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// `connections_max` is 0.
    #[error("connections_max must be > 0")]
    NoConnections,
}

/// Counters of the RESP front end (reported by `INFO stats` and /metrics).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) connections_total: AtomicU64,
    pub(crate) connections_rejected: AtomicU64,
    pub(crate) commands: AtomicU64,
    /// Reads served with [`ReadMode::Lease`] asked (the leader serves them from its lease
    /// while it holds one, by ReadIndex otherwise; a follower always uses ReadIndex).
    pub(crate) reads_lease: AtomicU64,
    /// Reads served with [`ReadMode::ReadIndex`] asked.
    pub(crate) reads_read_index: AtomicU64,
    pub(crate) writes_proposed: AtomicU64,
    pub(crate) writes_forwarded: AtomicU64,
    pub(crate) replies_moved: AtomicU64,
    pub(crate) replies_tryagain: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
}

impl Stats {
    pub(crate) fn inc(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// What every connection task shares.
pub(crate) struct Ctx {
    pub(crate) handle: NodeHandle<KvStateMachine>,
    pub(crate) config: ServerConfig,
    /// Client addresses of the nodes; `RAFT.ADDVOTER` with a client address adds one.
    pub(crate) clients: RwLock<BTreeMap<NodeId, SocketAddr>>,
    pub(crate) stats: Stats,
    pub(crate) forwarder: Forwarder,
    pub(crate) local_addr: SocketAddr,
    pub(crate) connections: Arc<Semaphore>,
    pub(crate) started: std::time::Instant,
    pub(crate) elections: elections::ElectionStats,
}

impl Ctx {
    /// The client address of `id`, if known.
    pub(crate) fn client_addr(&self, id: NodeId) -> Option<SocketAddr> {
        if id == self.handle.id() {
            return Some(self.local_addr);
        }
        self.clients
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .copied()
    }
}

/// A running server: accepts connections until [`Server::shutdown`] (or drop).
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Server {
    /// Serves RESP on `listener` for the node behind `handle`, and metrics on
    /// `config.metrics_addr`. Must be called inside a tokio runtime with I/O enabled: the
    /// accept loops and the connections are tasks on it.
    ///
    /// # Errors
    /// [`ServerError`] if the metrics listener cannot bind or the configuration is invalid.
    pub fn start(
        listener: TcpListener,
        config: ServerConfig,
        handle: NodeHandle<KvStateMachine>,
    ) -> Result<Server, ServerError> {
        if config.connections_max == 0 {
            return Err(ServerError::NoConnections);
        }
        let local_addr = listener.local_addr()?;
        let metrics_listener = match config.metrics_addr {
            Some(a) => {
                let l = std::net::TcpListener::bind(a)?;
                l.set_nonblocking(true)?;
                Some(TcpListener::from_std(l)?)
            }
            None => None,
        };
        let metrics_addr = metrics_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let ctx = Arc::new(Ctx {
            handle,
            clients: RwLock::new(config.peer_clients.clone()),
            connections: Arc::new(Semaphore::new(config.connections_max)),
            config,
            stats: Stats::default(),
            forwarder: Forwarder::default(),
            local_addr,
            started: std::time::Instant::now(),
            elections: elections::ElectionStats::default(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(conn::accept_loop(
            listener,
            Arc::clone(&ctx),
            stop_rx.clone(),
        ));
        tasks.spawn(elections::watch(Arc::clone(&ctx), stop_rx.clone()));
        if let Some(l) = metrics_listener {
            tasks.spawn(metrics_http::serve(l, ctx, stop_rx));
        }
        Ok(Server {
            local_addr,
            metrics_addr,
            stop,
            tasks,
        })
    }

    /// The RESP address (resolves port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The metrics address, if serving metrics.
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Stops accepting, closes every connection (a request in flight gets no reply), and
    /// waits for the tasks.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        while self.tasks.join_next().await.is_some() {}
    }
}
