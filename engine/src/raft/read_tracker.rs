//! The bookkeeping of linearizable reads (Raft thesis 6.4): reads waiting for a heartbeat
//! round, the rounds' send times that a lease is counted from, and the ids of reads a
//! follower forwarded. Pure data; the rules that use it are in `role/reads.rs`.

use std::collections::VecDeque;

use crate::raft::types::{Instant, LogIndex, NodeId, ReadId};

/// Send times kept for recent rounds; older rounds can still confirm reads, only the lease is
/// not extended from them. 1024 rounds cover minutes of heartbeats.
const ROUNDS_KEPT_MAX: usize = 1024;
// A lease needs the send time of the acknowledged round, which is at least one behind.
const _: () = assert!(ROUNDS_KEPT_MAX >= 2);

/// A read waiting for its heartbeat round to be acknowledged by a quorum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PendingRead {
    pub(crate) id: ReadId,
    /// The follower that forwarded the read, or `None` for a local one.
    pub(crate) from: Option<NodeId>,
    /// Commit index when the read arrived: the read index.
    pub(crate) index: LogIndex,
    /// The round that must be acknowledged by a quorum; it starts after the read arrived.
    pub(crate) round: u64,
}

/// A read a follower forwarded to its leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ForwardedRead {
    /// The caller's id.
    pub(crate) id: ReadId,
    /// The id on the wire: unique across this node's incarnations (see
    /// [`ForwardIds`]), so a late answer to a read of an earlier boot, still queued at the
    /// leader, never completes a read of this one (issue 13 item 7).
    pub(crate) wire: ReadId,
    /// The leader it was sent to; only its answer counts.
    pub(crate) leader: NodeId,
    /// Ticks waited.
    pub(crate) ticks: u64,
}

/// The wire ids of forwarded reads: a per-incarnation base drawn from the core's seed (the
/// runtime draws a new seed at every boot), plus a counter. Caller ids restart at every boot;
/// these do not repeat unless two boots draw bases within a run of reads of each other.
#[derive(Debug)]
pub(crate) struct ForwardIds {
    next: u64,
}

impl ForwardIds {
    /// Derived from `seed` apart from the election RNG, so that its draws stay the same.
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = ringraft_wal::util::rng::Rng::new(seed ^ 0x7265_6164_2d69_6473);
        ForwardIds {
            next: rng.next_u64(),
        }
    }

    pub(crate) fn next(&mut self) -> ReadId {
        let id = ReadId(self.next);
        self.next = self.next.wrapping_add(1);
        id
    }
}

/// Heartbeat rounds, the lease they give, and the reads they confirm.
///
/// Invariant: `acked_round <= round`; rounds in `sent_at` increase; `pending` rounds increase.
#[derive(Debug, Default)]
pub(crate) struct ReadTracker {
    /// The latest round started.
    round: u64,
    sent_at: VecDeque<(u64, Instant)>,
    /// The highest round a quorum acknowledged.
    acked_round: u64,
    /// The lease holds while `now < lease_until`.
    lease_until: Option<Instant>,
    pending: VecDeque<PendingRead>,
    /// Reads that arrived before an entry of this term committed (Raft thesis 6.4 step 1).
    waiting: Vec<(ReadId, Option<NodeId>)>,
    /// A read wants a new round at the next `send_batched`.
    round_wanted: bool,
}

impl ReadTracker {
    pub(crate) fn round(&self) -> u64 {
        self.round
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.len() + self.waiting.len()
    }

    pub(crate) fn round_wanted(&self) -> bool {
        self.round_wanted
    }

    /// Starts a new round sent at `now` and returns its id.
    pub(crate) fn start_round(&mut self, now: Instant) -> u64 {
        self.round += 1;
        self.round_wanted = false;
        if self.sent_at.len() == ROUNDS_KEPT_MAX {
            self.sent_at.pop_front();
        }
        if let Some(&(_, last)) = self.sent_at.back() {
            assert!(now >= last, "invariant: the clock is monotonic");
        }
        self.sent_at.push_back((self.round, now));
        self.round
    }

    /// Whether the lease holds at `now`.
    pub(crate) fn lease_valid(&self, now: Instant) -> bool {
        self.lease_until.is_some_and(|until| now < until)
    }

    pub(crate) fn lease_until(&self) -> Option<Instant> {
        self.lease_until
    }

    /// The newest round a quorum acknowledged.
    pub(crate) fn acked_round(&self) -> u64 {
        self.acked_round
    }

    /// Extends the lease to `until` (the rule breaker of
    /// [`crate::raft::Mutation::LeaseFromReceiveTime`]).
    pub(crate) fn extend_lease_to(&mut self, until: Instant) {
        self.lease_until = Some(self.lease_until.map_or(until, |u| u.max(until)));
    }

    /// Drops the lease (before a leadership transfer).
    pub(crate) fn drop_lease(&mut self) {
        self.lease_until = None;
    }

    /// Queues a read confirmed by the next round.
    pub(crate) fn push_pending(&mut self, id: ReadId, from: Option<NodeId>, index: LogIndex) {
        let read = PendingRead {
            id,
            from,
            index,
            round: self.round + 1,
        };
        self.round_wanted = true;
        self.pending.push_back(read);
    }

    /// Parks a read until an entry of the leader's term commits.
    pub(crate) fn push_waiting(&mut self, id: ReadId, from: Option<NodeId>) {
        self.waiting.push((id, from));
    }

    pub(crate) fn take_waiting(&mut self) -> Vec<(ReadId, Option<NodeId>)> {
        std::mem::take(&mut self.waiting)
    }

    /// A quorum acknowledged `round`. Extends the lease by `lease_nanos` from that round's send
    /// time when `lease_allowed`, and returns the reads it confirms.
    pub(crate) fn on_quorum_acked(
        &mut self,
        round: u64,
        lease_nanos: u64,
        lease_allowed: bool,
    ) -> Vec<PendingRead> {
        if round <= self.acked_round {
            return Vec::new();
        }
        assert!(round <= self.round, "invariant: acked round was started");
        self.acked_round = round;
        while self.sent_at.front().is_some_and(|&(r, _)| r < round) {
            self.sent_at.pop_front();
        }
        if let Some(&(r, sent)) = self.sent_at.front() {
            if r == round && lease_allowed {
                let until = Instant(sent.0.saturating_add(lease_nanos));
                self.lease_until = Some(self.lease_until.map_or(until, |u| u.max(until)));
            }
        }
        let mut done = Vec::new();
        while self.pending.front().is_some_and(|p| p.round <= round) {
            done.extend(self.pending.pop_front());
        }
        done
    }

    /// Every read still waiting, for failing them when leadership is lost.
    pub(crate) fn drain_all(&mut self) -> Vec<(ReadId, Option<NodeId>)> {
        let mut all: Vec<_> = self.waiting.drain(..).collect();
        all.extend(self.pending.drain(..).map(|p| (p.id, p.from)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_starts_at_send_time_of_acked_round() {
        let mut t = ReadTracker::default();
        let r1 = t.start_round(Instant(100));
        let _r2 = t.start_round(Instant(200));
        assert!(t.on_quorum_acked(r1, 1000, true).is_empty());
        assert_eq!(t.lease_until(), Some(Instant(1100)));
        assert!(t.lease_valid(Instant(1099)));
        assert!(!t.lease_valid(Instant(1100)));
        // A stale ack changes nothing.
        assert!(t.on_quorum_acked(r1, 1000, true).is_empty());
        t.drop_lease();
        assert!(!t.lease_valid(Instant(150)));
    }

    #[test]
    fn reads_confirmed_only_by_a_later_round() {
        let mut t = ReadTracker::default();
        let r1 = t.start_round(Instant(1));
        t.push_pending(ReadId(7), None, LogIndex(5));
        assert!(t.round_wanted());
        assert!(t.on_quorum_acked(r1, 10, true).is_empty());
        let r2 = t.start_round(Instant(2));
        let done = t.on_quorum_acked(r2, 10, false);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].index, LogIndex(5));
        // lease_allowed = false does not extend it past round 1's lease.
        assert_eq!(t.lease_until(), Some(Instant(11)));
    }
}
