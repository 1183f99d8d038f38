//! Completions from the runtime: applied entries (membership changes take effect here) and
//! snapshots created.
//!
//! Membership changes take effect when applied (as in etcd), not when appended (thesis 4.1).
//! Why: an applied change is committed, so it is never rolled back by a log truncation, and
//! every node switches at the same log position; the cost is that the one-change-in-flight
//! rule must wait for the apply, which the leader enforces with `pending_conf_index`.

use crate::raft::core::Core;
use crate::raft::errors::{SnapshotError, StepError};
use crate::raft::membership::{ConfChange, Membership};
use crate::raft::message::SnapshotMeta;
use crate::raft::tracker::ProgressState;
use crate::raft::types::{EntryKind, LogIndex, Role};

impl Core {
    /// The state machine applied everything up to `index`.
    pub(crate) fn on_applied(&mut self, index: LogIndex) -> Result<(), StepError> {
        assert!(
            index <= self.handed_out,
            "applied {index} beyond the entries handed out ({})",
            self.handed_out
        );
        if index <= self.applied {
            return Ok(());
        }
        let changed = self.apply_conf_changes(index)?;
        self.applied = index;
        self.after_apply(changed);
        Ok(())
    }

    /// Applies membership changes in `(applied, to]`; returns whether the membership changed.
    pub(crate) fn apply_conf_changes(&mut self, to: LogIndex) -> Result<bool, StepError> {
        let from = self.applied.next();
        let changes: Vec<(LogIndex, bytes::Bytes)> = self
            .log
            .range(from, to.min(self.log.last_index()))
            .iter()
            .filter(|e| e.kind == EntryKind::ConfChange)
            .map(|e| (e.index, e.data.clone()))
            .collect();
        let mut changed = false;
        for (index, data) in changes {
            let cc = ConfChange::decode(&data)
                .map_err(|source| StepError::BadConfChange { index, source })?;
            // Every node validates the same change against the same configuration, so a
            // refusal is deterministic: all skip it alike.
            match cc.apply_to(self.membership()) {
                Ok(m) => {
                    self.switch_membership(index, m);
                    changed = true;
                }
                Err(e) => tracing::warn!(%index, error = %e, "skipping invalid conf change"),
            }
        }
        Ok(changed)
    }

    fn switch_membership(&mut self, index: LogIndex, m: Membership) {
        tracing::debug!(id = %self.id, %index, membership = ?m, "membership applied");
        let next = self.log.last_index().next();
        self.tracker.set_membership(m.clone(), next);
        if let Some((last, _)) = self.conf_history.last() {
            assert!(index > *last, "invariant: conf history indexes increase");
        }
        self.conf_history.push((index, m));
    }

    /// Leader duties after an apply: step down if removed, leave an automatic joint
    /// configuration, recompute commit under the new quorum.
    fn after_apply(&mut self, changed: bool) {
        if self.role() != Role::Leader {
            return;
        }
        if !self.membership().is_voter(self.id) {
            tracing::debug!(id = %self.id, "removed from the voters: stepping down");
            self.become_follower(self.term, None);
            return;
        }
        self.auto_leave_joint();
        if changed {
            // New members need the log; the quorum may have changed.
            self.maybe_commit();
            self.broadcast_append();
        }
    }

    /// A leader in an automatic joint configuration proposes to leave it once the change
    /// that entered it is applied. Refused while a transfer runs or too many proposals are
    /// pending; so this runs on every tick too, not only after an apply (issue 13).
    pub(crate) fn auto_leave_joint(&mut self) {
        let Some(leader) = self.role.leader() else {
            return;
        };
        let auto_leave = self.membership().is_joint() && self.membership().auto_leave;
        if auto_leave && leader.pending_conf_index <= self.applied {
            if let Err(e) = self.propose_conf_change(&ConfChange::Leave) {
                tracing::debug!(error = %e, "automatic leave postponed");
            }
        }
    }

    /// The runtime created a snapshot at `index` (applied). Records it (it is what lagging
    /// followers get) and compacts the log up to it, except that a leader keeps the entries
    /// that followers in probe or replicate state still need, if they are at most
    /// `log_retain_entries_max` behind: a healthy follower a few entries behind should not
    /// need a snapshot. Returns the metadata to store with the data.
    pub(crate) fn on_snapshot_created(
        &mut self,
        index: LogIndex,
    ) -> Result<SnapshotMeta, SnapshotError> {
        if index > self.applied {
            return Err(SnapshotError::NotApplied {
                index,
                applied: self.applied,
            });
        }
        if index <= self.snapshot.index {
            return Err(SnapshotError::Stale {
                index,
                current: self.snapshot.index,
            });
        }
        let term = self
            .log
            .term(index)
            .expect("an index above the latest snapshot is in the log");
        let meta = SnapshotMeta {
            index,
            term,
            membership: self.membership_at(index),
        };
        self.snapshot = meta.clone();
        let target = self.compaction_target(index);
        self.compact_log(target);
        Ok(meta)
    }

    /// Drops the log up to `index`, which must be covered by the latest snapshot.
    pub(crate) fn compact_to(&mut self, index: LogIndex) -> Result<(), SnapshotError> {
        if index > self.snapshot.index {
            return Err(SnapshotError::NotSnapshotted {
                index,
                snapshot: self.snapshot.index,
            });
        }
        self.compact_log(index);
        Ok(())
    }

    fn compaction_target(&self, index: LogIndex) -> LogIndex {
        if self.role() != Role::Leader {
            return index;
        }
        let retain = self.cfg.log_retain_entries_max;
        let needed = self
            .tracker
            .progress
            .iter()
            .filter(|(id, p)| **id != self.id && !matches!(p.state, ProgressState::Snapshot(_)))
            .map(|(_, p)| p.match_index)
            .filter(|m| *m < index && index.0 - m.0 <= retain)
            .min();
        needed.map_or(index, |m| m.max(self.log.snapshot_index()))
    }

    fn compact_log(&mut self, to: LogIndex) {
        if to <= self.log.snapshot_index() {
            return;
        }
        let membership = self.membership_at(to);
        self.log.compact(to);
        self.conf_history.retain(|(i, _)| *i > to);
        self.conf_history.insert(0, (to, membership));
    }

    fn membership_at(&self, index: LogIndex) -> Membership {
        self.conf_history
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map(|(_, m)| m.clone())
            .expect("conf history starts at the snapshot, below any compaction index")
    }
}
