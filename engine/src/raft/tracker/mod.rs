//! The leader's view of its followers, and the candidate's vote tally.

mod inflights;
mod progress;

use std::collections::BTreeMap;

pub(crate) use inflights::Inflights;
pub(crate) use progress::Progress;
pub use progress::ProgressState;

use crate::raft::membership::Membership;
use crate::raft::quorum::{JointConfig, VoteResult};
use crate::raft::types::{LogIndex, NodeId};

/// Per-member progress plus the quorum configuration it is judged by.
///
/// Invariant: `progress` has exactly one entry per member of `membership` (voters of both
/// halves and learners), the local node included.
#[derive(Debug)]
pub(crate) struct ProgressTracker {
    pub(crate) membership: Membership,
    pub(crate) quorum: JointConfig,
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    votes: BTreeMap<NodeId, bool>,
    msgs_max: usize,
    bytes_max: u64,
}

impl ProgressTracker {
    pub(crate) fn new(membership: Membership, msgs_max: usize, bytes_max: u64) -> Self {
        let mut t = ProgressTracker {
            quorum: JointConfig::from_membership(&membership),
            membership: Membership::default(),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            msgs_max,
            bytes_max,
        };
        t.set_membership(membership, LogIndex(1));
        t
    }

    /// Switches to `m`, keeping progress of members that stay; new ones start probing at `next`.
    pub(crate) fn set_membership(&mut self, m: Membership, next: LogIndex) {
        m.assert_valid();
        let members = m.members();
        self.progress.retain(|id, _| members.contains(id));
        for id in &members {
            self.progress
                .entry(*id)
                .or_insert_with(|| Progress::new(next, self.msgs_max, self.bytes_max));
        }
        self.quorum = JointConfig::from_membership(&m);
        self.membership = m;
        assert_eq!(
            self.progress.len(),
            members.len(),
            "invariant: one progress per member"
        );
    }

    /// Resets every progress for a new leader whose log ends at `last`.
    pub(crate) fn reset(&mut self, last: LogIndex) {
        for pr in self.progress.values_mut() {
            *pr = Progress::new(last.next(), self.msgs_max, self.bytes_max);
        }
    }

    /// The highest index durable on a quorum.
    pub(crate) fn committed(&self) -> LogIndex {
        LogIndex(
            self.quorum
                .committed(|id| self.progress.get(&id).map(|p| p.match_index.0)),
        )
    }

    /// The highest heartbeat round acknowledged by a quorum.
    pub(crate) fn acked_round(&self) -> u64 {
        self.quorum
            .committed(|id| self.progress.get(&id).map(|p| p.acked_round))
    }

    /// Whether a quorum was heard from since the last check; resets the marks.
    pub(crate) fn quorum_active(&mut self, me: NodeId) -> bool {
        let active = self.quorum.vote_result(|id| {
            Some(id == me || self.progress.get(&id).is_some_and(|p| p.recent_active))
        }) == VoteResult::Won;
        for pr in self.progress.values_mut() {
            pr.recent_active = false;
        }
        active
    }

    pub(crate) fn reset_votes(&mut self) {
        self.votes.clear();
    }

    /// Records a vote (the first answer of each voter counts) and returns the tally.
    pub(crate) fn record_vote(&mut self, from: NodeId, granted: bool) -> VoteResult {
        self.votes.entry(from).or_insert(granted);
        self.quorum.vote_result(|id| self.votes.get(&id).copied())
    }
}

#[cfg(test)]
mod tests;
