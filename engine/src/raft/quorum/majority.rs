//! A simple majority configuration.

use std::collections::BTreeSet;

use crate::raft::quorum::VoteResult;
use crate::raft::types::NodeId;

/// The voters of one (non-joint) configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MajorityConfig {
    pub(crate) voters: BTreeSet<NodeId>,
}

impl MajorityConfig {
    pub(crate) fn new(voters: BTreeSet<NodeId>) -> Self {
        MajorityConfig { voters }
    }

    /// The largest value that a majority of voters has acknowledged, given each voter's
    /// acknowledged value (`acked`, missing = 0). An empty configuration returns `u64::MAX` so
    /// that it does not constrain a joint configuration (etcd does the same).
    pub(crate) fn committed(&self, acked: impl Fn(NodeId) -> Option<u64>) -> u64 {
        let n = self.voters.len();
        if n == 0 {
            return u64::MAX;
        }
        // Small clusters are the common case: sort on the stack.
        let mut stack = [0u64; 7];
        let mut heap;
        let values: &mut [u64] = if n <= stack.len() {
            &mut stack[..n]
        } else {
            heap = vec![0u64; n];
            &mut heap[..]
        };
        for (slot, id) in values.iter_mut().zip(&self.voters) {
            *slot = acked(*id).unwrap_or(0);
        }
        values.sort_unstable();
        // With values sorted ascending, the (n - (n/2 + 1))-th is held by a majority.
        values[n - (n / 2 + 1)]
    }

    /// The tally of `votes` (missing = not yet answered).
    pub(crate) fn vote_result(&self, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut yes, mut missing) = (0, 0);
        for id in &self.voters {
            match vote(*id) {
                Some(true) => yes += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let quorum = self.voters.len() / 2 + 1;
        if yes >= quorum {
            VoteResult::Won
        } else if yes + missing >= quorum {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }
}
