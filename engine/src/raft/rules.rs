//! The safety rules that the core's mutation switches ([`Mutation`], feature `mutations`)
//! turn off, each decided here, once, with its reasoning and the section of the Raft thesis
//! (Ongaro, "Consensus: Bridging Theory and Practice", 2014) it implements.
//!
//! The handlers in `core.rs` and `role/` gather the inputs and act on the answer. A switch is
//! an input like the others (`off`), so that turning a rule off changes exactly that decision
//! and nothing around it, which is what lets the simulation prove the rule is needed.
//!
//! [`Mutation`]: crate::raft::Mutation

use crate::raft::types::{NodeId, Term};

/// Vote, before anything else (thesis 4.2.3, leader stickiness): a vote request from a higher
/// term is ignored, its term not even adopted, while this node heard a live leader within the
/// minimum election timeout. A partitioned or restarted node therefore cannot depose a leader
/// that its followers still hear, and the leader's read lease relies on it: while its lease
/// may hold, a quorum will not help elect a successor. A campaign the leader itself asked for
/// (`transfer`, thesis 3.10) bypasses it. `off`: [`Mutation::VoteDespiteLeaderLease`].
///
/// [`Mutation::VoteDespiteLeaderLease`]: crate::raft::Mutation::VoteDespiteLeaderLease
pub(crate) fn ignores_vote_request(transfer: bool, heard_live_leader: bool, off: bool) -> bool {
    !transfer && heard_live_leader && !off
}

/// What the vote decision looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VoteRequest {
    pub(crate) candidate: NodeId,
    pub(crate) pre_vote: bool,
    /// The request's term is above ours (for a pre-vote: the term the candidate would take).
    pub(crate) term_ahead: bool,
    /// The candidate's last (term, index) is at least our own.
    pub(crate) log_up_to_date: bool,
}

/// Vote (thesis 3.4, 3.6.1 and 9.6): grants when both hold.
/// - One vote per term (3.4): this node voted for this candidate already, or for no one and
///   follows no leader in this term. A pre-vote for a later term binds nothing and may be
///   granted whatever this term's vote (9.6).
/// - The election restriction (3.6.1): the candidate's log is at least as up to date as ours
///   (higher last term, or the same and at least as long). Every committed entry is on a
///   quorum, so a candidate a quorum accepts holds them all: leader completeness (3.6.2).
///   `off`: [`Mutation::VoteWithoutLogCheck`].
///
/// [`Mutation::VoteWithoutLogCheck`]: crate::raft::Mutation::VoteWithoutLogCheck
pub(crate) fn grants_vote(
    voted_for: Option<NodeId>,
    leader_known: bool,
    req: &VoteRequest,
    off: bool,
) -> bool {
    let can_vote = voted_for == Some(req.candidate)
        || (voted_for.is_none() && !leader_known)
        || (req.pre_vote && req.term_ahead);
    can_vote && (req.log_up_to_date || off)
}

/// Commit (thesis 3.6.2, figure 3.7): a leader advances its commit index by counting the
/// replicas of an entry only if that entry is of its own term; entries of earlier terms commit
/// with it, by log matching. Counting an old term's entry is unsafe: it may be on a quorum and
/// still be overwritten by a leader elected without it (figure 3.7, "figure 8" of the paper).
/// `off`: [`Mutation::CountOldTermTowardCommit`].
///
/// [`Mutation::CountOldTermTowardCommit`]: crate::raft::Mutation::CountOldTermTowardCommit
pub(crate) fn commits_by_counting(entry_term: Option<Term>, current: Term, off: bool) -> bool {
    entry_term == Some(current) || off
}

/// Lease reads (thesis 6.4.1): the leader answers a read from its lease alone, without a
/// round, when all hold.
/// - An entry of its term committed: before that its commit index may be behind what an
///   earlier leader committed (thesis 6.4, step 1). `off`:
///   [`Mutation::LeaseReadBeforeNoopCommit`].
/// - No leadership transfer runs: its target may win before the lease would end (3.10).
/// - The lease holds at `now`. It starts at the send time (never the receipt) of a round a
///   quorum acknowledged and lasts less than the followers' stickiness minus the clock drift
///   bound ([`ignores_vote_request`], `Config::lease_nanos`), so no successor can be elected
///   while it holds; see [`lease_may_extend`].
///
/// [`Mutation::LeaseReadBeforeNoopCommit`]: crate::raft::Mutation::LeaseReadBeforeNoopCommit
pub(crate) fn lease_serves(
    own_term_committed: bool,
    transfer_running: bool,
    lease_holds: bool,
    off: bool,
) -> bool {
    (own_term_committed || off) && !transfer_running && lease_holds
}

/// Lease extension (thesis 6.4.1): an acknowledged round extends the lease, from its send
/// time, unless a transfer runs or a TimeoutNow left in this term: that message may be delayed
/// without bound and its campaign bypasses stickiness, so no lease is safe for the rest of the
/// term. (Counting from the acknowledgement's receipt instead is
/// [`Mutation::LeaseFromReceiveTime`].)
///
/// [`Mutation::LeaseFromReceiveTime`]: crate::raft::Mutation::LeaseFromReceiveTime
pub(crate) fn lease_may_extend(transfer_running: bool, timeout_now_sent: bool) -> bool {
    !transfer_running && !timeout_now_sent
}

/// Where a ReadIndex read (thesis 6.4) waits on the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadIndexWait {
    /// Until an entry of this term commits (step 1: only then is the commit index at least
    /// every committed entry); it then takes the commit index of that moment.
    OwnTermCommit,
    /// Until a heartbeat round started after the read is acknowledged by a quorum (steps 2
    /// and 3: no newer leader existed when the read arrived); the read index is the commit
    /// index at arrival.
    Round,
}

/// ReadIndex on the leader (thesis 6.4). A follower never answers from its own commit index,
/// which may lag the leader's without bound: it asks the leader for the read index and waits
/// until it has applied that far (6.4, "followers"; `off` of
/// [`Mutation::FollowerReadWithoutReadIndex`] is checked where a follower reads).
///
/// [`Mutation::FollowerReadWithoutReadIndex`]: crate::raft::Mutation::FollowerReadWithoutReadIndex
pub(crate) fn read_index_wait(own_term_committed: bool) -> ReadIndexWait {
    if own_term_committed {
        ReadIndexWait::Round
    } else {
        ReadIndexWait::OwnTermCommit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(candidate: u64, pre_vote: bool, term_ahead: bool, log_up_to_date: bool) -> VoteRequest {
        VoteRequest {
            candidate: NodeId(candidate),
            pre_vote,
            term_ahead,
            log_up_to_date,
        }
    }

    #[test]
    fn votes() {
        // (voted_for, leader_known, request, off) -> granted
        let cases = [
            (None, false, req(2, false, false, true), false, true),
            (Some(2), false, req(2, false, false, true), false, true),
            (Some(3), false, req(2, false, false, true), false, false),
            (None, true, req(2, false, false, true), false, false),
            (Some(3), true, req(2, true, true, true), false, true),
            (Some(3), true, req(2, true, false, true), false, false),
            (None, false, req(2, false, false, false), false, false),
            (None, false, req(2, false, false, false), true, true),
            (Some(3), false, req(2, false, false, false), true, false),
        ];
        for (voted_for, leader_known, r, off, want) in cases {
            assert_eq!(
                grants_vote(voted_for.map(NodeId), leader_known, &r, off),
                want,
                "{voted_for:?} {leader_known} {r:?} {off}"
            );
        }
        assert!(ignores_vote_request(false, true, false));
        assert!(!ignores_vote_request(true, true, false));
        assert!(!ignores_vote_request(false, false, false));
        assert!(!ignores_vote_request(false, true, true));
    }

    #[test]
    fn commit_lease_and_read_index() {
        assert!(commits_by_counting(Some(Term(3)), Term(3), false));
        assert!(!commits_by_counting(Some(Term(2)), Term(3), false));
        assert!(!commits_by_counting(None, Term(3), false));
        assert!(commits_by_counting(Some(Term(2)), Term(3), true));
        assert!(lease_serves(true, false, true, false));
        assert!(!lease_serves(false, false, true, false));
        assert!(lease_serves(false, false, true, true));
        assert!(!lease_serves(true, true, true, false));
        assert!(!lease_serves(true, false, false, true));
        assert!(lease_may_extend(false, false));
        assert!(!lease_may_extend(true, false));
        assert!(!lease_may_extend(false, true));
        assert_eq!(read_index_wait(false), ReadIndexWait::OwnTermCommit);
        assert_eq!(read_index_wait(true), ReadIndexWait::Round);
    }
}
