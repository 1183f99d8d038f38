//! Safety properties checked after every simulation step, one property per file.
//!
//! The simulator keeps a [`ClusterView`]: a mirror of every node's log (what the core has told
//! the runtime to store, persisted or not), its durable state, commit index and membership,
//! plus the [`Observation`]s of the step just taken. Each property keeps whatever history it
//! needs between steps and returns a readable [`Violation`] when broken.

pub mod acked_writes;
pub mod commit_monotonic;
pub mod election_safety;
pub mod leader_completeness;
pub mod log_matching;
pub mod state_machine_safety;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What the mirror knows of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRecord {
    /// Term of the entry.
    pub term: u64,
    /// Digest of kind and data.
    pub digest: u64,
}

/// A node's log as the simulator mirrors it: a snapshot prefix and the entries after it.
///
/// Invariant: `entries[i]` is the entry at index `snapshot_index + 1 + i`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogMirror {
    /// Last index covered by the snapshot (0: none).
    pub snapshot_index: u64,
    /// Term at `snapshot_index`.
    pub snapshot_term: u64,
    /// Entries after the snapshot.
    pub entries: Vec<EntryRecord>,
}

impl LogMirror {
    /// Index of the last entry (the snapshot index when the suffix is empty).
    pub fn last_index(&self) -> u64 {
        self.snapshot_index + self.entries.len() as u64
    }

    /// The entry at `index`, when it is in the suffix.
    pub fn entry(&self, index: u64) -> Option<EntryRecord> {
        if index <= self.snapshot_index {
            return None;
        }
        self.entries
            .get((index - self.snapshot_index - 1) as usize)
            .copied()
    }

    /// The term at `index`, when known (the snapshot's own index included; 0 at index 0).
    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// Writes `entries` from `first_index` on, dropping any suffix from there first (the
    /// contract of a Ready's entries). Returns the number of entries dropped.
    pub fn append(&mut self, first_index: u64, entries: &[EntryRecord]) -> usize {
        assert!(
            first_index > self.snapshot_index && first_index <= self.last_index() + 1,
            "append at {first_index} leaves a gap or rewrites the snapshot (snapshot {}, last {})",
            self.snapshot_index,
            self.last_index()
        );
        let keep = (first_index - self.snapshot_index - 1) as usize;
        let dropped = self.entries.len() - keep;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
        dropped
    }

    /// Drops the entries up to `index` (covered by a snapshot taken at `index` with `term`).
    pub fn compact(&mut self, index: u64, term: u64) {
        if index <= self.snapshot_index {
            return;
        }
        if index >= self.last_index() {
            self.entries.clear();
        } else {
            let drop = (index - self.snapshot_index) as usize;
            self.entries.drain(..drop);
        }
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    /// Replaces everything with a received snapshot, keeping the suffix after it if it agrees
    /// on the term at the snapshot index (Raft paper figure 13, step 6).
    pub fn install_snapshot(&mut self, index: u64, term: u64) {
        if self.term_at(index) == Some(term) && index >= self.snapshot_index {
            self.compact(index, term);
        } else {
            self.entries.clear();
            self.snapshot_index = index;
            self.snapshot_term = term;
        }
    }
}

/// Role as far as the invariants care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleView {
    /// Follower or learner.
    Follower,
    /// Pre-candidate or candidate.
    Candidate,
    /// Leader.
    Leader,
}

/// Durable state of one node on its simulated disk.
#[derive(Clone, Copy, Debug)]
pub struct DurableView<'a> {
    /// Persisted term.
    pub term: u64,
    /// Persisted commit index.
    pub commit: u64,
    /// Persisted log (snapshot prefix and entries).
    pub log: &'a LogMirror,
}

/// A membership configuration in node ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigView {
    /// Incoming (or only) voters.
    pub voters: BTreeSet<u64>,
    /// Outgoing voters while joint, else empty.
    pub voters_outgoing: BTreeSet<u64>,
}

/// One node as the invariants see it.
#[derive(Clone, Debug)]
pub struct NodeView<'a> {
    /// Node id.
    pub id: u64,
    /// False while crashed (its volatile fields are then stale and ignored).
    pub alive: bool,
    /// False once removed from the cluster and stopped for good.
    pub member: bool,
    /// Times restarted.
    pub incarnation: u64,
    /// Role reported by the core.
    pub role: RoleView,
    /// Current term reported by the core.
    pub term: u64,
    /// Commit index reported by the core.
    pub commit: u64,
    /// Highest index applied to the state machine.
    pub applied: u64,
    /// The in-memory log (persisted or not).
    pub log: &'a LogMirror,
    /// What survives a crash.
    pub durable: DurableView<'a>,
}

/// A write acknowledged to its client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckedWrite {
    /// Log index of the write.
    pub index: u64,
    /// Term of the entry.
    pub term: u64,
    /// Digest of the entry.
    pub digest: u64,
    /// Key and value, for reports.
    pub key: u64,
    /// Value written.
    pub value: u64,
    /// Every membership in force at some point before the acknowledgement. The leader that
    /// committed the write did so under one of them (its applied membership then), so a
    /// majority of each voter set of that one had it durably, and a committed entry is never
    /// lost from a disk again. Without membership changes this is just the initial voters.
    pub configs: Vec<ConfigView>,
}

/// Something that happened during the step just taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// `node` became leader of `term`.
    BecameLeader {
        /// Node id.
        node: u64,
        /// Its term.
        term: u64,
    },
    /// `node` wrote `count` entries from `first_index` into its log mirror (after dropping any
    /// conflicting suffix).
    Appended {
        /// Node id.
        node: u64,
        /// Index of the first entry written.
        first_index: u64,
        /// Number of entries written.
        count: u64,
    },
    /// `node` applied the entry at `index`.
    Applied {
        /// Node id.
        node: u64,
        /// Index applied.
        index: u64,
        /// Term of the entry.
        term: u64,
        /// Digest of the entry.
        digest: u64,
    },
    /// `node` installed a snapshot into its state machine.
    SnapshotInstalled {
        /// Node id.
        node: u64,
        /// Index covered.
        index: u64,
        /// The log already held the snapshot's entry and entries after it, some of them not
        /// yet durable: the race of a snapshot with appends whose acknowledgements are
        /// still queued behind their write (issue 13 item 0).
        over_held_suffix: bool,
    },
    /// `node` crashed, losing everything not persisted.
    Crashed {
        /// Node id.
        node: u64,
    },
    /// `node` restarted from its durable state.
    Restarted {
        /// Node id.
        node: u64,
    },
    /// A durable log lost entries (suffix truncation), or membership changed: properties that
    /// count durable copies rescan.
    DurableShrunkOrConfigChanged,
}

/// Everything the properties look at after a step.
#[derive(Clone, Debug)]
pub struct ClusterView<'a> {
    /// Step number (for reports).
    pub step: u64,
    /// True (simulated) time in nanoseconds.
    pub now: u64,
    /// Every node ever started, by id.
    pub nodes: BTreeMap<u64, NodeView<'a>>,
    /// What happened in this step.
    pub observations: &'a [Observation],
    /// Writes acknowledged to clients so far, in acknowledgement order.
    pub acked_writes: &'a [AckedWrite],
}

/// A broken safety property.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The property's name.
    pub property: &'static str,
    /// What exactly is wrong.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invariant `{}` violated: {}", self.property, self.detail)
    }
}

/// A safety property checked after every step.
pub trait Invariant {
    /// Short name used in reports.
    fn name(&self) -> &'static str;
    /// Checks the property against the state after a step.
    fn check(&mut self, view: &ClusterView<'_>) -> Result<(), Violation>;
}

/// All properties, in the order they are checked.
pub fn all() -> Vec<Box<dyn Invariant>> {
    vec![
        Box::new(election_safety::ElectionSafety::default()),
        Box::new(log_matching::LogMatching::default()),
        Box::new(state_machine_safety::StateMachineSafety::default()),
        Box::new(commit_monotonic::CommitMonotonic::default()),
        Box::new(leader_completeness::LeaderCompleteness::default()),
        Box::new(acked_writes::AckedWritesDurable::default()),
    ]
}

/// Builds a [`Violation`] of `property`.
pub(crate) fn violation(property: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { property, detail })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(term: u64) -> EntryRecord {
        EntryRecord { term, digest: term }
    }

    #[test]
    fn log_mirror_append_truncate_compact() {
        let mut log = LogMirror::default();
        assert_eq!(log.append(1, &[rec(1), rec(1), rec(2)]), 0);
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.append(3, &[rec(3)]), 1);
        assert_eq!(log.term_at(3), Some(3));
        log.compact(2, 1);
        assert_eq!(log.term_at(2), Some(1));
        assert_eq!(log.entry(2), None);
        assert_eq!(log.entry(3), Some(rec(3)));
        log.install_snapshot(10, 4);
        assert_eq!((log.last_index(), log.term_at(10)), (10, Some(4)));
    }
}
