//! Typed operating errors of the core. Programmer errors panic instead.

use crate::raft::membership::DecodeError;
use crate::raft::types::{LogIndex, NodeId};

/// A [`crate::raft::Config`] or initial state that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The node id is 0.
    #[error("node id 0 is reserved")]
    InvalidId,
    /// A limit that must be positive is 0.
    #[error("{field} must be > 0")]
    Zero {
        /// Name of the field.
        field: &'static str,
    },
    /// `election_ticks_min` must be larger than `heartbeat_ticks`, and not above the max.
    #[error(
        "need heartbeat_ticks ({heartbeat}) < election_ticks_min ({min}) <= election_ticks_max ({max})"
    )]
    ElectionTicks {
        /// Heartbeat interval in ticks.
        heartbeat: u64,
        /// Minimum election timeout in ticks.
        min: u64,
        /// Maximum election timeout in ticks (exclusive).
        max: u64,
    },
    /// The clock drift bound is 1,000,000 ppm or more: no lease could ever hold.
    #[error("max_clock_drift_ppm {ppm} must be < 1_000_000")]
    ClockDrift {
        /// The configured drift.
        ppm: u64,
    },
    /// The lease margin eats the whole lease.
    #[error("lease_margin_nanos {margin} leaves no lease out of {lease} ns")]
    LeaseMargin {
        /// The margin.
        margin: u64,
        /// The lease before the margin.
        lease: u64,
    },
    /// A single entry could never fit the flow-control window.
    #[error("inflight_bytes_max {inflight} < batch_bytes_max {batch}")]
    Window {
        /// `inflight_bytes_max`.
        inflight: u64,
        /// `batch_bytes_max`.
        batch: u64,
    },
    /// The initial state is inconsistent.
    #[error("invalid initial state: {reason}")]
    InitialState {
        /// What is wrong.
        reason: &'static str,
    },
}

/// A proposal the core refused. Nothing was appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProposeError {
    /// This node is not the leader; `leader` is the last known one.
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader {
        /// Known leader of the current term, if any.
        leader: Option<NodeId>,
    },
    /// A leadership transfer is in progress.
    #[error("leadership transfer to {to} in progress")]
    TransferInProgress {
        /// The transfer target.
        to: NodeId,
    },
    /// Too many entries are appended but not yet committed.
    #[error("{pending} uncommitted entries, limit {limit}")]
    TooManyPending {
        /// Uncommitted entries now.
        pending: u64,
        /// `proposals_pending_max`.
        limit: u64,
    },
    /// The entry's data is over `entry_bytes_max`.
    #[error("proposal of {len} bytes, over the maximum of {max}")]
    TooLarge {
        /// Bytes proposed.
        len: u64,
        /// `entry_bytes_max`.
        max: u64,
    },
    /// A membership change was refused.
    #[error(transparent)]
    ConfChange(#[from] ConfChangeError),
}

/// A membership change that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfChangeError {
    /// The previous change is not yet applied (one change in flight, Raft thesis 4.1).
    #[error("change at {pending} not yet applied (applied {applied})")]
    ChangeInFlight {
        /// Index of the pending change.
        pending: LogIndex,
        /// Applied index.
        applied: LogIndex,
    },
    /// The node is already a member.
    #[error("{id} is already a member")]
    AlreadyMember {
        /// The node.
        id: NodeId,
    },
    /// The node is not a member.
    #[error("{id} is not a member")]
    NotMember {
        /// The node.
        id: NodeId,
    },
    /// Only learners can be promoted.
    #[error("{id} is not a learner")]
    NotLearner {
        /// The node.
        id: NodeId,
    },
    /// The change would leave no voter.
    #[error("the change removes the last voter")]
    NoVotersLeft,
    /// `Leave` outside a joint configuration.
    #[error("not in a joint configuration")]
    NotJoint,
    /// `Enter` while already joint.
    #[error("already in a joint configuration")]
    AlreadyJoint,
    /// A change with no steps.
    #[error("empty change")]
    Empty,
    /// `NodeId(0)` is reserved.
    #[error("node id 0 is reserved")]
    InvalidNodeId,
}

/// A message the core could not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The message is addressed to another node.
    #[error("message for {to} delivered to {me}")]
    WrongRecipient {
        /// Addressee.
        to: NodeId,
        /// This node.
        me: NodeId,
    },
    /// An AppendEntries carries an entry over `entry_bytes_max` (a leader configured with a
    /// larger bound than this node): refused whole, before anything is appended.
    #[error("entry {index} of {len} bytes, over the maximum of {max}")]
    EntryTooLarge {
        /// Entry index.
        index: LogIndex,
        /// Bytes of its data.
        len: u64,
        /// `entry_bytes_max`.
        max: u64,
    },
    /// A conf change entry that does not decode (corruption or version skew).
    #[error("bad conf change entry at {index}: {source}")]
    BadConfChange {
        /// Entry index.
        index: LogIndex,
        /// Decode failure.
        source: DecodeError,
    },
}

/// A read the core could not start or complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// No leader is known to confirm the read.
    #[error("no known leader")]
    NoLeader,
    /// The leader lost leadership (or term changed) before confirming.
    #[error("leadership lost before the read was confirmed")]
    LeadershipLost,
    /// A read forwarded to the leader got no answer within an election timeout.
    #[error("no answer from the leader within an election timeout")]
    TimedOut,
    /// Too many reads wait for confirmation.
    #[error("{limit} reads already pending")]
    TooManyPending {
        /// `reads_pending_max`.
        limit: u64,
    },
}

/// A leadership transfer that cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// Only the leader transfers leadership.
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader {
        /// Known leader.
        leader: Option<NodeId>,
    },
    /// The target is not a voter of the configuration.
    #[error("{to} is not a voter")]
    NotVoter {
        /// Target.
        to: NodeId,
    },
    /// The target is this node.
    #[error("already the leader")]
    ToSelf,
    /// Another transfer is under way.
    #[error("transfer to {to} in progress")]
    InProgress {
        /// Current target.
        to: NodeId,
    },
}

/// A snapshot request that does not fit the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The index is not applied yet.
    #[error("snapshot index {index} above applied {applied}")]
    NotApplied {
        /// Requested index.
        index: LogIndex,
        /// Applied index.
        applied: LogIndex,
    },
    /// Compaction beyond the latest snapshot.
    #[error("cannot compact to {index}: latest snapshot at {snapshot}")]
    NotSnapshotted {
        /// Requested index.
        index: LogIndex,
        /// Latest snapshot index.
        snapshot: LogIndex,
    },
    /// The index is at or below the current snapshot.
    #[error("snapshot index {index} not above the current snapshot {current}")]
    Stale {
        /// Requested index.
        index: LogIndex,
        /// Current snapshot index.
        current: LogIndex,
    },
}
