//! State a leader keeps only while it leads.

use crate::raft::read::ReadTracker;
use crate::raft::types::{LogIndex, NodeId};

/// Leader-only state; dropped when leadership ends.
#[derive(Debug, Default)]
pub(crate) struct LeaderState {
    /// Index of the last membership change appended; a new one waits until it is applied.
    pub(crate) pending_conf_index: LogIndex,
    /// Target and ticks elapsed of a leadership transfer in progress.
    pub(crate) transfer: Option<(NodeId, u64)>,
    /// A TimeoutNow left in this term. It may be delayed without bound and its campaign
    /// bypasses leader stickiness, so no lease may be held for the rest of the term.
    pub(crate) timeout_now_sent: bool,
    pub(crate) reads: ReadTracker,
    /// An entry of this term committed (Raft paper 5.4.2 / thesis 6.4).
    pub(crate) own_term_committed: bool,
    /// Appends wait for the next flush so that proposals of one loop turn share messages.
    pub(crate) broadcast_wanted: bool,
}
