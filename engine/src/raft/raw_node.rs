//! The public handle on the core.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::raft::config::{Config, Mutation};
use crate::raft::core::Core;
use crate::raft::errors::{
    ConfigError, ProposeError, ReadError, SnapshotError, StepError, TransferError,
};
use crate::raft::initial::InitialState;
use crate::raft::membership::{ConfChange, Membership};
use crate::raft::message::{Message, SnapshotMeta};
use crate::raft::ready::{Ready, ReadyRecord};
use crate::raft::status::{progress_status, ProgressStatus, Status};
use crate::raft::types::{
    Entry, HardState, Instant, LogIndex, NodeId, ReadId, ReadMode, Role, SoftState, Term,
};

/// The Raft core behind a thin, stable API. See the [module documentation](crate::raft) for
/// the loop a runtime must run.
#[derive(Debug)]
pub struct RawNode {
    core: Core,
    number: u64,
    records: VecDeque<ReadyRecord>,
    emitted_hard_state: HardState,
    emitted_soft_state: SoftState,
}

impl RawNode {
    /// A core restarted from `initial`, its election jitter drawn from `seed`. `now` is the
    /// runtime's clock at start: a node restarted with a term > 0 refuses votes for one minimum
    /// election timeout after it (it may have acknowledged a leader's lease before a crash).
    pub fn new(
        config: Config,
        initial: InitialState,
        seed: u64,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let hard = initial.hard_state;
        let core = Core::new(config, initial, seed, now)?;
        let soft = core.soft_state();
        Ok(RawNode {
            core,
            number: 0,
            records: VecDeque::new(),
            emitted_hard_state: HardState {
                commit: hard.commit,
                ..hard
            },
            emitted_soft_state: soft,
        })
    }

    /// One tick of the logical clock (elections, heartbeats, CheckQuorum, transfer timeout).
    pub fn tick(&mut self, now: Instant) {
        self.core.tick(now);
    }

    /// Starts an election now, as if the election timer fired (tests, operator action).
    pub fn campaign(&mut self, now: Instant) {
        self.core.observe_now(now);
        if self.core.role() != Role::Leader && self.core.membership().is_voter(self.core.id) {
            self.core.campaign(false);
        }
    }

    /// Consumes a message from a peer.
    pub fn step(&mut self, msg: Message, now: Instant) -> Result<(), StepError> {
        self.core.step(msg, now)
    }

    /// Appends `data` on the leader; returns its index. Entries proposed in one loop turn
    /// leave in shared AppendEntries at the next [`RawNode::ready`].
    pub fn propose(&mut self, data: Bytes) -> Result<LogIndex, ProposeError> {
        self.core.propose(data)
    }

    /// Appends a membership change on the leader. Refused while another is not yet applied.
    pub fn propose_conf_change(&mut self, change: &ConfChange) -> Result<LogIndex, ProposeError> {
        self.core.propose_conf_change(change)
    }

    /// Asks for a linearizable read; the answer comes in a later Ready's `read_states` (or
    /// `failed_reads`). A follower forwards it to the leader.
    pub fn read_index(
        &mut self,
        id: ReadId,
        mode: ReadMode,
        now: Instant,
    ) -> Result<(), ReadError> {
        self.core.observe_now(now);
        self.core.read_index(id, mode)
    }

    /// Starts a leadership transfer to `to`.
    pub fn transfer_leadership(&mut self, to: NodeId, now: Instant) -> Result<(), TransferError> {
        self.core.observe_now(now);
        self.core.transfer_leadership(to)
    }

    /// Whether [`RawNode::ready`] has anything.
    #[must_use]
    pub fn has_ready(&self) -> bool {
        let c = &self.core;
        c.log.has_unstable()
            || c.hard_state() != self.emitted_hard_state
            || c.soft_state() != self.emitted_soft_state
            || c.snapshot_to_install.is_some()
            || !c.msgs.is_empty()
            || !c.msgs_after_persist.is_empty()
            || c.log.commit().min(c.log.persisted()) > c.handed_out
            || !c.read_states.is_empty()
            || !c.failed_reads.is_empty()
            || c.send_batched_wanted()
    }

    /// The next batch of work. Every Ready must be acknowledged, in order, with
    /// [`RawNode::on_persisted`] once its writes are durable.
    pub fn ready(&mut self) -> Ready {
        // Compacted entries nobody took are freed here (see `take_compacted`).
        drop(self.core.log.take_compacted());
        self.core.send_batched();
        self.number += 1;
        let c = &mut self.core;
        let entries = c.log.take_unstable();
        let hard = c.hard_state();
        assert!(
            hard.term >= self.emitted_hard_state.term
                && hard.commit >= self.emitted_hard_state.commit,
            "invariant: term and commit never decrease"
        );
        let hard_state = (hard != self.emitted_hard_state).then_some(hard);
        self.emitted_hard_state = hard;
        let soft = c.soft_state();
        let soft_state = (soft != self.emitted_soft_state).then_some(soft);
        self.emitted_soft_state = soft;
        let apply_to = c.log.commit().min(c.log.persisted());
        let committed_entries = c.log.shared_range(c.handed_out.next(), apply_to);
        c.handed_out = c.handed_out.max(apply_to);
        self.records.push_back(ReadyRecord {
            number: self.number,
            rewrites: c.log.rewrites(),
            last_entry: entries.last().map(|e| (e.index, e.term)),
            term_vote: hard_state.map(|h| (h.term, h.vote)),
        });
        Ready {
            number: self.number,
            soft_state,
            hard_state,
            entries,
            snapshot: c.snapshot_to_install.take(),
            messages: std::mem::take(&mut c.msgs),
            persisted_messages: std::mem::take(&mut c.msgs_after_persist),
            committed_entries,
            read_states: std::mem::take(&mut c.read_states),
            failed_reads: std::mem::take(&mut c.failed_reads),
        }
    }

    /// Every Ready up to `number` is durable (entries, hard state, snapshot).
    pub fn on_persisted(&mut self, number: u64, now: Instant) {
        assert!(
            number <= self.number,
            "on_persisted({number}) for a Ready never produced"
        );
        self.core.observe_now(now);
        while self.records.front().is_some_and(|r| r.number <= number) {
            let Some(rec) = self.records.pop_front() else {
                break;
            };
            if let Some((index, term)) = rec.last_entry {
                self.confirm(rec.rewrites, index, term);
            }
            if let Some(tv) = rec.term_vote {
                self.core.durable_term_vote = tv;
            }
        }
        let oldest = self
            .records
            .front()
            .map_or(self.core.log.rewrites(), |r| r.rewrites);
        self.core.log.forget_cuts(oldest);
        self.core.on_self_persisted();
    }

    /// A Ready whose last entry was (`index`, `term`) is durable: its entries count as
    /// persisted as far as the log still holds them (below any later truncation).
    fn confirm(&mut self, rewrites: u64, index: LogIndex, term: Term) {
        let log = &mut self.core.log;
        let upto = if self.core.cfg.mutated(Mutation::ConfirmReadyAcrossRewrite) {
            index
        } else {
            log.confirmable(rewrites, index)
        };
        let term = if upto == index {
            Some(term)
        } else {
            log.term(upto)
        };
        if let Some(term) = term {
            log.on_persisted(upto, term);
        }
    }

    /// The state machine applied every entry up to `index`.
    pub fn on_applied(&mut self, index: LogIndex) -> Result<(), StepError> {
        self.core.on_applied(index)
    }

    /// The runtime created a snapshot at `index` (at most applied): the core drops the log up to
    /// it and returns the metadata to store with the snapshot data.
    pub fn on_snapshot_created(&mut self, index: LogIndex) -> Result<SnapshotMeta, SnapshotError> {
        self.core.on_snapshot_created(index)
    }

    /// The entries the last compactions ([`RawNode::on_snapshot_created`],
    /// [`RawNode::compact_to`]) dropped from the in-memory log, so that the runtime can free
    /// them on another thread: freeing a large prefix is long enough to delay heartbeats.
    /// Those not taken are freed by the next [`RawNode::ready`].
    pub fn take_compacted(&mut self) -> Vec<Entry> {
        self.core.log.take_compacted()
    }

    /// The leader's runtime finished (or failed) streaming a snapshot to `to`.
    pub fn report_snapshot(&mut self, to: NodeId, ok: bool) {
        self.core.report_snapshot(to, ok);
    }

    /// The transport could not reach `to`: stop pipelining to it and probe.
    pub fn report_unreachable(&mut self, to: NodeId) {
        self.core.report_unreachable(to);
    }

    /// A snapshot of the core's state.
    #[must_use]
    pub fn status(&self) -> Status {
        let c = &self.core;
        let progress = if c.role() == Role::Leader {
            c.tracker
                .progress
                .iter()
                .map(|(id, p)| (*id, progress_status(p)))
                .collect()
        } else {
            BTreeMap::new()
        };
        let leader = c.role.leader();
        Status {
            id: c.id,
            term: c.term,
            vote: c.vote,
            role: c.role(),
            leader: c.leader_id,
            commit: c.log.commit(),
            applied: c.applied,
            persisted: c.log.persisted(),
            first_index: c.log.first_index(),
            last_index: c.log.last_index(),
            membership: c.membership().clone(),
            progress,
            transferee: leader.and_then(|l| l.transfer.map(|t| t.0)),
            lease_until: leader.and_then(|l| l.reads.lease_until()),
        }
    }

    /// Drops the in-memory log up to `index` (at most the latest snapshot), for entries a
    /// leader kept for followers at `on_snapshot_created`.
    pub fn compact_to(&mut self, index: LogIndex) -> Result<(), SnapshotError> {
        self.core.compact_to(index)
    }

    /// Current term. An entry accepted by [`RawNode::propose`] has this term.
    #[must_use]
    pub fn term(&self) -> Term {
        self.core.term
    }

    /// Current role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.core.role()
    }

    /// Known leader of the current term.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.core.leader_id
    }

    /// Commit index.
    #[must_use]
    pub fn commit(&self) -> LogIndex {
        self.core.log.commit()
    }

    /// The applied membership, without cloning.
    #[must_use]
    pub fn membership(&self) -> &Membership {
        self.core.membership()
    }

    /// A received snapshot the core accepted, which the next Ready hands to the runtime to
    /// install. A runtime that received several in one loop turn keeps the data of this one.
    #[must_use]
    pub fn pending_snapshot(&self) -> Option<&SnapshotMeta> {
        self.core.snapshot_to_install.as_ref()
    }

    /// Index of the latest snapshot (created or installed).
    #[must_use]
    pub fn snapshot_index(&self) -> LogIndex {
        self.core.snapshot.index
    }

    /// One follower's progress, if leader and `id` is a member.
    #[must_use]
    pub fn progress(&self, id: NodeId) -> Option<ProgressStatus> {
        if self.core.role() != Role::Leader {
            return None;
        }
        self.core.tracker.progress.get(&id).map(progress_status)
    }

    /// The entry at `index` if held in memory (tests and invariant checks).
    #[must_use]
    pub fn entry(&self, index: LogIndex) -> Option<&crate::raft::types::Entry> {
        self.core.log.entry(index)
    }

    /// The term at `index` if known.
    #[must_use]
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.core.log.term(index)
    }

    /// The configuration this core was built with.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.core.cfg
    }
}
