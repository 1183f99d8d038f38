//! Errors of the node runtime and its handle.

use crate::raft::{ConfChangeError, NodeId, ProposeError, ReadError, TransferError};

/// Why a request through a [`crate::node::NodeHandle`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// This node is not the leader; retry on `leader` if known.
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader {
        /// The last known leader.
        leader: Option<NodeId>,
    },
    /// Too many proposals in flight (`try_propose` only; `propose` waits instead).
    #[error("too many proposals in flight")]
    Busy,
    /// Leadership was lost before the request completed. The outcome is unknown: the entry
    /// may still commit and apply.
    #[error("leadership lost; outcome unknown")]
    LeadershipLost,
    /// The node stopped (shutdown or fatal error) before the request completed.
    #[error("node stopped")]
    Stopped,
    /// The node hit a fatal error (failed WAL write or fsync, corrupt state) and stopped; it
    /// is never retried (restart the node to recover). Every request pending at that point and
    /// every later one fails with this error. A proposal that was pending has an unknown
    /// outcome: the other nodes may still commit it.
    #[error("fatal: {0}")]
    Fatal(String),
    /// The core refused the proposal.
    #[error(transparent)]
    Propose(#[from] ProposeError),
    /// The core refused the membership change.
    #[error(transparent)]
    ConfChange(#[from] ConfChangeError),
    /// The read could not be confirmed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The leadership transfer could not start.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// The request did not complete within its deadline.
    #[error("timed out")]
    Timeout,
    /// A snapshot could not be taken.
    #[error("snapshot: {0}")]
    Snapshot(String),
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] crate::node::ConfigError),
    /// The WAL could not be opened or recovered.
    #[error("wal: {0}")]
    Wal(#[from] ringraft_wal::Error),
    /// The stored state is inconsistent.
    #[error("recovery: {0}")]
    Recovery(String),
    /// The transport could not start.
    #[error("transport: {0}")]
    Transport(#[from] crate::transport::TransportError),
    /// An I/O error on the data directory or snapshot files.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
