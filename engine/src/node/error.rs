//! Errors of the node runtime and its handle.

use std::io;
use std::sync::Arc;

use crate::raft::{
    ConfChangeError, LogIndex, NodeId, ProposeError, ReadError, SnapshotError, StepError,
    TransferError,
};

/// Why a request through a [`crate::node::NodeHandle`] failed.
///
/// Not `PartialEq`: [`NodeError::Fatal`] carries the WAL's typed error, whose I/O source is an
/// `std::io::Error`; compare with `matches!`.
#[derive(Debug, Clone, thiserror::Error)]
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
    Fatal(FatalError),
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

/// Why the node loop stopped for good: the node's durable state is in doubt, so it is never
/// retried (restart the node; recovery rebuilds a consistent state). Carried by
/// [`NodeError::Fatal`] and [`crate::node::NodeHandle::fatal_error`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FatalError {
    /// The WAL failed or refused a request the loop must not fail: a write or fdatasync
    /// ([`ringraft_wal::Error::Fatal`]), deleting compacted segments, or a truncation,
    /// compaction or snapshot-metadata write it rejected. The stored log is in an unknown
    /// state.
    #[error("wal: {0}")]
    Wal(#[from] ringraft_wal::Error),
    /// A snapshot file could not be written, read, renamed, synced or pruned, or the state
    /// machine could not restore from it, while the core already counted on it.
    #[error("snapshot {op}: {source}")]
    SnapshotIo {
        /// What was being done (`write`, `open`, `restore`, `rename`, `sync`, `prune`).
        op: &'static str,
        /// The OS (or state machine) error.
        source: Arc<io::Error>,
    },
    /// A committed entry carries a tag this build does not know: the log is corrupt or was
    /// written by a newer release, and applying around it would diverge from the peers.
    #[error("committed entry {index} has an unknown tag")]
    UnknownEntryTag {
        /// Index of the entry.
        index: LogIndex,
    },
    /// The core holds no term for the applied index it is asked to snapshot at.
    #[error("no term for applied index {index}")]
    NoTermForApplied {
        /// The applied index.
        index: LogIndex,
    },
    /// The core refused a snapshot the runtime wrote at its applied index.
    #[error("core snapshot: {0}")]
    CoreSnapshot(#[from] SnapshotError),
    /// The node thread panicked (a programmer error): reported so that a handle and the
    /// server see a dead node, not a clean stop.
    #[error("the node thread panicked")]
    Panicked,
    /// The core refused a completion the runtime reported (an applied index it never
    /// committed): the runtime and the core disagree about the log.
    #[error("core: {0}")]
    Core(#[from] StepError),
}

impl FatalError {
    /// A snapshot I/O failure during `op`.
    pub(crate) fn snapshot_io(op: &'static str) -> impl FnOnce(io::Error) -> FatalError {
        move |e| FatalError::SnapshotIo {
            op,
            source: Arc::new(e),
        }
    }
}
