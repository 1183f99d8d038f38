//! What a core starts from: the runtime's durable state.

use crate::raft::errors::ConfigError;
use crate::raft::membership::Membership;
use crate::raft::message::SnapshotMeta;
use crate::raft::types::{Entry, HardState, LogIndex, NodeId};

/// What the core is restarted (or bootstrapped) from: the runtime's durable state.
#[derive(Clone, Debug, Default)]
pub struct InitialState {
    /// Last persisted hard state.
    pub hard_state: HardState,
    /// Last snapshot. A fresh cluster uses a snapshot at index 0, term 0 carrying the initial
    /// membership (see [`InitialState::bootstrap`]); a node added later starts from that same
    /// bootstrap state (its log fills from the leader).
    pub snapshot: SnapshotMeta,
    /// Durable entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
    /// Index the state machine has applied (at least `snapshot.index`).
    pub applied: LogIndex,
}

impl InitialState {
    /// A fresh node of a cluster whose initial voters are `voters`.
    #[must_use]
    pub fn bootstrap(voters: impl IntoIterator<Item = NodeId>) -> Self {
        InitialState {
            snapshot: SnapshotMeta {
                membership: Membership::with_voters(voters),
                ..SnapshotMeta::default()
            },
            ..InitialState::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |reason| Err(ConfigError::InitialState { reason });
        let snap = self.snapshot.index;
        let last = LogIndex(snap.0 + self.entries.len() as u64);
        let contiguous = self
            .entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.index.0 == snap.0 + 1 + i as u64);
        if !contiguous {
            return bad("entries not contiguous after the snapshot");
        }
        // A commit below the snapshot is clamped up to it (a snapshot is committed by
        // definition; the stored hard state may lag an installed snapshot).
        if self.hard_state.commit > last {
            return bad("commit above the last index");
        }
        if self.applied < snap || self.applied > self.hard_state.commit.max(snap) {
            return bad("applied outside [snapshot, commit]");
        }
        if self.snapshot.membership.voters.is_empty() {
            return bad("membership has no voters");
        }
        Ok(())
    }
}
