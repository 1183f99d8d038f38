//! A simulated disk per node that keeps persisted and not yet persisted state apart.
//!
//! Each Ready's writes (hard state, entries, an installed snapshot) form one pending write that
//! completes at a time the simulator draws. Writes complete in order, so the durable state is
//! always a prefix of what was submitted (the WAL's contiguous durable index). A crash drops
//! every pending write; a restart rebuilds the node from [`DurableState`] alone.

use std::collections::VecDeque;
use std::sync::Arc;

use ringraft::raft::{Entry, HardState, SnapshotMeta};

use super::kv::KvSnapshot;
use super::node::record;
use crate::invariants::LogMirror;

/// A snapshot on disk: its metadata and the state machine image.
#[derive(Clone, Debug)]
pub struct StoredSnapshot {
    /// What the core knows of it.
    pub meta: SnapshotMeta,
    /// The state machine image.
    pub data: Arc<KvSnapshot>,
}

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub struct DurableState {
    /// Term, vote and commit.
    pub hard_state: HardState,
    /// Latest snapshot, if any.
    pub snapshot: Option<StoredSnapshot>,
    /// Entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
    /// The same log as records, for the invariants.
    pub mirror: LogMirror,
}

impl DurableState {
    /// Index of the snapshot (0: none).
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index.0)
    }

    /// Writes entries (truncating a conflicting suffix first, as a Ready requires).
    fn write_entries(&mut self, entries: &[Entry]) -> bool {
        let Some(first) = entries.first() else {
            return false;
        };
        let base = self.snapshot_index();
        let first = first.index.0;
        if first <= base {
            // Entries the snapshot already covers; keep only the part after it.
            let skip = (base + 1 - first) as usize;
            return self.write_entries_from(base + 1, entries.get(skip..).unwrap_or(&[]));
        }
        self.write_entries_from(first, entries)
    }

    fn write_entries_from(&mut self, first: u64, entries: &[Entry]) -> bool {
        if entries.is_empty() {
            return false;
        }
        let base = self.snapshot_index();
        let keep = (first - base - 1) as usize;
        assert!(
            keep <= self.entries.len(),
            "disk write at index {first} leaves a gap after {}",
            base + self.entries.len() as u64
        );
        let shrunk = keep < self.entries.len();
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
        let records: Vec<_> = entries.iter().map(record).collect();
        self.mirror.append(first, &records);
        debug_assert_eq!(self.mirror.last_index(), base + self.entries.len() as u64);
        shrunk
    }

    /// Stores a snapshot and drops the entries it covers (keeping a matching suffix). Returns
    /// whether entries after the snapshot were dropped too (a conflicting suffix).
    pub fn store_snapshot(&mut self, snap: StoredSnapshot) -> bool {
        let index = snap.meta.index.0;
        if index <= self.snapshot_index() {
            return false;
        }
        let base = self.snapshot_index();
        let matching = self
            .entries
            .get((index - base - 1) as usize)
            .is_some_and(|e| e.term == snap.meta.term);
        let last = base + self.entries.len() as u64;
        if matching {
            self.entries.drain(..(index - base) as usize);
        } else {
            self.entries.clear();
        }
        self.mirror.install_snapshot(index, snap.meta.term.0);
        self.snapshot = Some(snap);
        debug_assert_eq!(self.mirror.last_index(), index + self.entries.len() as u64);
        !matching && last > index
    }
}

/// One Ready's worth of writes.
#[derive(Clone, Debug)]
pub struct PendingWrite {
    /// The Ready's number, reported back through `on_persisted`.
    pub number: u64,
    /// Hard state to store.
    pub hard_state: Option<HardState>,
    /// Entries to store.
    pub entries: Vec<Entry>,
    /// Snapshot to store (a received one being installed).
    pub snapshot: Option<StoredSnapshot>,
    /// True time at which the write becomes durable.
    pub complete_at: u64,
}

/// The disk of one node.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    /// Persisted state.
    pub durable: DurableState,
    /// Submitted writes not yet durable, in submission order.
    pub pending: VecDeque<PendingWrite>,
}

impl SimDisk {
    /// Submits a write; it completes no earlier than the ones before it.
    pub fn submit(&mut self, mut write: PendingWrite) -> u64 {
        if let Some(last) = self.pending.back() {
            write.complete_at = write.complete_at.max(last.complete_at);
        }
        let at = write.complete_at;
        self.pending.push_back(write);
        at
    }

    /// Makes every pending write up to `number` durable, in order (writes complete in order,
    /// so a later completion implies the earlier ones; their own completion events may still
    /// be queued behind a paused process). Returns whether durable entries were truncated, or
    /// `None` if `number` is not pending (already durable, or lost in a crash).
    pub fn complete(&mut self, number: u64) -> Option<bool> {
        if !self.pending.iter().any(|w| w.number == number) {
            return None;
        }
        let mut shrunk = false;
        while self.pending.front().is_some_and(|w| w.number <= number) {
            let w = self.pending.pop_front().expect("front checked above");
            if let Some(snap) = w.snapshot {
                shrunk |= self.durable.store_snapshot(snap);
            }
            shrunk |= self.durable.write_entries(&w.entries);
            if let Some(hs) = w.hard_state {
                self.durable.hard_state = hs;
            }
        }
        Some(shrunk)
    }

    /// A crash: every write not yet durable is lost.
    pub fn crash(&mut self) {
        self.pending.clear();
    }
}
