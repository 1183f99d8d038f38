//! Linearizable reads (Raft thesis 6.4): leases and ReadIndex on the leader, forwarding on
//! followers.

use crate::raft::config::Mutation;
use crate::raft::core::Core;
use crate::raft::errors::ReadError;
use crate::raft::message::MessageBody;
use crate::raft::read_tracker::ForwardedRead;
use crate::raft::rules::{self, ReadIndexWait};
use crate::raft::types::{Instant, NodeId, ReadId, ReadMode, ReadState, Role};

impl Core {
    /// A local read request.
    pub(crate) fn read_index(&mut self, id: ReadId, mode: ReadMode) -> Result<(), ReadError> {
        if self.role() == Role::Leader {
            return self.leader_read(id, None, mode);
        }
        let Some(leader) = self.leader_id else {
            return Err(ReadError::NoLeader);
        };
        if self.mutated(Mutation::FollowerReadWithoutReadIndex) {
            let index = self.log.commit();
            self.read_states.push(ReadState { id, index });
            return Ok(());
        }
        let limit = self.cfg.reads_pending_max;
        if self.forwarded_reads.len() as u64 >= limit {
            return Err(ReadError::TooManyPending { limit });
        }
        let wire = self.forward_ids.next();
        self.forwarded_reads.push(ForwardedRead {
            id,
            wire,
            leader,
            ticks: 0,
        });
        self.send(leader, MessageBody::ReadIndex { id: wire, mode });
        Ok(())
    }

    /// Forwarded reads time out after an election timeout: the request or the answer may
    /// have been lost, and the caller may retry.
    pub(crate) fn tick_forwarded_reads(&mut self) {
        let timeout = self.cfg.election_ticks_min;
        let mut expired = Vec::new();
        self.forwarded_reads.retain_mut(|r| {
            r.ticks += 1;
            let keep = r.ticks < timeout;
            if !keep {
                expired.push(r.id);
            }
            keep
        });
        self.failed_reads
            .extend(expired.into_iter().map(|id| (id, ReadError::TimedOut)));
    }

    /// The leader changed: forwarded reads will not be answered.
    pub(crate) fn fail_forwarded_reads(&mut self, why: ReadError) {
        let failed = self.forwarded_reads.drain(..).map(|r| (r.id, why.clone()));
        self.failed_reads.extend(failed);
    }

    /// A follower forwarded a read, in the mode its caller asked for: a lease read may be
    /// served from the lease, a ReadIndex read only after a quorum round (issue 13 item 3).
    pub(crate) fn handle_read_index(&mut self, from: NodeId, id: ReadId, mode: ReadMode) {
        if self.role() != Role::Leader {
            self.send(from, MessageBody::ReadIndexResponse { id, index: None });
            return;
        }
        if self.leader_read(id, Some(from), mode).is_err() {
            self.send(from, MessageBody::ReadIndexResponse { id, index: None });
        }
    }

    fn lease_serves(&self) -> bool {
        let Some(leader) = self.role.leader() else {
            return false;
        };
        rules::lease_serves(
            leader.own_term_committed,
            leader.transfer.is_some(),
            leader.reads.lease_valid(self.now),
            self.mutated(Mutation::LeaseReadBeforeNoopCommit),
        )
    }

    fn leader_read(
        &mut self,
        id: ReadId,
        from: Option<NodeId>,
        mode: ReadMode,
    ) -> Result<(), ReadError> {
        let commit = self.log.commit();
        if mode == ReadMode::Lease && self.lease_serves() {
            let own_term = self.role.leader().is_some_and(|l| l.own_term_committed);
            assert!(
                own_term || self.mutated(Mutation::LeaseReadBeforeNoopCommit),
                "invariant: lease reads only after an entry of this term committed"
            );
            self.complete_read(id, from, commit);
            return Ok(());
        }
        let limit = self.cfg.reads_pending_max;
        let leader = self
            .role
            .leader_mut()
            .expect("leader state exists while leader");
        if leader.reads.len() as u64 >= limit {
            return Err(ReadError::TooManyPending { limit });
        }
        match rules::read_index_wait(leader.own_term_committed) {
            ReadIndexWait::Round => leader.reads.push_pending(id, from, commit),
            ReadIndexWait::OwnTermCommit => leader.reads.push_waiting(id, from),
        }
        Ok(())
    }

    fn complete_read(
        &mut self,
        id: ReadId,
        from: Option<NodeId>,
        index: crate::raft::types::LogIndex,
    ) {
        match from {
            Some(to) => self.send(
                to,
                MessageBody::ReadIndexResponse {
                    id,
                    index: Some(index),
                },
            ),
            None => self.read_states.push(ReadState { id, index }),
        }
    }

    /// An entry of our term committed: reads parked until now take the current commit index.
    pub(crate) fn release_waiting_reads(&mut self) {
        let commit = self.log.commit();
        let Some(leader) = self.role.leader_mut() else {
            return;
        };
        for (id, from) in leader.reads.take_waiting() {
            leader.reads.push_pending(id, from, commit);
        }
    }

    /// Acknowledged rounds extend the lease and confirm pending reads.
    pub(crate) fn advance_reads(&mut self) {
        let round = self.tracker.acked_round();
        let lease_nanos = self.cfg.lease_nanos();
        let from_receipt = self.mutated(Mutation::LeaseFromReceiveTime);
        let now = self.now;
        let Some(leader) = self.role.leader_mut() else {
            return;
        };
        let lease_allowed =
            rules::lease_may_extend(leader.transfer.is_some(), leader.timeout_now_sent);
        let newly_acked = round > leader.reads.acked_round();
        let done = leader
            .reads
            .on_quorum_acked(round, lease_nanos, lease_allowed);
        if from_receipt && newly_acked && lease_allowed {
            // The rule breaker: every newly acknowledged round extends the lease from the
            // receipt of its acknowledgement.
            leader
                .reads
                .extend_lease_to(Instant(now.0.saturating_add(lease_nanos)));
        }
        for read in done {
            self.complete_read(read.id, read.from, read.index);
        }
    }
}
