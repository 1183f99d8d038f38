//! Follower behaviour: accept the leader's log, acknowledge after persistence, time out.

use crate::raft::config::Mutation;
use crate::raft::core::Core;
use crate::raft::message::{Message, MessageBody, SnapshotMeta};
use crate::raft::types::{LogIndex, NodeId, ReadId, ReadState, Role};

impl Core {
    /// Election timer of followers and candidates.
    pub(crate) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed < self.randomized_timeout {
            return;
        }
        if !self.membership().is_voter(self.id) {
            self.election_elapsed = 0;
            return;
        }
        // Our own leader-stickiness promise covers our own vote too: do not campaign while a
        // leader we acknowledged may still hold its read lease (ticks may run fast against
        // `now`).
        if self.heard_live_leader() {
            return;
        }
        self.campaign(false);
    }

    /// Records that the leader of this term is alive.
    fn heard_from_leader(&mut self, from: NodeId) {
        assert!(
            self.role() != Role::Leader,
            "election safety: two leaders in term {}",
            self.term
        );
        if self.role() != Role::Follower || self.leader_id != Some(from) {
            self.become_follower(self.term, Some(from));
        }
        self.leader_heard_at = Some(self.now);
        self.election_elapsed = 0;
    }

    pub(crate) fn handle_append(&mut self, m: Message) {
        let MessageBody::AppendEntries {
            prev_index,
            prev_term,
            entries,
            commit,
            round,
        } = m.body
        else {
            unreachable!("dispatched on AppendEntries");
        };
        self.heard_from_leader(m.from);
        let commit_here = self.log.commit();
        if prev_index < commit_here {
            // The prefix up to our commit is committed, hence identical to the leader's
            // (leader completeness): keep only the entries after it. A reordered or duplicated
            // append then still delivers its new entries instead of forcing a probe.
            let last = entries.last().map_or(prev_index, |e| e.index);
            let at_commit = entries.iter().find(|e| e.index == commit_here);
            if at_commit.is_some_and(|e| Some(e.term) != self.log.term(commit_here)) {
                // A leader's log holds our committed prefix (leader completeness): this one
                // does not, so it comes from a faulty peer. Appending after it would break
                // the log's term order; drop it.
                tracing::warn!(from = %m.from, %commit_here, "append contradicts the committed log");
                return;
            }
            match entries.sub(commit_here.next(), last) {
                Some(rest) => {
                    let last_new = self.log.append_after(commit_here, rest);
                    self.log.commit_to(commit.min(last_new));
                    self.send_append_ack(m.from, last_new, round);
                }
                None => self.send_append_ack(m.from, commit_here, round),
            }
            return;
        }
        if self.log.term(prev_index) != Some(prev_term) {
            let hint = self.log.reject_hint(prev_index, prev_term);
            let body = MessageBody::AppendEntriesResponse {
                index: prev_index,
                reject: Some(hint),
                round,
            };
            self.send(m.from, body);
            return;
        }
        let last_new = self.log.append_after(prev_index, entries);
        self.log.commit_to(commit.min(last_new));
        self.send_append_ack(m.from, last_new, round);
    }

    /// The acknowledgement leaves only once this Ready is persisted (`send` routes it).
    fn send_append_ack(&mut self, to: NodeId, index: LogIndex, round: u64) {
        let body = MessageBody::AppendEntriesResponse {
            index,
            reject: None,
            round,
        };
        self.send(to, body);
    }

    pub(crate) fn handle_heartbeat(&mut self, from: NodeId, commit: LogIndex, round: u64) {
        self.heard_from_leader(from);
        // The leader sends min(its commit, our match): those entries are durable here.
        self.log.commit_to(commit.min(self.log.last_index()));
        self.send(from, MessageBody::HeartbeatResponse { round });
    }

    pub(crate) fn handle_install_snapshot(&mut self, from: NodeId, meta: SnapshotMeta, round: u64) {
        self.heard_from_leader(from);
        if meta.index <= self.log.commit() {
            if !self.mutated(Mutation::SnapshotOverNewerEntries) {
                let index = self.log.commit();
                self.send_append_ack(from, index, round);
                return;
            }
            self.log.restore_over_commit(meta.index, meta.term);
        } else {
            self.log.restore(meta.index, meta.term);
        }
        // The runtime installs the snapshot before it applies anything after it.
        self.applied = self.applied.max(meta.index);
        self.handed_out = self.handed_out.max(meta.index);
        self.conf_history = vec![(meta.index, meta.membership.clone())];
        let next = self.log.last_index().next();
        self.tracker.set_membership(meta.membership.clone(), next);
        self.snapshot = meta.clone();
        let index = meta.index;
        self.snapshot_to_install = Some(meta);
        self.send_append_ack(from, index, round);
    }

    pub(crate) fn handle_timeout_now(&mut self, from: NodeId) {
        if self.role() == Role::Leader || !self.membership().is_voter(self.id) {
            return;
        }
        tracing::debug!(id = %self.id, %from, "timeout now: campaigning for a transfer");
        self.campaign(true);
    }

    /// An answer to a forwarded read, matched on its wire id and the leader it went to.
    pub(crate) fn handle_read_index_response(
        &mut self,
        from: NodeId,
        wire: ReadId,
        index: Option<LogIndex>,
    ) {
        let found = self
            .forwarded_reads
            .iter()
            .position(|r| r.wire == wire && r.leader == from);
        let Some(pos) = found else {
            // Already failed (timeout or leader change), a duplicate answer, or an answer to
            // a read of an earlier incarnation of this node.
            return;
        };
        let id = self.forwarded_reads.swap_remove(pos).id;
        match index {
            Some(index) => self.read_states.push(ReadState { id, index }),
            None => self
                .failed_reads
                .push((id, crate::raft::errors::ReadError::LeadershipLost)),
        }
    }
}
