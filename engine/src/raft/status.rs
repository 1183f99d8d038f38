//! Read-only views of the core for runtimes, tests and metrics.

use std::collections::BTreeMap;

use crate::raft::membership::Membership;
use crate::raft::tracker::{Progress, ProgressState};
use crate::raft::types::{Instant, LogIndex, NodeId, Role, Term};

/// A follower's replication progress as seen by the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressStatus {
    /// Highest index known durable and matching on the follower.
    pub match_index: LogIndex,
    /// Next index to send.
    pub next: LogIndex,
    /// Sending state.
    pub state: ProgressState,
    /// AppendEntries in flight.
    pub inflight_msgs: usize,
    /// Entry bytes in flight.
    pub inflight_bytes: u64,
}

/// A snapshot of the core's state, for tests, metrics and invariant checks.
#[derive(Clone, Debug)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Current term.
    pub term: Term,
    /// Vote in the current term.
    pub vote: Option<NodeId>,
    /// Role.
    pub role: Role,
    /// Known leader.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit: LogIndex,
    /// Applied index (as reported by the runtime).
    pub applied: LogIndex,
    /// Durable index on this node.
    pub persisted: LogIndex,
    /// First index held in memory.
    pub first_index: LogIndex,
    /// Last index.
    pub last_index: LogIndex,
    /// Applied membership.
    pub membership: Membership,
    /// Followers' progress; empty unless leader.
    pub progress: BTreeMap<NodeId, ProgressStatus>,
    /// Target of a leadership transfer in progress.
    pub transferee: Option<NodeId>,
    /// End of the leader's read lease, if it holds one.
    pub lease_until: Option<Instant>,
}

pub(crate) fn progress_status(p: &Progress) -> ProgressStatus {
    ProgressStatus {
        match_index: p.match_index,
        next: p.next,
        state: p.state,
        inflight_msgs: p.inflights.count(),
        inflight_bytes: p.inflights.bytes(),
    }
}
