//! The node's role, carrying the state that exists only in it: a leader's state is created by
//! `become_leader` and dropped by the change of role that ends leadership, so no non-leader can
//! hold one and no leader can lack one.

use crate::raft::read_tracker::ReadTracker;
use crate::raft::types::{LogIndex, NodeId, Role};

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
    /// Appends wait for the next `send_batched` so that proposals of one loop turn share
    /// messages.
    pub(crate) broadcast_wanted: bool,
}

/// The role, with the leader's state inside it.
#[derive(Debug)]
pub(crate) enum RoleState {
    Follower,
    PreCandidate,
    Candidate,
    Leader(LeaderState),
}

impl RoleState {
    /// The role, without its state.
    pub(crate) fn role(&self) -> Role {
        match self {
            RoleState::Follower => Role::Follower,
            RoleState::PreCandidate => Role::PreCandidate,
            RoleState::Candidate => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }

    /// The leader's state, if this is the leader. A method of the field rather than of
    /// `Core`, so that it borrows only the role and the rest of the core stays usable.
    pub(crate) fn leader(&self) -> Option<&LeaderState> {
        match self {
            RoleState::Leader(l) => Some(l),
            _ => None,
        }
    }

    /// The leader's state, mutably, if this is the leader.
    pub(crate) fn leader_mut(&mut self) -> Option<&mut LeaderState> {
        match self {
            RoleState::Leader(l) => Some(l),
            _ => None,
        }
    }
}
