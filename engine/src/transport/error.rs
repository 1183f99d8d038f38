//! Typed errors of the transport.

use std::net::SocketAddr;

use super::NodeId;

/// A configuration field out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("invalid transport config: {field}: {reason}")]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// Why it is invalid.
    pub reason: &'static str,
}

/// Errors starting or reconfiguring a transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Other socket setup failed.
    #[error("socket setup failed: {0}")]
    Io(#[from] std::io::Error),
    /// A peer cannot be this node itself, or `NodeId(0)`.
    #[error("invalid peer id {0}")]
    InvalidPeer(NodeId),
    /// The transport was shut down.
    #[error("transport is shut down")]
    Shutdown,
}

/// Why a message was not queued. Raft tolerates every one of these: it retransmits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The peer is not (or no longer) a known peer.
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
    /// The peer's send queue is full; the message was dropped and counted.
    #[error("send queue to {0} is full; message dropped")]
    QueueFull(NodeId),
    /// The payload exceeds `frame_bytes_max`.
    #[error("payload of {len} bytes exceeds frame_bytes_max {max}")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// Configured maximum.
        max: u32,
    },
    /// The link is cut (in-memory transport partitions) or the transport is shut down.
    #[error("link to {0} is down")]
    LinkDown(NodeId),
}

/// A malformed frame: the connection that carried it is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix exceeds `frame_bytes_max` (checked before allocating).
    #[error("frame of {len} bytes exceeds frame_bytes_max {max}")]
    TooLarge {
        /// Announced payload length.
        len: u32,
        /// Configured maximum.
        max: u32,
    },
    /// The CRC over header and payload does not match.
    #[error("frame checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// CRC in the frame.
        stored: u32,
        /// CRC of the bytes received.
        computed: u32,
    },
    /// Unknown frame kind.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// Reserved header bytes are not zero.
    #[error("reserved header bytes are not zero")]
    Reserved,
    /// A frame kind that this side of the connection must never receive.
    #[error("frame kind {kind} not allowed on an {direction} connection")]
    WrongDirection {
        /// Frame kind.
        kind: u8,
        /// `inbound` or `outbound`.
        direction: &'static str,
    },
    /// A frame that violates the snapshot protocol (for example more chunks than the window).
    #[error("snapshot protocol violation on stream {stream}: {reason}")]
    Snapshot {
        /// Stream id.
        stream: u64,
        /// What went wrong.
        reason: &'static str,
    },
}

/// Why a handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The first bytes are not the ringraft magic: not a ringraft peer.
    #[error("bad magic {0:#010x}")]
    BadMagic(u32),
    /// The handshake checksum does not match.
    #[error("handshake checksum mismatch")]
    Checksum,
    /// Unsupported protocol version.
    #[error("protocol version {theirs} unsupported (ours {ours})")]
    Version {
        /// Version the peer speaks.
        theirs: u16,
        /// Version this node speaks.
        ours: u16,
    },
    /// The peer belongs to another cluster.
    #[error("cluster id {theirs:#x} is not ours ({ours:#x})")]
    OtherCluster {
        /// The peer's cluster id.
        theirs: u64,
        /// Ours.
        ours: u64,
    },
    /// The peer's node id is not a known member.
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    /// The peer meant to reach another node.
    #[error("handshake addressed to node {to}, this is node {ours}")]
    WrongTarget {
        /// Node the dialer asked for.
        to: NodeId,
        /// This node.
        ours: NodeId,
    },
    /// The node answering is not the one dialed.
    #[error("dialed node {expected}, node {actual} answered")]
    WrongPeer {
        /// Node dialed.
        expected: NodeId,
        /// Node that answered.
        actual: NodeId,
    },
    /// The other side refused our handshake.
    #[error("refused by peer: {0}")]
    Refused(&'static str),
    /// The handshake did not complete in time.
    #[error("handshake timed out")]
    Timeout,
    /// I/O error during the handshake.
    #[error("handshake I/O error: {0}")]
    Io(String),
}

/// Errors of a snapshot stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotStreamError {
    /// No connection to the peer is established right now; try again later.
    #[error("peer {0} is unreachable")]
    Unreachable(NodeId),
    /// The peer is not a known peer.
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
    /// The other side aborted the stream, or its connection broke.
    #[error("snapshot stream {stream} aborted")]
    Aborted {
        /// Stream id.
        stream: u64,
    },
    /// A chunk exceeds `frame_bytes_max`.
    #[error("chunk of {len} bytes exceeds frame_bytes_max {max}")]
    ChunkTooLarge {
        /// Chunk length.
        len: usize,
        /// Configured maximum.
        max: u32,
    },
}
