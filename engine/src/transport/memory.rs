//! The in-memory transport: endpoints of one [`MemoryNetwork`] hand messages straight to each
//! other's bounded inbox. For tests and in-process benchmarks; links can be cut on command.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::metrics::{Metrics, MetricsSnapshot};
use super::snapshot::{AckPath, ChunkSink, OutStream, SnapshotReceiver, SnapshotSender};
use super::{
    Inbox, Incoming, NodeId, SendError, SnapshotStreamError, StartedTransport, Transport,
    TransportConfig, TransportError, TransportFactory,
};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug)]
struct Slot {
    inbox: mpsc::Sender<Incoming>,
    metrics: Arc<Metrics>,
    peers: Arc<Mutex<BTreeSet<NodeId>>>,
}

#[derive(Debug, Default)]
struct Net {
    nodes: Mutex<HashMap<NodeId, Slot>>,
    /// Directed links that drop everything: (from, to).
    cut: Mutex<HashSet<(NodeId, NodeId)>>,
    /// Directed links that silently lose their next n messages.
    lose: Mutex<HashMap<(NodeId, NodeId), u64>>,
    next_stream: AtomicU64,
}

/// A simulated network joining [`MemoryTransport`] endpoints. Cloning shares the network.
#[derive(Clone, Debug, Default)]
pub struct MemoryNetwork {
    net: Arc<Net>,
}

impl MemoryNetwork {
    /// An empty network.
    #[must_use]
    pub fn new() -> Self {
        MemoryNetwork::default()
    }

    /// Starts the endpoint of `config.node_id`.
    ///
    /// # Errors
    /// [`TransportError::Config`] if the configuration is invalid, or
    /// [`TransportError::InvalidPeer`] if that node already has an endpoint.
    pub fn endpoint(
        &self,
        config: TransportConfig,
    ) -> Result<(MemoryTransport, Inbox), TransportError> {
        config.validate()?;
        let (tx, rx) = mpsc::channel(config.inbox_msgs_max);
        let metrics = Arc::new(Metrics::default());
        let peers = Arc::new(Mutex::new(BTreeSet::new()));
        let mut nodes = lock(&self.net.nodes);
        if nodes.contains_key(&config.node_id) {
            return Err(TransportError::InvalidPeer(config.node_id));
        }
        nodes.insert(
            config.node_id,
            Slot {
                inbox: tx,
                metrics: Arc::clone(&metrics),
                peers: Arc::clone(&peers),
            },
        );
        let transport = MemoryTransport {
            net: Arc::clone(&self.net),
            config,
            metrics,
            peers,
            unreachable: Mutex::new(BTreeSet::new()),
            shut: AtomicBool::new(false),
        };
        Ok((transport, Inbox::new(rx)))
    }

    /// Drops everything `from` sends to `to` until healed (one direction).
    pub fn cut_one_way(&self, from: NodeId, to: NodeId) {
        lock(&self.net.cut).insert((from, to));
    }

    /// Cuts the link between `a` and `b` in both directions.
    pub fn cut(&self, a: NodeId, b: NodeId) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// Cuts every link of `node`.
    pub fn isolate(&self, node: NodeId) {
        let ids: Vec<NodeId> = lock(&self.net.nodes).keys().copied().collect();
        for other in ids.into_iter().filter(|&id| id != node) {
            self.cut(node, other);
        }
    }

    /// Silently loses the next `count` messages `from` sends to `to` (the sender sees `Ok`,
    /// as with a packet lost on the wire; counted in its `drops_link`).
    pub fn lose_next(&self, from: NodeId, to: NodeId, count: u64) {
        *lock(&self.net.lose).entry((from, to)).or_default() += count;
    }

    /// Restores the link between `a` and `b` in both directions.
    pub fn heal(&self, a: NodeId, b: NodeId) {
        let mut cut = lock(&self.net.cut);
        cut.remove(&(a, b));
        cut.remove(&(b, a));
    }

    /// Restores every link and cancels pending [`MemoryNetwork::lose_next`] losses.
    pub fn heal_all(&self) {
        lock(&self.net.cut).clear();
        lock(&self.net.lose).clear();
    }
}

/// One node's endpoint on a [`MemoryNetwork`].
///
/// Same guarantees as every [`Transport`]; the per-peer send queue is the receiver's inbox
/// itself (`inbox_msgs_max`), so a stalled receiver makes its senders drop and count.
/// Cutting a link affects messages and streams started after the cut.
#[derive(Debug)]
pub struct MemoryTransport {
    net: Arc<Net>,
    config: TransportConfig,
    metrics: Arc<Metrics>,
    peers: Arc<Mutex<BTreeSet<NodeId>>>,
    unreachable: Mutex<BTreeSet<NodeId>>,
    shut: AtomicBool,
}

impl MemoryTransport {
    fn id(&self) -> NodeId {
        self.config.node_id
    }

    /// The target's inbox and metrics, if `to` is a peer, the link is up, and `to` knows us.
    fn route(&self, to: NodeId) -> Result<(mpsc::Sender<Incoming>, Arc<Metrics>), SendError> {
        if !lock(&self.peers).contains(&to) {
            return Err(SendError::UnknownPeer(to));
        }
        let down = || {
            Metrics::inc(&self.metrics.drops_link);
            lock(&self.unreachable).insert(to);
            SendError::LinkDown(to)
        };
        if self.shut.load(Ordering::Acquire) || lock(&self.net.cut).contains(&(self.id(), to)) {
            return Err(down());
        }
        let nodes = lock(&self.net.nodes);
        match nodes.get(&to) {
            // A receiver refuses nodes it does not know, as the TCP handshake does.
            Some(slot) if lock(&slot.peers).contains(&self.id()) => {
                Ok((slot.inbox.clone(), Arc::clone(&slot.metrics)))
            }
            _ => {
                drop(nodes);
                Err(down())
            }
        }
    }
}

impl Transport for MemoryTransport {
    fn local_id(&self) -> NodeId {
        self.id()
    }

    fn send(&self, to: NodeId, payload: Bytes) -> Result<(), SendError> {
        if payload.len() > self.config.frame_bytes_max as usize {
            return Err(SendError::TooLarge {
                len: payload.len(),
                max: self.config.frame_bytes_max,
            });
        }
        let (inbox, theirs) = self.route(to)?;
        if let Some(left) = lock(&self.net.lose).get_mut(&(self.id(), to)) {
            if *left > 0 {
                *left -= 1;
                Metrics::inc(&self.metrics.drops_link);
                return Ok(());
            }
        }
        let len = payload.len() as u64;
        let from = self.id();
        match inbox.try_send(Incoming::Message { from, payload }) {
            Ok(()) => {
                Metrics::inc(&self.metrics.msgs_queued);
                Metrics::inc(&self.metrics.frames_sent);
                Metrics::add(&self.metrics.bytes_sent, len);
                Metrics::inc(&theirs.frames_received);
                Metrics::add(&theirs.bytes_received, len);
                Metrics::inc(&theirs.msgs_delivered);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                Metrics::inc(&self.metrics.drops_queue_full);
                Err(SendError::QueueFull(to))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Metrics::inc(&self.metrics.drops_link);
                lock(&self.unreachable).insert(to);
                Err(SendError::LinkDown(to))
            }
        }
    }

    fn start_snapshot(
        &self,
        to: NodeId,
        header: Bytes,
    ) -> Result<SnapshotSender, SnapshotStreamError> {
        let (inbox, theirs) = self.route(to).map_err(|err| match err {
            SendError::UnknownPeer(id) => SnapshotStreamError::UnknownPeer(id),
            _ => SnapshotStreamError::Unreachable(to),
        })?;
        let window = self.config.snapshot_chunks_inflight_max;
        let stream = self.net.next_stream.fetch_add(1, Ordering::Relaxed) + 1;
        let state = Arc::new(OutStream::new(window));
        let (tx, rx) = mpsc::channel(window as usize);
        let ack = AckPath::Memory(Arc::clone(&state));
        let receiver = SnapshotReceiver::new(self.id(), stream, header, rx, ack, theirs);
        inbox
            .try_send(Incoming::Snapshot(receiver))
            .map_err(|_| SnapshotStreamError::Unreachable(to))?;
        let sink = ChunkSink::Memory(tx);
        let max = self.config.frame_bytes_max;
        Ok(SnapshotSender::new(to, stream, state, sink, window, max))
    }

    fn add_peer(&self, id: NodeId, _addr: SocketAddr) -> Result<(), TransportError> {
        if id.0 == 0 || id == self.id() {
            return Err(TransportError::InvalidPeer(id));
        }
        if self.shut.load(Ordering::Acquire) {
            return Err(TransportError::Shutdown);
        }
        lock(&self.peers).insert(id);
        Ok(())
    }

    fn remove_peer(&self, id: NodeId) {
        lock(&self.peers).remove(&id);
    }

    fn take_unreachable(&self) -> Vec<NodeId> {
        std::mem::take(&mut *lock(&self.unreachable))
            .into_iter()
            .collect()
    }

    fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    fn shutdown(&self) {
        self.shut.store(true, Ordering::Release);
        lock(&self.net.nodes).remove(&self.id());
    }
}

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Nodes of one process run over the network: each node's endpoint is started on its own
/// thread with its own configuration; `listen` is only the address it reports (nothing
/// listens, peers are found by node id).
impl TransportFactory for MemoryNetwork {
    fn start(
        &self,
        config: TransportConfig,
        listen: SocketAddr,
    ) -> Result<StartedTransport, TransportError> {
        let (transport, inbox) = self.endpoint(config)?;
        Ok(StartedTransport::new(Box::new(transport), inbox, listen))
    }
}
