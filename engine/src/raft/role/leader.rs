//! Leader behaviour: the term's no-op, proposals, acknowledgements, commit, CheckQuorum,
//! leadership transfer.

use bytes::Bytes;

use crate::raft::config::Mutation;
use crate::raft::core::Core;
use crate::raft::errors::{ProposeError, TransferError};
use crate::raft::leader_state::{LeaderState, RoleState};
use crate::raft::membership::ConfChange;
use crate::raft::message::{MessageBody, RejectHint};
use crate::raft::rules;
use crate::raft::tracker::ProgressState;
use crate::raft::types::{Entry, EntryKind, LogIndex, NodeId, Role};

impl Core {
    pub(crate) fn become_leader(&mut self) {
        assert_eq!(
            self.role(),
            Role::Candidate,
            "only a candidate becomes leader"
        );
        let last = self.log.last_index();
        self.role = RoleState::Leader(LeaderState {
            // Changes appended by earlier leaders may be pending: wait until all is applied.
            pending_conf_index: last,
            ..LeaderState::default()
        });
        self.leader_id = Some(self.id);
        self.leader_heard_at = Some(self.now);
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        self.tracker.reset(last);
        let persisted = self.log.persisted();
        if let Some(me) = self.tracker.progress.get_mut(&self.id) {
            me.maybe_update(persisted);
            me.become_replicate();
        }
        // Raft paper 5.4.2: commit earlier terms' entries through an entry of this term.
        self.append_entry(EntryKind::Noop, Bytes::new());
        self.broadcast_append();
    }

    fn leader_state(&mut self) -> &mut LeaderState {
        self.role
            .leader_mut()
            .expect("leader state exists while leader")
    }

    fn append_entry(&mut self, kind: EntryKind, data: Bytes) -> LogIndex {
        let index = self.log.last_index().next();
        let entry = Entry {
            index,
            term: self.term,
            kind,
            data,
        };
        self.log.append_new(entry);
        self.leader_state().broadcast_wanted = true;
        index
    }

    fn check_can_propose(&self) -> Result<(), ProposeError> {
        let Some(leader) = self.role.leader() else {
            return Err(ProposeError::NotLeader {
                leader: self.leader_id,
            });
        };
        if let Some((to, _)) = leader.transfer {
            return Err(ProposeError::TransferInProgress { to });
        }
        let pending = self.log.last_index().0 - self.log.commit().0;
        if pending >= self.cfg.proposals_pending_max {
            return Err(ProposeError::TooManyPending {
                pending,
                limit: self.cfg.proposals_pending_max,
            });
        }
        Ok(())
    }

    pub(crate) fn propose(&mut self, data: Bytes) -> Result<LogIndex, ProposeError> {
        self.check_can_propose()?;
        let (len, max) = (data.len() as u64, self.cfg.entry_bytes_max);
        if len > max && !self.cfg.mutated(Mutation::AcceptOversizedEntries) {
            return Err(ProposeError::TooLarge { len, max });
        }
        Ok(self.append_entry(EntryKind::Normal, data))
    }

    /// Appends a membership change after checking that the previous one is applied and that
    /// this one is valid against the applied configuration (thesis 4.1, etcd).
    pub(crate) fn propose_conf_change(
        &mut self,
        cc: &ConfChange,
    ) -> Result<LogIndex, ProposeError> {
        self.check_can_propose()?;
        let pending = self.leader_state().pending_conf_index;
        if pending > self.applied {
            return Err(crate::raft::errors::ConfChangeError::ChangeInFlight {
                pending,
                applied: self.applied,
            }
            .into());
        }
        cc.apply_to(self.membership())?;
        let index = self.append_entry(EntryKind::ConfChange, cc.encode());
        self.leader_state().pending_conf_index = index;
        Ok(index)
    }

    pub(crate) fn tick_leader(&mut self) {
        self.leader_heard_at = Some(self.now);
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_ticks_min {
            self.election_elapsed = 0;
            if self.cfg.check_quorum && !self.tracker.quorum_active(self.id) {
                tracing::debug!(id = %self.id, term = %self.term, "check quorum failed");
                self.become_follower(self.term, None);
                return;
            }
        }
        let ticks_max = self.cfg.election_ticks_min;
        let leader = self.leader_state();
        if let Some((to, elapsed)) = leader.transfer.as_mut() {
            *elapsed += 1;
            if *elapsed >= ticks_max {
                tracing::debug!(to = %to, "leadership transfer timed out");
                leader.transfer = None;
            }
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
        // An automatic leave refused at apply time (a transfer ran) is retried here.
        self.auto_leave_joint();
    }

    /// Our own persistence advanced: we count toward a quorum only for durable entries.
    pub(crate) fn on_self_persisted(&mut self) {
        if self.role() != Role::Leader {
            return;
        }
        let persisted = self.log.persisted();
        let me = self.id;
        let updated = self
            .tracker
            .progress
            .get_mut(&me)
            .is_some_and(|p| p.maybe_update(persisted));
        if updated && self.maybe_commit() {
            self.leader_state().broadcast_wanted = true;
        }
    }

    /// Advances commit to what a quorum holds durably, but only through an entry of this
    /// term ([`rules::commits_by_counting`]). Returns whether commit advanced.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let index = self.tracker.committed();
        if index <= self.log.commit() {
            return false;
        }
        let entry_term = self.log.term(index);
        let own_term = entry_term == Some(self.term);
        let off = self.mutated(Mutation::CountOldTermTowardCommit);
        if !rules::commits_by_counting(entry_term, self.term, off) {
            return false;
        }
        self.log.commit_to(index);
        if own_term && !self.leader_state().own_term_committed {
            self.leader_state().own_term_committed = true;
            self.release_waiting_reads();
        }
        true
    }

    pub(crate) fn handle_append_response(
        &mut self,
        from: NodeId,
        index: LogIndex,
        reject: Option<RejectHint>,
        round: u64,
    ) {
        if self.role() != Role::Leader {
            return;
        }
        self.note_ack(from, round);
        match reject {
            Some(hint) => self.handle_reject(from, index, hint),
            None => self.handle_accept(from, index),
        }
        self.advance_reads();
    }

    fn handle_reject(&mut self, from: NodeId, rejected: LogIndex, hint: RejectHint) {
        // Skip the follower's whole conflicting term at once (etcd findConflictByTerm).
        let probe = self.log.find_conflict_by_term(hint.index, hint.term);
        let Some(pr) = self.tracker.progress.get_mut(&from) else {
            return;
        };
        if pr.maybe_decr_to(rejected, probe) {
            self.send_append(from, true);
        }
    }

    fn handle_accept(&mut self, from: NodeId, index: LogIndex) {
        let first = self.log.first_index();
        let Some(pr) = self.tracker.progress.get_mut(&from) else {
            return;
        };
        let was_paused = pr.is_paused();
        if !pr.maybe_update(index) {
            if was_paused && !pr.is_paused() {
                self.send_append(from, false);
            }
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot(_) if pr.match_index.next() >= first => {
                pr.become_probe();
                pr.become_replicate();
            }
            _ => {}
        }
        if self.maybe_commit() {
            // Batched: one commit update per follower per Ready, at `send_batched`.
            self.leader_state().broadcast_wanted = true;
        }
        self.send_append(from, false);
        self.maybe_finish_transfer(from);
    }

    pub(crate) fn handle_heartbeat_response(&mut self, from: NodeId, round: u64) {
        if self.role() != Role::Leader {
            return;
        }
        self.note_ack(from, round);
        let last = self.log.last_index();
        if let Some(pr) = self.tracker.progress.get_mut(&from) {
            pr.probe_sent = false;
            // The heartbeat left after our last append yet match lags: appends were lost (or
            // overtaken, in which case the resend is a harmless duplicate). Resend from match.
            let lost = pr.match_index < last && round > pr.sent_round;
            if lost && pr.state == ProgressState::Replicate {
                pr.become_probe();
            }
            if pr.match_index < last {
                self.send_append(from, false);
            }
        }
        self.advance_reads();
    }

    fn note_ack(&mut self, from: NodeId, round: u64) {
        if let Some(pr) = self.tracker.progress.get_mut(&from) {
            pr.recent_active = true;
            pr.acked_round = pr.acked_round.max(round);
        }
    }

    pub(crate) fn report_snapshot(&mut self, to: NodeId, ok: bool) {
        let Some(pr) = self.tracker.progress.get_mut(&to) else {
            return;
        };
        if let ProgressState::Snapshot(_) = pr.state {
            if !ok {
                // Retry from what the follower is known to hold.
                pr.state = ProgressState::Probe;
            }
            pr.become_probe();
            // On success wait for the follower's answer before sending more (etcd does too).
            pr.probe_sent = ok;
        }
    }

    pub(crate) fn report_unreachable(&mut self, to: NodeId) {
        if let Some(pr) = self.tracker.progress.get_mut(&to) {
            if pr.state == ProgressState::Replicate {
                pr.become_probe();
            }
        }
    }

    /// Starts a leadership transfer (thesis 3.10): drop the lease, stop proposals, catch the
    /// target up, then send it TimeoutNow. Aborted after an election timeout.
    pub(crate) fn transfer_leadership(&mut self, to: NodeId) -> Result<(), TransferError> {
        let Some(leader) = self.role.leader_mut() else {
            return Err(TransferError::NotLeader {
                leader: self.leader_id,
            });
        };
        if let Some((current, _)) = leader.transfer {
            return Err(TransferError::InProgress { to: current });
        }
        if to == self.id {
            return Err(TransferError::ToSelf);
        }
        if !self.tracker.membership.is_voter(to) {
            return Err(TransferError::NotVoter { to });
        }
        leader.reads.drop_lease();
        leader.transfer = Some((to, 0));
        if !self.maybe_finish_transfer(to) {
            self.send_append(to, true);
        }
        Ok(())
    }

    /// Sends TimeoutNow once the target holds our whole log. Returns whether it was sent.
    fn maybe_finish_transfer(&mut self, from: NodeId) -> bool {
        let target = self.role.leader().and_then(|l| l.transfer).map(|t| t.0);
        let caught_up = self
            .tracker
            .progress
            .get(&from)
            .is_some_and(|p| p.match_index == self.log.last_index());
        if target == Some(from) && caught_up {
            let leader = self.leader_state();
            leader.timeout_now_sent = true;
            leader.reads.drop_lease();
            self.send(from, MessageBody::TimeoutNow);
            return true;
        }
        false
    }
}
