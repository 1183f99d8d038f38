//! Node-to-node transport: moves opaque, already-encoded messages ([`Bytes`]) between the
//! nodes of one cluster, and streams snapshots with flow control.
//!
//! - [`Transport`]: the trait the node runtime drives; received traffic arrives on the
//!   [`Inbox`] returned when an endpoint starts.
//! - [`UringTransport`]: TCP on io_uring, running as tasks on the node's single tokio-uring
//!   thread. [`ThreadTransport`]: for hosts where io_uring is unavailable
//!   ([`TcpBackend::detect`] chooses and warns once), TCP on tokio's epoll reactor, on one
//!   thread of the endpoint's own. Both run the one connection lifecycle of `conn.rs` (dial,
//!   handshake, reconnect with backoff, reader, writer, snapshot streams) over a small
//!   connection trait; they differ only in how bytes move.
//! - [`MemoryTransport`]: in-process, for tests and benchmarks; links can be cut on command.
//!   [`MemoryNetwork`] is a [`TransportFactory`], so whole nodes can run over it.
//! - The transport never looks inside a payload: the Raft messages it carries are encoded by
//!   [`crate::codec`]. A runtime sends `codec::encode(&msg)` to `msg.to` and steps
//!   `codec::decode_from(from, local, p)`.
//!
//! Wire protocol (both TCP backends): one connection per peer and direction. The dialer sends
//! a handshake (magic, protocol version, cluster id, its node id, the node id it wants; see
//! `handshake.rs`), the acceptor checks it against the known peers and answers with its own.
//! Then the dialer sends length-prefixed, CRC32-protected frames (`frame.rs`): messages and
//! snapshot chunks; the acceptor sends back only snapshot acknowledgements, aborts and
//! keepalives. Any malformed frame closes that one connection.

mod config;
#[cfg(test)]
mod conformance;
mod conn;
mod error;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod handshake;
mod memory;
mod metrics;
mod queue;
mod snapshot;
mod tcp;
mod thread;
mod uring;

use std::net::SocketAddr;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::raft::NodeId;

pub use config::{TransportConfig, FRAME_BYTES_MAX_LIMIT};
pub use error::{
    ConfigError, FrameError, HandshakeError, SendError, SnapshotStreamError, TransportError,
};
pub use frame::FRAME_HEADER_BYTES;
pub use handshake::PROTOCOL_VERSION;
pub use memory::{MemoryNetwork, MemoryTransport};
pub use metrics::MetricsSnapshot;
pub use snapshot::{SnapshotReceiver, SnapshotSender};
pub use thread::ThreadTransport;
pub use uring::{TcpBackend, UringTransport};

/// Moves opaque messages between the nodes of one cluster.
///
/// Sending never blocks: a message is queued for the peer's connection (or refused with a
/// [`SendError`]); everything received arrives on the endpoint's [`Inbox`].
///
/// # Correctness
/// What every implementation guarantees, and what the Raft core must tolerate:
/// - **Integrity**: a delivered payload is byte-for-byte what was sent (TCP frames carry a
///   CRC32 over header and payload; a mismatch closes the connection, it is never delivered).
/// - **Authenticated origin within the cluster**: `from` is the sender's node id as checked
///   by the handshake (cluster id and membership); it is not cryptographic authentication.
/// - **Order, no duplicates**: for one sender endpoint and one receiver endpoint, the
///   messages delivered form a subsequence of the messages sent, in send order. The transport
///   never retransmits, so it never duplicates, also across reconnects: frames still in
///   flight on a replaced connection are discarded, never delivered after newer ones.
/// - **Loss is possible**: a message may be dropped when the peer's send queue is full
///   (counted in `drops_queue_full`), when the peer is unknown or its link is down, or when
///   the connection breaks with the message queued or in flight (`drops_link`). Raft
///   retransmits; the transport does not.
/// - **Bounded memory**: every queue is bounded (`send_queue_*`, `inbox_msgs_max`,
///   `snapshot_chunks_inflight_max`) and no frame longer than `frame_bytes_max` is ever
///   allocated. When the inbox is full, reading stops and TCP pushes back on the senders.
/// - **Reachability**: a peer whose connection failed or cannot be established is reported
///   by [`Transport::take_unreachable`] (each failure at most once until taken), so the core
///   can fall back to probing (`RawNode::report_unreachable`).
/// - Snapshot streams are bound to one connection; see [`SnapshotSender`].
pub trait Transport {
    /// This endpoint's node id.
    fn local_id(&self) -> NodeId;

    /// Queues `payload` for `to`. `Ok` means queued, not delivered.
    ///
    /// # Errors
    /// [`SendError`]: unknown peer, full queue (dropped and counted), oversized payload, or a
    /// cut link.
    fn send(&self, to: NodeId, payload: Bytes) -> Result<(), SendError>;

    /// Opens a snapshot stream to `to`; `header` (for example the encoded snapshot metadata)
    /// reaches the receiver with the stream.
    ///
    /// # Errors
    /// [`SnapshotStreamError::Unreachable`] if no connection to `to` is up right now,
    /// [`SnapshotStreamError::UnknownPeer`], or [`SnapshotStreamError::Aborted`] if too many streams are
    /// open.
    fn start_snapshot(
        &self,
        to: NodeId,
        header: Bytes,
    ) -> Result<SnapshotSender, SnapshotStreamError>;

    /// Adds a peer (membership change), or updates its address (the connection to the old
    /// address closes and the peer is dialed at the new one). Connections to it are made in
    /// the background; connections from it are accepted from now on.
    ///
    /// # Errors
    /// [`TransportError::InvalidPeer`] for `NodeId(0)` or this node's own id, or
    /// [`TransportError::Shutdown`].
    fn add_peer(&self, id: NodeId, addr: SocketAddr) -> Result<(), TransportError>;

    /// Removes a peer: its queue is dropped, its connections close, its streams abort, and
    /// new connections from it are refused.
    fn remove_peer(&self, id: NodeId);

    /// Peers found unreachable since the last call, each once, in id order.
    fn take_unreachable(&self) -> Vec<NodeId>;

    /// A copy of the endpoint's counters.
    fn metrics(&self) -> MetricsSnapshot;

    /// Stops the endpoint: closes every connection and the listener; the inbox then ends.
    fn shutdown(&self);
}

/// A started transport endpoint: the handle the node sends through, the inbox it receives
/// from, and the address it listens on (what peers dial; for an in-process transport, the
/// address it was given).
#[non_exhaustive]
pub struct StartedTransport {
    /// The endpoint.
    pub transport: Box<dyn Transport>,
    /// Everything the endpoint receives.
    pub inbox: Inbox,
    /// The address the endpoint listens on.
    pub local_addr: SocketAddr,
}

impl std::fmt::Debug for StartedTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedTransport")
            .field("node", &self.transport.local_id())
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl StartedTransport {
    /// Bundles an endpoint, its inbox and its address.
    #[must_use]
    pub fn new(transport: Box<dyn Transport>, inbox: Inbox, local_addr: SocketAddr) -> Self {
        StartedTransport {
            transport,
            inbox,
            local_addr,
        }
    }
}

/// Starts a node's transport endpoint, so that a node can run over any [`Transport`]
/// (`NodeConfig::transport`); without one a node starts the TCP backend of its runtime.
///
/// # Correctness
/// - `start` is called once per node start, on the node's own thread and inside its async
///   runtime (tokio-uring or current-thread tokio, per `NodeConfig::io_backend`), so an
///   endpoint may spawn tasks on it; it must not block that thread.
/// - The endpoint it returns keeps every guarantee of [`Transport`] and identifies itself
///   as `config.node_id`.
pub trait TransportFactory: Send + Sync + std::fmt::Debug {
    /// Starts the endpoint of `config.node_id`, listening on `listen` if it listens at all.
    ///
    /// # Errors
    /// [`TransportError`]: an invalid configuration, a bind failure, an endpoint that
    /// already exists.
    fn start(
        &self,
        config: TransportConfig,
        listen: SocketAddr,
    ) -> Result<StartedTransport, TransportError>;
}

/// Something received from a peer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Incoming {
    /// A message, as the sender passed it to [`Transport::send`].
    Message {
        /// The sending node.
        from: NodeId,
        /// The payload.
        payload: Bytes,
    },
    /// A snapshot stream opened by [`Transport::start_snapshot`].
    Snapshot(SnapshotReceiver),
}

/// The receiving side of an endpoint: a bounded queue of [`Incoming`].
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Incoming>,
}

impl Inbox {
    fn new(rx: mpsc::Receiver<Incoming>) -> Self {
        Inbox { rx }
    }

    /// Waits for the next item; `None` once the endpoint is shut down and drained.
    pub async fn recv(&mut self) -> Option<Incoming> {
        self.rx.recv().await
    }

    /// The next item if one is ready.
    pub fn try_recv(&mut self) -> Option<Incoming> {
        self.rx.try_recv().ok()
    }

    /// Blocks the thread for the next item. Must not be called from async code.
    pub fn blocking_recv(&mut self) -> Option<Incoming> {
        self.rx.blocking_recv()
    }

    /// Waits for at least one item, then moves up to `limit` ready items into `buf` (one
    /// wake-up for a whole batch); returns how many, 0 once the endpoint is shut down.
    pub async fn recv_many(&mut self, buf: &mut Vec<Incoming>, limit: usize) -> usize {
        self.rx.recv_many(buf, limit).await
    }

    /// Items waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no item is waiting.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}
