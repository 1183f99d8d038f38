//! The leader's sending side: AppendEntries batching and pipelining, heartbeats, snapshots.

use crate::raft::core::Core;
use crate::raft::message::MessageBody;
use crate::raft::tracker::ProgressState;
use crate::raft::types::NodeId;

impl Core {
    fn peers(&self) -> Vec<NodeId> {
        self.tracker
            .progress
            .keys()
            .copied()
            .filter(|id| *id != self.id)
            .collect()
    }

    fn current_round(&self) -> u64 {
        self.role.leader().map_or(0, |l| l.reads.round())
    }

    /// Sends what the follower's window allows. In replicate state this pipelines several
    /// batches; `allow_empty` sends a commit-only append when there is nothing new.
    pub(crate) fn send_append(&mut self, to: NodeId, allow_empty: bool) {
        let mut allow_empty = allow_empty;
        while self.maybe_send_append(to, allow_empty) {
            allow_empty = false;
            let replicating = self
                .tracker
                .progress
                .get(&to)
                .is_some_and(|p| p.state == ProgressState::Replicate);
            if !replicating {
                break;
            }
        }
    }

    /// Sends one AppendEntries (or an InstallSnapshot). Returns whether one was sent.
    fn maybe_send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let Some(pr) = self.tracker.progress.get(&to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let next = pr.next;
        let prev_index = next.prev();
        let Some(prev_term) = self.log.term(prev_index) else {
            self.send_snapshot(to);
            return true;
        };
        let (entries, bytes) = self.log.slice_from(next, self.cfg.batch_bytes_max);
        if entries.is_empty() && !allow_empty {
            return false;
        }
        let last = entries.last().map_or(prev_index, |e| e.index);
        let has_entries = !entries.is_empty();
        let round = self.current_round();
        let commit = self.log.commit();
        if let Some(pr) = self.tracker.progress.get_mut(&to) {
            pr.on_sent(last, bytes, has_entries);
            pr.sent_round = round;
            pr.commit_sent = commit;
        }
        let body = MessageBody::AppendEntries {
            prev_index,
            prev_term,
            entries,
            commit,
            round,
        };
        self.send(to, body);
        true
    }

    /// The follower needs entries we compacted: send the snapshot's metadata; the runtime
    /// streams the data and reports the outcome with `report_snapshot`.
    fn send_snapshot(&mut self, to: NodeId) {
        let meta = self.snapshot.clone();
        assert!(
            meta.index.next() >= self.log.first_index(),
            "invariant: the latest snapshot covers the compacted prefix"
        );
        if let Some(pr) = self.tracker.progress.get_mut(&to) {
            pr.become_snapshot(meta.index);
        }
        let round = self.current_round();
        self.send(to, MessageBody::InstallSnapshot { meta, round });
    }

    /// Sends new entries, or the new commit index to followers that have not seen it.
    pub(crate) fn broadcast_append(&mut self) {
        let commit = self.log.commit();
        for to in self.peers() {
            let stale = self
                .tracker
                .progress
                .get(&to)
                .is_some_and(|p| p.commit_sent < commit);
            self.send_append(to, stale);
        }
    }

    /// Starts a heartbeat round and sends it to every follower.
    pub(crate) fn broadcast_heartbeat(&mut self) {
        let now = self.now;
        let me = self.id;
        let Some(leader) = self.role.leader_mut() else {
            return;
        };
        let round = leader.reads.start_round(now);
        if let Some(pr) = self.tracker.progress.get_mut(&me) {
            pr.acked_round = round;
        }
        for to in self.peers() {
            let Some(pr) = self.tracker.progress.get(&to) else {
                continue;
            };
            // Commit only what the follower is known to hold (etcd does the same).
            let commit = self.log.commit().min(pr.match_index);
            self.send(to, MessageBody::Heartbeat { commit, round });
        }
        // A single voter confirms its own rounds.
        self.advance_reads();
    }

    /// Sends the appends and the heartbeat round that this loop turn's proposals and reads
    /// asked for, once for all of them (so that a burst of proposals shares messages).
    pub(crate) fn send_batched(&mut self) {
        let Some(leader) = self.role.leader_mut() else {
            return;
        };
        let broadcast = std::mem::take(&mut leader.broadcast_wanted);
        let round = leader.reads.round_wanted();
        if broadcast {
            self.broadcast_append();
        }
        if round {
            self.broadcast_heartbeat();
        }
    }

    /// Whether [`Core::send_batched`] has anything to send.
    pub(crate) fn send_batched_wanted(&self) -> bool {
        self.role
            .leader()
            .is_some_and(|l| l.broadcast_wanted || l.reads.round_wanted())
    }
}
