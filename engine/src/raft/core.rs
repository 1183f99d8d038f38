//! The state shared by every role, and the dispatch of inputs. Role logic lives in `role/`.

use crate::raft::config::{Config, Mutation};
use crate::raft::errors::{ConfigError, ReadError, StepError};
use crate::raft::initial::InitialState;
use crate::raft::leader_state::RoleState;
use crate::raft::log::RaftLog;
use crate::raft::membership::Membership;
use crate::raft::message::{Message, MessageBody, SnapshotMeta};
use crate::raft::read_tracker::{ForwardIds, ForwardedRead};
use crate::raft::rules;
use crate::raft::tracker::ProgressTracker;
use crate::raft::types::{
    HardState, Instant, LogIndex, NodeId, ReadId, ReadState, Role, SoftState, Term,
};
use ringraft_wal::util::rng::Rng;

/// The Raft state machine.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) cfg: Config,
    pub(crate) id: NodeId,
    /// Invariant: never decreases.
    pub(crate) term: Term,
    /// Invariant: set at most once per term.
    pub(crate) vote: Option<NodeId>,
    /// The role, carrying the leader-only state.
    pub(crate) role: RoleState,
    pub(crate) leader_id: Option<NodeId>,
    pub(crate) log: RaftLog,
    /// Progress and the applied membership.
    pub(crate) tracker: ProgressTracker,
    /// Memberships applied since the snapshot, for snapshot metadata. First element is the
    /// snapshot's. Invariant: indexes increase.
    pub(crate) conf_history: Vec<(LogIndex, Membership)>,
    /// Invariant: `applied <= handed_out <= min(commit, persisted)`.
    pub(crate) applied: LogIndex,
    /// Last index handed out in `committed_entries`.
    pub(crate) handed_out: LogIndex,
    pub(crate) snapshot: SnapshotMeta,
    /// A received snapshot for the next Ready.
    pub(crate) snapshot_to_install: Option<SnapshotMeta>,
    pub(crate) rng: Rng,
    pub(crate) election_elapsed: u64,
    pub(crate) heartbeat_elapsed: u64,
    pub(crate) randomized_timeout: u64,
    /// When a live leader (or, for a leader, itself) was last known; votes are refused within
    /// `election_timeout_min` of it (leader stickiness). Set at boot too: a restarted node may
    /// have acknowledged a leader's lease just before it crashed (a node that never had a
    /// term cannot have).
    pub(crate) leader_heard_at: Option<Instant>,
    /// Latest `now` passed in. Invariant: never decreases.
    pub(crate) now: Instant,
    pub(crate) msgs: Vec<Message>,
    pub(crate) msgs_after_persist: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) failed_reads: Vec<(ReadId, ReadError)>,
    /// Reads forwarded to the leader. Failed when the leader changes or after an election
    /// timeout (the request or answer may be lost).
    /// Invariant: at most `reads_pending_max` entries.
    pub(crate) forwarded_reads: Vec<ForwardedRead>,
    /// Wire ids of forwarded reads, unique across incarnations.
    pub(crate) forward_ids: ForwardIds,
    /// Term and vote known durable.
    pub(crate) durable_term_vote: (Term, Option<NodeId>),
}

impl Core {
    pub(crate) fn new(
        cfg: Config,
        init: InitialState,
        seed: u64,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        init.validate()?;
        let snap = init.snapshot.clone();
        let log = RaftLog::new(snap.index, snap.term, init.entries, init.hard_state.commit);
        let tracker = ProgressTracker::new(
            snap.membership.clone(),
            cfg.inflight_msgs_max,
            cfg.inflight_bytes_max,
        );
        let mut core = Core {
            id: cfg.id,
            term: init.hard_state.term,
            vote: init.hard_state.vote,
            role: RoleState::Follower,
            leader_id: None,
            log,
            tracker,
            conf_history: vec![(snap.index, snap.membership.clone())],
            applied: snap.index,
            handed_out: snap.index,
            snapshot: snap,
            snapshot_to_install: None,
            rng: Rng::new(seed),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: 0,
            leader_heard_at: (init.hard_state.term > Term(0)).then_some(now),
            now,
            msgs: Vec::new(),
            msgs_after_persist: Vec::new(),
            read_states: Vec::new(),
            failed_reads: Vec::new(),
            forwarded_reads: Vec::new(),
            forward_ids: ForwardIds::new(seed),
            durable_term_vote: (init.hard_state.term, init.hard_state.vote),
            cfg,
        };
        core.reset_election_timer();
        // Membership changes up to `applied` took effect before the restart.
        core.apply_conf_changes(init.applied)
            .map_err(|_| ConfigError::InitialState {
                reason: "undecodable conf change entry",
            })?;
        core.handed_out = init.applied;
        core.applied = init.applied;
        Ok(core)
    }

    pub(crate) fn mutated(&self, m: Mutation) -> bool {
        self.cfg.mutated(m)
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.commit(),
        }
    }

    pub(crate) fn soft_state(&self) -> SoftState {
        SoftState {
            role: self.role(),
            leader: self.leader_id,
        }
    }

    /// The role, without its state.
    pub(crate) fn role(&self) -> Role {
        self.role.role()
    }

    pub(crate) fn membership(&self) -> &Membership {
        &self.tracker.membership
    }

    pub(crate) fn observe_now(&mut self, now: Instant) {
        // The runtime's clock is monotonic; tolerate equal values, never regressions.
        self.now = self.now.max(now);
    }

    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        // Uniform in [min, max): thesis 3.4's randomized election timeout. `below` on the
        // width (not `range`, which is inclusive) keeps the draws of earlier versions.
        let (min, max) = (self.cfg.election_ticks_min, self.cfg.election_ticks_max);
        assert!(
            min < max,
            "validated config: election_ticks_min < election_ticks_max"
        );
        self.randomized_timeout = min + self.rng.below(max - min);
    }

    /// Leader stickiness (thesis 4.2.3): a live leader was heard within the minimum election
    /// timeout, so this node neither grants a vote nor campaigns. This is not the leader's
    /// read lease (`role/reads.rs`), but what makes that lease safe: a leader's lease lasts
    /// less than the time its followers keep this promise.
    pub(crate) fn heard_live_leader(&self) -> bool {
        self.leader_heard_at
            .is_some_and(|t| self.now.nanos_since(t) < self.cfg.election_timeout_min_nanos())
    }

    /// Queues a message. Messages that report durable state (votes, append acks) and any
    /// message sent while our term or vote is not yet durable wait for persistence.
    pub(crate) fn send(&mut self, to: NodeId, body: MessageBody) {
        let msg = Message {
            from: self.id,
            to,
            term: self.term,
            body,
        };
        self.send_msg(msg);
    }

    pub(crate) fn send_msg(&mut self, msg: Message) {
        let is_ack = matches!(msg.body, MessageBody::AppendEntriesResponse { .. });
        let dirty = self.durable_term_vote != (self.term, self.vote);
        let wait = msg.body.needs_durability() || dirty;
        if wait && !(is_ack && self.mutated(Mutation::AckAppendBeforePersist)) {
            self.msgs_after_persist.push(msg);
            return;
        }
        if let MessageBody::AppendEntriesResponse {
            index,
            reject: None,
            ..
        } = msg.body
        {
            // Durability before acknowledgement (the mutation switch breaks exactly this).
            assert!(
                index <= self.log.persisted() || self.mutated(Mutation::AckAppendBeforePersist),
                "invariant: ack of {index} leaves only once persisted"
            );
        }
        self.msgs.push(msg);
    }

    /// Becomes follower of `leader` in `term` (raising the term clears the vote).
    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(term >= self.term, "invariant: term never decreases");
        // Forwarded reads were addressed to the old leader in the old term: it will not
        // answer them any more.
        let lost_leader = term > self.term || leader.is_none() || leader != self.leader_id;
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.end_leadership();
        if lost_leader {
            self.fail_forwarded_reads(ReadError::LeadershipLost);
        }
        self.leader_id = leader;
        if leader.is_some() {
            self.leader_heard_at = Some(self.now);
        }
        self.reset_election_timer();
    }

    /// Leaves the current role for follower; a leader's state goes with it, and the reads it
    /// still holds fail.
    fn end_leadership(&mut self) {
        let RoleState::Leader(mut state) = std::mem::replace(&mut self.role, RoleState::Follower)
        else {
            return;
        };
        for (id, from) in state.reads.drain_all() {
            match from {
                Some(f) => self.send(f, MessageBody::ReadIndexResponse { id, index: None }),
                None => self.failed_reads.push((id, ReadError::LeadershipLost)),
            }
        }
    }

    /// Entry point for a message from a peer.
    pub(crate) fn step(&mut self, m: Message, now: Instant) -> Result<(), StepError> {
        self.observe_now(now);
        if m.to != self.id {
            return Err(StepError::WrongRecipient {
                to: m.to,
                me: self.id,
            });
        }
        self.check_entry_sizes(&m)?;
        if m.term > self.term {
            if !self.step_higher_term(&m) {
                return Ok(());
            }
        } else if m.term < self.term {
            self.step_lower_term(&m);
            return Ok(());
        }
        self.dispatch(m);
        Ok(())
    }

    /// Refuses an AppendEntries whose entries this node's storage could not take.
    fn check_entry_sizes(&self, m: &Message) -> Result<(), StepError> {
        let MessageBody::AppendEntries { entries, .. } = &m.body else {
            return Ok(());
        };
        let max = self.cfg.entry_bytes_max;
        if self.cfg.mutated(Mutation::AcceptOversizedEntries) {
            return Ok(());
        }
        match entries.iter().find(|e| e.data.len() as u64 > max) {
            Some(e) => Err(StepError::EntryTooLarge {
                index: e.index,
                len: e.data.len() as u64,
                max,
            }),
            None => Ok(()),
        }
    }

    /// Handles a message from a higher term; returns whether to go on processing it.
    fn step_higher_term(&mut self, m: &Message) -> bool {
        match m.body {
            MessageBody::RequestVote {
                pre_vote, transfer, ..
            } => {
                let off = self.mutated(Mutation::VoteDespiteLeaderLease);
                if rules::ignores_vote_request(transfer, self.heard_live_leader(), off) {
                    return false;
                }
                if !pre_vote {
                    self.become_follower(m.term, None);
                }
            }
            MessageBody::RequestVoteResponse {
                pre_vote: true,
                granted: true,
            } => {}
            MessageBody::AppendEntries { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. } => self.become_follower(m.term, Some(m.from)),
            _ => self.become_follower(m.term, None),
        }
        true
    }

    /// A stale leader learns our term from the answer and steps down; a stale pre-candidate
    /// learns it is behind. Everything else from an old term is dropped.
    fn step_lower_term(&mut self, m: &Message) {
        match m.body {
            MessageBody::AppendEntries { .. } | MessageBody::Heartbeat { .. } => {
                self.send(m.from, MessageBody::HeartbeatResponse { round: 0 });
            }
            MessageBody::RequestVote { pre_vote: true, .. } => {
                let body = MessageBody::RequestVoteResponse {
                    pre_vote: true,
                    granted: false,
                };
                self.send(m.from, body);
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, m: Message) {
        let from = m.from;
        match m.body {
            MessageBody::RequestVote { .. } => self.handle_request_vote(m),
            MessageBody::RequestVoteResponse { pre_vote, granted } => {
                self.handle_vote_response(from, pre_vote, granted);
            }
            MessageBody::AppendEntries { .. } => self.handle_append(m),
            MessageBody::AppendEntriesResponse {
                index,
                reject,
                round,
            } => self.handle_append_response(from, index, reject, round),
            MessageBody::Heartbeat { commit, round } => self.handle_heartbeat(from, commit, round),
            MessageBody::HeartbeatResponse { round } => self.handle_heartbeat_response(from, round),
            MessageBody::InstallSnapshot { meta, round } => {
                self.handle_install_snapshot(from, meta, round);
            }
            MessageBody::TimeoutNow => self.handle_timeout_now(from),
            MessageBody::ReadIndex { id, mode } => self.handle_read_index(from, id, mode),
            MessageBody::ReadIndexResponse { id, index } => {
                self.handle_read_index_response(from, id, index);
            }
        }
    }

    /// One tick of the logical clock.
    pub(crate) fn tick(&mut self, now: Instant) {
        self.observe_now(now);
        self.tick_forwarded_reads();
        if self.role() == Role::Leader {
            self.tick_leader();
        } else {
            self.tick_election();
        }
    }
}
