//! State and protocol logic shared by the two TCP backends ([`super::UringTransport`] and
//! [`super::ThreadTransport`]). The backends only move bytes, wait and spawn; every decision
//! about frames, handshakes, peers and streams is made here, once.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::error::{FrameError, HandshakeError, SendError, SnapshotStreamError, TransportError};
use super::frame::{Frame, FrameDecoder, FrameKind};
use super::handshake::{self, Hello, HANDSHAKE_BYTES};
use super::metrics::Metrics;
use super::queue::{PushError, SendQueue};
use super::snapshot::{
    AckPath, ChunkEvent, ChunkSink, InStreams, OutStream, OutStreams, SnapshotReceiver,
    SnapshotSender,
};
use super::{Incoming, NodeId, TransportConfig};

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Inbound connections (handshaking or established) accepted at once; more are closed at
/// accept. Two per peer (a replaced connection lingers until it notices) plus garbage.
pub(super) const INBOUND_CONNECTIONS_MAX: usize = 256;

/// One peer's outbound side: its queue, its snapshot streams, where to dial it.
#[derive(Debug)]
pub(super) struct Peer {
    pub(super) id: NodeId,
    addr: Mutex<SocketAddr>,
    pub(super) queue: Arc<SendQueue>,
    pub(super) streams: Arc<OutStreams>,
    connected: AtomicBool,
    ever_connected: AtomicBool,
    /// Set when the address changed: the current connection ends and the dialer redials.
    redial: AtomicBool,
}

impl Peer {
    pub(super) fn addr(&self) -> SocketAddr {
        *lock(&self.addr)
    }

    /// Whether the connection must end because the address changed (clears the request).
    pub(super) fn take_redial(&self) -> bool {
        self.redial.swap(false, Ordering::AcqRel)
    }

    /// Whether the dialer must stop (peer removed or transport shut down).
    pub(super) fn is_removed(&self) -> bool {
        self.queue.is_closed()
    }
}

/// An established inbound connection.
#[derive(Debug)]
pub(super) struct InboundConn {
    pub(super) from: NodeId,
    /// Invariant: unique per endpoint and increasing; a newer connection from the same peer
    /// supersedes this one.
    pub(super) generation: u64,
    /// Acknowledgements and aborts back to the dialer.
    pub(super) acks: Arc<SendQueue>,
}

/// Reconnect delays: exponential from `min` to `max`, each drawn in `[d/2, d]` so that the
/// nodes of a restarted cluster do not dial in lockstep.
#[derive(Debug)]
pub(super) struct Backoff {
    current: Duration,
    min: Duration,
    max: Duration,
    rng: u64,
}

impl Backoff {
    pub(super) fn new(config: &TransportConfig, peer: NodeId) -> Self {
        Backoff {
            current: config.reconnect_backoff_min,
            min: config.reconnect_backoff_min,
            max: config.reconnect_backoff_max,
            // splitmix-style mixing of seed and peer so peers do not share a sequence.
            rng: (config.seed ^ peer.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1,
        }
    }

    /// Back to the shortest delay, if the connection that just ended had lived at least the
    /// longest delay: a peer that accepts and then drops every connection at once does not
    /// get redialed at the shortest delay forever.
    pub(super) fn reset_after(&mut self, lived: Duration) {
        if lived >= self.max {
            self.current = self.min;
        }
    }

    pub(super) fn next_delay(&mut self) -> Duration {
        // xorshift64: deterministic from the seed, no ambient randomness.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let full = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = full / 2;
        let span = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_nanos(self.rng % span)
    }
}

/// Shared state of one TCP endpoint.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) config: TransportConfig,
    pub(super) metrics: Arc<Metrics>,
    pub(super) local_addr: SocketAddr,
    peers: Mutex<HashMap<NodeId, Arc<Peer>>>,
    inbox: Mutex<Option<mpsc::Sender<Incoming>>>,
    in_streams: InStreams,
    /// Per peer, the generation of the inbound connection allowed to deliver. Readers hold
    /// the lock while delivering, so a superseded connection can never deliver after the
    /// one that replaced it (the ordering guarantee of [`super::Transport`]).
    inbound: Mutex<HashMap<NodeId, Arc<tokio::sync::Mutex<u64>>>>,
    next_generation: AtomicU64,
    next_stream: AtomicU64,
    unreachable: Mutex<BTreeSet<NodeId>>,
    pub(super) inbound_conns: AtomicUsize,
    shut: AtomicBool,
    /// Set once on shutdown; async tasks wait on it.
    pub(super) shutdown_tx: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub(super) fn new(
        config: TransportConfig,
        local_addr: SocketAddr,
        inbox: mpsc::Sender<Incoming>,
    ) -> Self {
        Shared {
            config,
            metrics: Arc::new(Metrics::default()),
            local_addr,
            peers: Mutex::new(HashMap::new()),
            inbox: Mutex::new(Some(inbox)),
            in_streams: InStreams::default(),
            inbound: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(1),
            next_stream: AtomicU64::new(1),
            unreachable: Mutex::new(BTreeSet::new()),
            inbound_conns: AtomicUsize::new(0),
            shut: AtomicBool::new(false),
            shutdown_tx: tokio::sync::watch::channel(false).0,
        }
    }

    pub(super) fn is_shut(&self) -> bool {
        self.shut.load(Ordering::Acquire)
    }

    /// Control frames a queue must hold: every stream's window plus its open, end and abort.
    fn controls_max(&self) -> usize {
        let per_stream = self.config.snapshot_chunks_inflight_max as usize + 3;
        self.config.snapshot_streams_max * per_stream + 64
    }

    pub(super) fn new_ack_queue(&self) -> Arc<SendQueue> {
        Arc::new(SendQueue::new(1, 1, self.controls_max()))
    }

    pub(super) fn inbox(&self) -> Option<mpsc::Sender<Incoming>> {
        lock(&self.inbox).clone()
    }

    pub(super) fn peer(&self, id: NodeId) -> Option<Arc<Peer>> {
        lock(&self.peers).get(&id).cloned()
    }

    pub(super) fn is_peer(&self, id: NodeId) -> bool {
        lock(&self.peers).contains_key(&id)
    }

    pub(super) fn peers(&self) -> Vec<Arc<Peer>> {
        lock(&self.peers).values().cloned().collect()
    }

    pub(super) fn mark_unreachable(&self, id: NodeId) {
        if !self.is_shut() && self.is_peer(id) {
            lock(&self.unreachable).insert(id);
        }
    }

    pub(super) fn take_unreachable(&self) -> Vec<NodeId> {
        std::mem::take(&mut *lock(&self.unreachable))
            .into_iter()
            .collect()
    }

    pub(super) fn send(&self, to: NodeId, payload: Bytes) -> Result<(), SendError> {
        if payload.len() > self.config.frame_bytes_max as usize {
            return Err(SendError::TooLarge {
                len: payload.len(),
                max: self.config.frame_bytes_max,
            });
        }
        let Some(peer) = self.peer(to) else {
            Metrics::inc(&self.metrics.drops_link);
            return Err(SendError::UnknownPeer(to));
        };
        match peer.queue.push_message(payload) {
            Ok(()) => {
                Metrics::inc(&self.metrics.msgs_queued);
                Ok(())
            }
            Err(PushError::Full) => {
                Metrics::inc(&self.metrics.drops_queue_full);
                Err(SendError::QueueFull(to))
            }
            Err(PushError::Closed) => {
                Metrics::inc(&self.metrics.drops_link);
                Err(SendError::LinkDown(to))
            }
        }
    }

    pub(super) fn start_snapshot(
        &self,
        to: NodeId,
        header: Bytes,
    ) -> Result<SnapshotSender, SnapshotStreamError> {
        let peer = self.peer(to).ok_or(SnapshotStreamError::UnknownPeer(to))?;
        if !peer.connected.load(Ordering::Acquire) {
            return Err(SnapshotStreamError::Unreachable(to));
        }
        let max = self.config.frame_bytes_max;
        if header.len() > max as usize {
            return Err(SnapshotStreamError::ChunkTooLarge {
                len: header.len(),
                max,
            });
        }
        let window = self.config.snapshot_chunks_inflight_max;
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(OutStream::new(window));
        if !peer
            .streams
            .insert(id, Arc::clone(&state), self.config.snapshot_streams_max)
        {
            return Err(SnapshotStreamError::Aborted { stream: id });
        }
        let sink = ChunkSink::Queue {
            queue: Arc::clone(&peer.queue),
            registry: Arc::clone(&peer.streams),
        };
        // Built before the push so that a failed push aborts it through its Drop.
        let sender = SnapshotSender::new(to, id, state, sink, window, max);
        peer.queue
            .push_control(FrameKind::SnapshotOpen, id, header)
            .map_err(|_| SnapshotStreamError::Unreachable(to))?;
        Ok(sender)
    }

    /// Adds or updates a peer; returns it when it is new (the backend starts its dialer).
    pub(super) fn add_peer(
        &self,
        id: NodeId,
        addr: SocketAddr,
    ) -> Result<Option<Arc<Peer>>, TransportError> {
        if id.0 == 0 || id == self.config.node_id {
            return Err(TransportError::InvalidPeer(id));
        }
        if self.is_shut() {
            return Err(TransportError::Shutdown);
        }
        let mut peers = lock(&self.peers);
        if let Some(peer) = peers.get(&id) {
            let mut current = lock(&peer.addr);
            if *current != addr {
                *current = addr;
                peer.redial.store(true, Ordering::Release);
                peer.queue.wake();
            }
            return Ok(None);
        }
        let queue = SendQueue::new(
            self.config.send_queue_msgs_max,
            self.config.send_queue_bytes_max,
            self.controls_max(),
        );
        let peer = Arc::new(Peer {
            id,
            addr: Mutex::new(addr),
            queue: Arc::new(queue),
            streams: Arc::new(OutStreams::default()),
            connected: AtomicBool::new(false),
            ever_connected: AtomicBool::new(false),
            redial: AtomicBool::new(false),
        });
        peers.insert(id, Arc::clone(&peer));
        Ok(Some(peer))
    }

    pub(super) fn remove_peer(&self, id: NodeId) {
        let removed = lock(&self.peers).remove(&id);
        lock(&self.unreachable).remove(&id);
        if let Some(peer) = removed {
            self.close_peer(&peer);
        }
        // Its inbound connection notices at its next read (readers check membership).
        self.in_streams.remove_peer(id, u64::MAX);
    }

    fn close_peer(&self, peer: &Peer) {
        let dropped = peer.queue.close();
        Metrics::add(&self.metrics.drops_link, dropped as u64);
        let aborted = peer.streams.abort_all();
        Metrics::add(&self.metrics.snapshots_aborted, aborted as u64);
    }

    /// Stops everything: queues close (writers and dialers exit), the inbox ends once the
    /// readers have stopped.
    pub(super) fn shutdown(&self) {
        if self.shut.swap(true, Ordering::AcqRel) {
            return;
        }
        let peers: Vec<_> = lock(&self.peers).drain().map(|(_, peer)| peer).collect();
        for peer in &peers {
            self.close_peer(peer);
        }
        lock(&self.inbox).take();
        self.in_streams.remove_peer_all();
        self.shutdown_tx.send_replace(true);
    }

    // ---- outbound connections ----

    /// The dialer's hello for `peer`.
    pub(super) fn hello_for(&self, peer: NodeId) -> [u8; HANDSHAKE_BYTES] {
        Hello::new(self.config.cluster_id, self.config.node_id, peer).encode()
    }

    /// Checks the acceptor's reply; logs and counts a failure.
    pub(super) fn check_reply(
        &self,
        peer: NodeId,
        reply: &[u8; HANDSHAKE_BYTES],
    ) -> Result<(), HandshakeError> {
        handshake::check_reply(reply, self.config.cluster_id, peer)
    }

    pub(super) fn dial_failed(
        &self,
        peer: &Peer,
        addr: SocketAddr,
        reason: &dyn std::fmt::Display,
    ) {
        Metrics::inc(&self.metrics.dial_failures);
        tracing::debug!(peer = %peer.id, %addr, %reason, "dial failed");
        self.mark_unreachable(peer.id);
    }

    pub(super) fn outbound_up(&self, peer: &Peer) {
        peer.connected.store(true, Ordering::Release);
        Metrics::inc(&self.metrics.connects);
        if peer.ever_connected.swap(true, Ordering::AcqRel) {
            Metrics::inc(&self.metrics.reconnects);
        }
        tracing::debug!(peer = %peer.id, addr = %peer.addr(), "connected");
    }

    /// The outbound connection to `peer` ended; `lost` messages were in its failed write.
    pub(super) fn outbound_down(&self, peer: &Peer, lost: usize, reason: &dyn std::fmt::Display) {
        peer.connected.store(false, Ordering::Release);
        Metrics::add(&self.metrics.drops_link, lost as u64);
        let aborted = peer.streams.abort_all();
        Metrics::add(&self.metrics.snapshots_aborted, aborted as u64);
        peer.queue.drop_controls();
        if !peer.is_removed() {
            tracing::info!(peer = %peer.id, addr = %peer.addr(), %reason, "connection lost");
            self.mark_unreachable(peer.id);
        }
    }

    /// Handles every complete frame buffered in `decoder` of an outbound connection to `peer`.
    /// An error (a malformed frame, logged here) means the connection must close; it carries
    /// the reason.
    pub(super) fn drain_outbound(
        &self,
        peer: &Peer,
        decoder: &mut FrameDecoder,
    ) -> Result<(), String> {
        while let Some(frame) = self.next_frame(peer.id, peer.addr(), decoder)? {
            if let Err(error) = self.on_outbound_frame(peer, &frame) {
                self.malformed(peer.id, peer.addr(), &error);
                return Err(error.to_string());
            }
        }
        Ok(())
    }

    /// Decodes every complete frame buffered in `decoder` of an inbound connection, pushing
    /// what is to be delivered onto `ready`. An error means the connection must close.
    pub(super) fn drain_inbound(
        &self,
        conn: &InboundConn,
        remote: SocketAddr,
        decoder: &mut FrameDecoder,
        ready: &mut Vec<Incoming>,
    ) -> Result<(), String> {
        while let Some(frame) = self.next_frame(conn.from, remote, decoder)? {
            match self.on_inbound_frame(conn, frame) {
                Ok(Some(item)) => ready.push(item),
                Ok(None) => {}
                Err(error) => {
                    self.malformed(conn.from, remote, &error);
                    return Err(error.to_string());
                }
            }
        }
        Ok(())
    }

    /// The next complete frame in `decoder`, counted; a malformed one is logged.
    fn next_frame(
        &self,
        peer: NodeId,
        remote: SocketAddr,
        decoder: &mut FrameDecoder,
    ) -> Result<Option<Frame>, String> {
        match decoder.next_frame() {
            Ok(Some(frame)) => {
                self.count_received(&frame);
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(error) => {
                self.malformed(peer, remote, &error);
                Err(error.to_string())
            }
        }
    }

    /// Handles a frame arriving on an outbound connection (acknowledgements and aborts).
    pub(super) fn on_outbound_frame(&self, peer: &Peer, frame: &Frame) -> Result<(), FrameError> {
        match frame.kind {
            FrameKind::Keepalive => {}
            FrameKind::SnapshotAck => {
                let bytes: [u8; 4] =
                    frame.payload[..]
                        .try_into()
                        .map_err(|_| FrameError::Snapshot {
                            stream: frame.stream,
                            reason: "ack without a count",
                        })?;
                let count = u32::from_le_bytes(bytes);
                if count > self.config.snapshot_chunks_inflight_max {
                    return Err(FrameError::Snapshot {
                        stream: frame.stream,
                        reason: "ack of more frames than the window",
                    });
                }
                if let Some(stream) = peer.streams.get(frame.stream) {
                    stream.ack(count);
                }
            }
            FrameKind::SnapshotAbort => {
                if let Some(stream) = peer.streams.get(frame.stream) {
                    Metrics::inc(&self.metrics.snapshots_aborted);
                    stream.abort();
                    peer.streams.remove(frame.stream);
                }
            }
            kind => {
                return Err(FrameError::WrongDirection {
                    kind: kind as u8,
                    direction: "outbound",
                })
            }
        }
        Ok(())
    }

    // ---- inbound connections ----

    /// The acceptor's check of a dialer's hello. On refusal it logs (with the address and
    /// the reason), counts, and returns the reply to send, if any.
    pub(super) fn accept_hello(
        &self,
        remote: SocketAddr,
        hello: &[u8; HANDSHAKE_BYTES],
    ) -> Result<NodeId, Option<[u8; HANDSHAKE_BYTES]>> {
        let config = &self.config;
        match handshake::check_hello(hello, config.cluster_id, config.node_id, |id| {
            self.is_peer(id)
        }) {
            Ok(from) => Ok(from),
            Err(reason) => Err(self.refuse(remote, &reason)),
        }
    }

    /// Logs and counts a refused inbound handshake; returns the refusal to send, if any.
    pub(super) fn refuse(
        &self,
        remote: SocketAddr,
        reason: &HandshakeError,
    ) -> Option<[u8; HANDSHAKE_BYTES]> {
        Metrics::inc(&self.metrics.handshakes_refused);
        tracing::warn!(%remote, %reason, "refused inbound connection");
        Hello::refusal(self.config.cluster_id, self.config.node_id, reason).map(|h| h.encode())
    }

    /// The acceptor's reply to an accepted hello.
    pub(super) fn reply_to(&self, from: NodeId) -> [u8; HANDSHAKE_BYTES] {
        Hello::new(self.config.cluster_id, self.config.node_id, from).encode()
    }

    /// The delivery slot of `from` (see `inbound`).
    pub(super) fn inbound_slot(&self, from: NodeId) -> Arc<tokio::sync::Mutex<u64>> {
        let mut inbound = lock(&self.inbound);
        Arc::clone(inbound.entry(from).or_default())
    }

    pub(super) fn next_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, Ordering::Relaxed)
    }

    /// After the backend made `generation` current in the slot: streams of the superseded
    /// connections from `from` abort.
    pub(super) fn inbound_registered(&self, from: NodeId, generation: u64, remote: SocketAddr) {
        self.in_streams.remove_peer(from, generation - 1);
        tracing::debug!(peer = %from, %remote, generation, "accepted connection");
    }

    /// The inbound connection ended: its streams abort.
    pub(super) fn inbound_ended(&self, conn: &InboundConn, reason: &dyn std::fmt::Display) {
        self.in_streams.remove_peer(conn.from, conn.generation);
        conn.acks.close();
        tracing::debug!(peer = %conn.from, generation = conn.generation, %reason, "inbound closed");
    }

    /// Handles a frame arriving on an inbound connection; returns what to deliver, if any.
    pub(super) fn on_inbound_frame(
        &self,
        conn: &InboundConn,
        frame: Frame,
    ) -> Result<Option<Incoming>, FrameError> {
        let key = (conn.from, frame.stream);
        match frame.kind {
            FrameKind::Message => {
                return Ok(Some(Incoming::Message {
                    from: conn.from,
                    payload: frame.payload,
                }))
            }
            FrameKind::Keepalive => {}
            FrameKind::SnapshotOpen => return Ok(self.open_stream(conn, frame)),
            FrameKind::SnapshotChunk | FrameKind::SnapshotEnd => {
                let Some(tx) = self.in_streams.get(key) else {
                    // Unknown or already aborted stream: tell the sender (best effort).
                    let _ = conn.acks.push_control(
                        FrameKind::SnapshotAbort,
                        frame.stream,
                        Bytes::new(),
                    );
                    return Ok(None);
                };
                let event = if frame.kind == FrameKind::SnapshotEnd {
                    self.in_streams.remove(key);
                    ChunkEvent::End
                } else {
                    ChunkEvent::Chunk(frame.payload)
                };
                match tx.try_send(event) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        return Err(FrameError::Snapshot {
                            stream: frame.stream,
                            reason: "more frames in flight than the window",
                        })
                    }
                    // The receiver was dropped; it already sent the abort.
                    Err(mpsc::error::TrySendError::Closed(_)) => self.in_streams.remove(key),
                }
            }
            FrameKind::SnapshotAbort => self.in_streams.remove(key),
            FrameKind::SnapshotAck => {
                return Err(FrameError::WrongDirection {
                    kind: FrameKind::SnapshotAck as u8,
                    direction: "inbound",
                })
            }
        }
        Ok(None)
    }

    fn open_stream(&self, conn: &InboundConn, frame: Frame) -> Option<Incoming> {
        let window = self.config.snapshot_chunks_inflight_max as usize;
        let (tx, rx) = mpsc::channel(window);
        let key = (conn.from, frame.stream);
        if !self
            .in_streams
            .insert(key, conn.generation, tx, self.config.snapshot_streams_max)
        {
            tracing::warn!(peer = %conn.from, stream = frame.stream, "too many snapshot streams");
            let _ = conn
                .acks
                .push_control(FrameKind::SnapshotAbort, frame.stream, Bytes::new());
            return None;
        }
        let ack = AckPath::Queue(Arc::clone(&conn.acks));
        let metrics = Arc::clone(&self.metrics);
        let receiver =
            SnapshotReceiver::new(conn.from, frame.stream, frame.payload, rx, ack, metrics);
        Some(Incoming::Snapshot(receiver))
    }

    /// Counts a verified received frame.
    pub(super) fn count_received(&self, frame: &Frame) {
        Metrics::inc(&self.metrics.frames_received);
        let bytes = super::frame::FRAME_HEADER_BYTES + frame.payload.len();
        Metrics::add(&self.metrics.bytes_received, bytes as u64);
    }

    /// Logs and counts a connection closed for a malformed frame.
    pub(super) fn malformed(&self, peer: NodeId, remote: SocketAddr, error: &FrameError) {
        Metrics::inc(&self.metrics.frames_malformed);
        tracing::error!(%peer, %remote, %error, "malformed frame; closing connection");
    }

    /// Counts a successful write of `frames` frames (`msgs` messages) and `bytes` bytes.
    pub(super) fn count_sent(&self, frames: usize, bytes: usize) {
        Metrics::add(&self.metrics.frames_sent, frames as u64);
        Metrics::add(&self.metrics.bytes_sent, bytes as u64);
    }

    pub(super) fn count_delivered(&self) {
        Metrics::inc(&self.metrics.msgs_delivered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter() {
        let mut config = TransportConfig::new(1, NodeId(1));
        config.reconnect_backoff_min = Duration::from_millis(10);
        config.reconnect_backoff_max = Duration::from_millis(200);
        let mut backoff = Backoff::new(&config, NodeId(2));
        let mut full = Duration::from_millis(10);
        for _ in 0..20 {
            let delay = backoff.next_delay();
            assert!(
                delay >= full / 2 && delay <= full,
                "{delay:?} outside [{full:?}/2, {full:?}]"
            );
            full = (full * 2).min(Duration::from_millis(200));
        }
        backoff.reset_after(Duration::from_millis(1));
        assert!(
            backoff.next_delay() >= Duration::from_millis(100),
            "short-lived: no reset"
        );
        backoff.reset_after(Duration::from_secs(1));
        assert!(backoff.next_delay() <= Duration::from_millis(10));
        // Two peers do not share a sequence.
        let mut other = Backoff::new(&config, NodeId(3));
        let mut again = Backoff::new(&config, NodeId(2));
        let a: Vec<_> = (0..8).map(|_| again.next_delay()).collect();
        let b: Vec<_> = (0..8).map(|_| other.next_delay()).collect();
        assert_ne!(a, b);
    }
}
