//! The membership configuration, possibly joint.

use std::collections::BTreeSet;

use crate::raft::types::NodeId;

/// A membership configuration. While joint (`voters_outgoing` not empty) decisions need a
/// majority of `voters` and a majority of `voters_outgoing` (Raft thesis 4.3).
///
/// Invariant: `voters` and `learners` are disjoint; `voters` is not empty once bootstrapped.
/// A node may be an outgoing voter and an incoming learner while joint.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Membership {
    /// Voters of the incoming (or only) configuration.
    pub voters: BTreeSet<NodeId>,
    /// Voters of the outgoing configuration; empty unless joint.
    pub voters_outgoing: BTreeSet<NodeId>,
    /// Non-voting members that receive the log.
    pub learners: BTreeSet<NodeId>,
    /// Whether the leader leaves the joint configuration by itself once it is applied.
    pub auto_leave: bool,
}

impl Membership {
    /// A simple (non-joint) configuration of the given voters.
    #[must_use]
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Membership {
            voters: voters.into_iter().collect(),
            ..Membership::default()
        }
    }

    /// Whether this is a joint configuration.
    #[must_use]
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// Whether `id` votes in either half.
    #[must_use]
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.voters_outgoing.contains(&id)
    }

    /// Whether `id` is a learner and not a voter of either half.
    #[must_use]
    pub fn is_learner_only(&self, id: NodeId) -> bool {
        self.learners.contains(&id) && !self.is_voter(id)
    }

    /// Whether `id` belongs to the configuration in any role.
    #[must_use]
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// Every member, voters and learners of both halves, in order.
    #[must_use]
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        all.extend(self.voters_outgoing.iter().copied());
        all.extend(self.learners.iter().copied());
        all
    }

    /// Panics if the structural invariant is broken (a programmer error).
    pub fn assert_valid(&self) {
        assert!(
            self.voters.is_disjoint(&self.learners),
            "invariant: voters and learners are disjoint: {self:?}"
        );
        assert!(
            !self.voters.contains(&NodeId(0)) && !self.learners.contains(&NodeId(0)),
            "invariant: NodeId(0) is never a member"
        );
    }
}
