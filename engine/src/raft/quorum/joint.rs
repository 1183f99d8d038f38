//! A joint configuration: decisions need both halves (Raft thesis 4.3).

use crate::raft::membership::Membership;
use crate::raft::quorum::{MajorityConfig, VoteResult};
use crate::raft::types::NodeId;

/// Incoming and outgoing majority configurations; `outgoing` is empty unless joint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct JointConfig {
    pub(crate) incoming: MajorityConfig,
    pub(crate) outgoing: MajorityConfig,
}

impl JointConfig {
    pub(crate) fn from_membership(m: &Membership) -> Self {
        JointConfig {
            incoming: MajorityConfig::new(m.voters.clone()),
            outgoing: MajorityConfig::new(m.voters_outgoing.clone()),
        }
    }

    /// The largest value acknowledged by a quorum of both halves.
    pub(crate) fn committed(&self, acked: impl Fn(NodeId) -> Option<u64>) -> u64 {
        let a = self.incoming.committed(&acked);
        let b = self.outgoing.committed(&acked);
        a.min(b)
    }

    /// Won only if both halves won; lost if either lost.
    pub(crate) fn vote_result(&self, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        let a = self.incoming.vote_result(&vote);
        let b = self.outgoing.vote_result(&vote);
        match (a, b) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}
