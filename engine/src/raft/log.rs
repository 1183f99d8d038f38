//! The in-memory view of the log since the last snapshot, with its durability marks.

use std::collections::VecDeque;

use crate::raft::entries::Entries;
use crate::raft::message::RejectHint;
use crate::raft::types::{Entry, LogIndex, Term};

/// The log since the last snapshot.
///
/// Invariants (asserted where they change):
/// - `entries[i].index == snapshot_index + 1 + i` (contiguous);
/// - terms never decrease along the log;
/// - `snapshot_index <= commit <= last_index()`; `commit` never decreases;
/// - `persisted <= last_index()`, and the prefix up to `persisted` is durable as it is here;
/// - `snapshot_index < unstable_from <= last_index() + 1`.
#[derive(Debug)]
pub(crate) struct RaftLog {
    snapshot_index: LogIndex,
    snapshot_term: Term,
    entries: Vec<Entry>,
    /// First index not yet handed to the runtime in a Ready.
    unstable_from: LogIndex,
    /// Highest index durable on this node (reported by `on_persisted`).
    persisted: LogIndex,
    /// Highest index known committed.
    commit: LogIndex,
    /// The last shared run handed out or received. Invariant: every entry in it is in the log
    /// as it is here (dropped on truncation), so sub-runs of it can be handed out again without
    /// copying: one batch serves the WAL, every follower and the state machine.
    shared: Entries,
    /// Rewrites of the log so far: truncations of a conflicting suffix and discards by a
    /// snapshot. See [`RaftLog::confirmable`].
    rewrites: u64,
    /// `(rewrite number, first index it removed)` of the rewrites a pending Ready may predate;
    /// pruned by [`RaftLog::forget_cuts`].
    cuts: VecDeque<(u64, LogIndex)>,
    /// Entries dropped by [`RaftLog::compact`], kept so that the runtime can free them off
    /// its loop (freeing 100K entries took 80 ms of a loop turn under load; see
    /// `RawNode::take_compacted`).
    compacted: Vec<Entry>,
}

impl RaftLog {
    /// A log starting after a snapshot at (`index`, `term`), holding `entries` which are already
    /// durable (a restart).
    pub(crate) fn new(index: LogIndex, term: Term, entries: Vec<Entry>, commit: LogIndex) -> Self {
        let last = LogIndex(index.0 + entries.len() as u64);
        let log = RaftLog {
            snapshot_index: index,
            snapshot_term: term,
            entries,
            unstable_from: last.next(),
            persisted: last,
            commit: commit.max(index),
            shared: Entries::default(),
            rewrites: 0,
            cuts: VecDeque::new(),
            compacted: Vec::new(),
        };
        log.assert_contiguous();
        assert!(log.commit <= last, "invariant: commit <= last index");
        log
    }

    fn assert_contiguous(&self) {
        let mut prev = (self.snapshot_index, self.snapshot_term);
        for e in &self.entries {
            assert_eq!(e.index, prev.0.next(), "invariant: log is contiguous");
            assert!(e.term >= prev.1, "invariant: terms never decrease");
            prev = (e.index, e.term);
        }
    }

    pub(crate) fn snapshot_index(&self) -> LogIndex {
        self.snapshot_index
    }

    pub(crate) fn first_index(&self) -> LogIndex {
        self.snapshot_index.next()
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot_index.0 + self.entries.len() as u64)
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    pub(crate) fn commit(&self) -> LogIndex {
        self.commit
    }

    pub(crate) fn persisted(&self) -> LogIndex {
        self.persisted
    }

    /// Term at `index`, if known (at the snapshot boundary or in memory).
    pub(crate) fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let offset = index.0.checked_sub(self.first_index().0)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    fn offset(&self, index: LogIndex) -> usize {
        assert!(
            index >= self.first_index() && index <= self.last_index().next(),
            "index {index} outside log [{}, {}]",
            self.first_index(),
            self.last_index()
        );
        usize::try_from(index.0 - self.first_index().0).expect("log offset fits in usize")
    }

    /// Entries from `lo` on, at most `bytes_max` bytes but always at least one entry if any,
    /// with their total size in bytes.
    pub(crate) fn slice_from(&mut self, lo: LogIndex, bytes_max: u64) -> (Entries, u64) {
        if lo > self.last_index() {
            return (Entries::default(), 0);
        }
        let start = self.offset(lo);
        let mut bytes = 0u64;
        let mut end = start;
        for e in &self.entries[start..] {
            let size = e.size_bytes();
            if bytes + size > bytes_max && end > start {
                break;
            }
            bytes += size;
            end += 1;
        }
        let hi = LogIndex(lo.0 + (end - start) as u64 - 1);
        (self.shared_range(lo, hi), bytes)
    }

    /// Entries in `[lo, hi]` as a shared run, reusing the last one when it covers the range.
    pub(crate) fn shared_range(&mut self, lo: LogIndex, hi: LogIndex) -> Entries {
        if lo > hi {
            return Entries::default();
        }
        if let Some(sub) = self.shared.sub(lo, hi) {
            return sub;
        }
        let run = Entries::from_slice(self.range(lo, hi));
        self.shared = run.clone();
        run
    }

    /// Entries in `[lo, hi]`.
    pub(crate) fn range(&self, lo: LogIndex, hi: LogIndex) -> &[Entry] {
        if lo > hi {
            return &[];
        }
        &self.entries[self.offset(lo)..self.offset(hi.next())]
    }

    /// Raft's up-to-date check (paper 5.4.1): a candidate's log is at least as up to date.
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// The leader appends its own new entries.
    pub(crate) fn append_new(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index().next(),
            "invariant: contiguous"
        );
        assert!(
            entry.term >= self.last_term(),
            "invariant: terms never decrease"
        );
        self.entries.push(entry);
    }

    /// A follower appends entries after a matching `prev`; truncates a conflicting suffix.
    /// Returns the last index the leader's message proves matches (`prev + entries.len()`).
    pub(crate) fn append_after(&mut self, prev: LogIndex, entries: Entries) -> LogIndex {
        let last_new = LogIndex(prev.0 + entries.len() as u64);
        let mut skip = 0;
        for e in &entries {
            match self.term(e.index) {
                Some(t) if t == e.term => skip += 1,
                _ => break,
            }
        }
        if skip == entries.len() {
            return last_new;
        }
        let first_new = entries[skip].index;
        assert!(
            first_new > self.commit,
            "invariant: committed entry {first_new} never overwritten (commit {})",
            self.commit
        );
        if first_new <= self.last_index() {
            self.truncate_from(first_new);
        }
        self.extend(&entries[skip..]);
        // The whole run now matches the log: later Readys can hand it out without copying.
        self.shared = entries;
        last_new
    }

    /// Appends `entries`, checking contiguity and term order in one pass.
    fn extend(&mut self, entries: &[Entry]) {
        let (mut prev_index, mut prev_term) = (self.last_index(), self.last_term());
        for e in entries {
            assert_eq!(e.index, prev_index.next(), "invariant: contiguous");
            assert!(e.term >= prev_term, "invariant: terms never decrease");
            (prev_index, prev_term) = (e.index, e.term);
        }
        self.entries.extend_from_slice(entries);
    }

    fn truncate_from(&mut self, index: LogIndex) {
        self.shared = Entries::default();
        let offset = self.offset(index);
        self.entries.truncate(offset);
        self.unstable_from = self.unstable_from.min(index);
        self.persisted = self.persisted.min(index.prev());
        self.cut_from(index);
    }

    fn cut_from(&mut self, index: LogIndex) {
        self.rewrites += 1;
        self.cuts.push_back((self.rewrites, index));
    }

    /// The hint a follower sends when it rejects an append at (`prev_index`, `prev_term`).
    pub(crate) fn reject_hint(&self, prev_index: LogIndex, prev_term: Term) -> RejectHint {
        let index = self.find_conflict_by_term(prev_index.min(self.last_index()), prev_term);
        let term = self.term(index).unwrap_or(self.snapshot_term);
        RejectHint { index, term }
    }

    /// Largest index `<= index` whose term is `<= term` (etcd `findConflictByTerm`). Stops at
    /// the snapshot boundary, below which terms are unknown.
    pub(crate) fn find_conflict_by_term(&self, index: LogIndex, term: Term) -> LogIndex {
        let mut i = index.min(self.last_index());
        while i > self.snapshot_index {
            match self.term(i) {
                Some(t) if t <= term => return i,
                _ => i = i.prev(),
            }
        }
        i
    }

    /// Advances commit; never moves it back.
    pub(crate) fn commit_to(&mut self, index: LogIndex) -> bool {
        if index <= self.commit {
            return false;
        }
        assert!(
            index <= self.last_index(),
            "invariant: commit {index} <= last index {}",
            self.last_index()
        );
        self.commit = index;
        true
    }

    /// Entries not yet handed to the runtime; marks them handed.
    pub(crate) fn take_unstable(&mut self) -> Entries {
        let from = self.unstable_from;
        self.unstable_from = self.last_index().next();
        self.shared_range(from, self.last_index())
    }

    pub(crate) fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    /// The runtime made entries up to (`index`, `term`) durable. Ignored if the entry was since
    /// replaced (a later Ready carries the replacement).
    pub(crate) fn on_persisted(&mut self, index: LogIndex, term: Term) {
        if index <= self.persisted || self.term(index) != Some(term) {
            return;
        }
        assert!(
            index < self.unstable_from,
            "invariant: only entries handed out in a Ready are persisted"
        );
        self.persisted = index;
    }

    /// Drops entries up to `index` after the runtime created a snapshot there.
    pub(crate) fn compact(&mut self, index: LogIndex) -> Term {
        let term = self.term(index).expect("compaction index is in the log");
        assert!(
            index <= self.commit,
            "invariant: only committed entries compacted"
        );
        let n = self.offset(index.next());
        self.compacted.extend(self.entries.drain(..n));
        self.snapshot_index = index;
        self.snapshot_term = term;
        term
    }

    /// The rule breaker of [`crate::raft::Mutation::SnapshotOverNewerEntries`]: replaces the
    /// whole log by a snapshot at or below the commit index (commit goes back to it).
    pub(crate) fn restore_over_commit(&mut self, index: LogIndex, term: Term) {
        self.commit = LogIndex(index.0.saturating_sub(1)).min(self.commit);
        self.entries.clear();
        self.shared = Entries::default();
        self.snapshot_index = LogIndex(0);
        self.restore(index, term);
    }

    /// The entries compaction dropped since the last call, for their owner to free.
    pub(crate) fn take_compacted(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.compacted)
    }

    /// Installs a received snapshot at (`index`, `term`), Raft paper figure 13 step 6: if the
    /// log holds an entry with that index and term, only the prefix up to it goes and the
    /// entries after it stay (durable or not: an acknowledgement of them may already be on its
    /// way, issue 13 item 0); otherwise the whole log is discarded.
    pub(crate) fn restore(&mut self, index: LogIndex, term: Term) {
        assert!(index > self.commit, "invariant: restore only above commit");
        self.commit = index;
        // The snapshot itself is persisted with the Ready that carries it.
        self.persisted = self.persisted.max(index);
        if self.term(index) == Some(term) {
            self.compact(index);
            self.unstable_from = self.unstable_from.max(index.next());
            return;
        }
        self.entries.clear();
        self.shared = Entries::default();
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.unstable_from = index.next();
        self.persisted = index;
        self.cut_from(index.next());
    }

    /// How many times the log was rewritten (a suffix truncated, or all of it discarded by a
    /// snapshot). A Ready records this when it is handed out.
    pub(crate) fn rewrites(&self) -> u64 {
        self.rewrites
    }

    /// The highest index up to which a Ready handed out after `rewrites` rewrites, whose last
    /// entry was `index`, wrote entries that are still the log's: below every later cut.
    /// Matching the entry by (index, term) is not enough: peers that break log matching can
    /// put the same (index, term) back over a different prefix, and the completion of the old
    /// write would then confirm entries whose own writes are still pending (issue 13 item 4).
    pub(crate) fn confirmable(&self, rewrites: u64, index: LogIndex) -> LogIndex {
        self.cuts
            .iter()
            .filter(|(n, _)| *n > rewrites)
            .map(|(_, from)| from.prev())
            .fold(index, LogIndex::min)
    }

    /// No pending Ready predates rewrite `rewrites`: the cuts up to it are not needed.
    pub(crate) fn forget_cuts(&mut self, rewrites: u64) {
        while self.cuts.front().is_some_and(|(n, _)| *n <= rewrites) {
            self.cuts.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::raft::types::EntryKind;

    fn ents(first: u64, terms: &[u64]) -> Vec<Entry> {
        terms
            .iter()
            .enumerate()
            .map(|(i, t)| Entry {
                index: LogIndex(first + i as u64),
                term: Term(*t),
                kind: EntryKind::Normal,
                data: Bytes::new(),
            })
            .collect()
    }

    fn log(terms: &[u64]) -> RaftLog {
        RaftLog::new(LogIndex(0), Term(0), ents(1, terms), LogIndex(0))
    }

    #[test]
    fn append_after_truncates_only_the_conflicting_suffix() {
        let mut l = log(&[1, 1, 2, 2]);
        // Duplicate: nothing changes.
        assert_eq!(
            l.append_after(LogIndex(1), ents(2, &[1, 2]).into()),
            LogIndex(3)
        );
        assert_eq!(l.last_index(), LogIndex(4));
        // Conflict at 3: truncate 3.., append.
        assert_eq!(
            l.append_after(LogIndex(2), ents(3, &[3]).into()),
            LogIndex(3)
        );
        assert_eq!(l.last_index(), LogIndex(3));
        assert_eq!(l.term(LogIndex(3)), Some(Term(3)));
        assert_eq!(
            l.persisted(),
            LogIndex(2),
            "persisted mark falls back before the cut"
        );
        assert_eq!(l.take_unstable().len(), 1);
    }

    #[test]
    #[should_panic(expected = "never overwritten")]
    fn committed_entries_are_never_overwritten() {
        let mut l = log(&[1, 1, 2]);
        l.commit_to(LogIndex(3));
        l.append_after(LogIndex(2), ents(3, &[3]).into());
    }

    #[test]
    fn find_conflict_by_term_table() {
        // Figure 7 (f): 1,1,1,2,2,2,3,3,3,3,3.
        let l = log(&[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]);
        let cases = [
            ((10, 6), 10),
            ((10, 2), 6),
            ((10, 1), 3),
            ((5, 3), 5),
            ((20, 0), 0),
        ];
        for ((index, term), want) in cases {
            let got = l.find_conflict_by_term(LogIndex(index), Term(term));
            assert_eq!(got, LogIndex(want), "({index}, {term})");
        }
        let hint = l.reject_hint(LogIndex(12), Term(6));
        assert_eq!((hint.index, hint.term), (LogIndex(11), Term(3)));
    }

    #[test]
    fn up_to_date_compares_term_then_index() {
        let l = log(&[1, 2, 2]);
        assert!(l.is_up_to_date(LogIndex(3), Term(2)));
        assert!(l.is_up_to_date(LogIndex(1), Term(3)));
        assert!(!l.is_up_to_date(LogIndex(9), Term(1)));
        assert!(!l.is_up_to_date(LogIndex(2), Term(2)));
    }

    #[test]
    fn persisted_ignores_replaced_entries() {
        let mut l = log(&[]);
        l.append_new(ents(1, &[1]).remove(0));
        l.append_new(ents(2, &[1]).remove(0));
        assert_eq!(l.take_unstable().len(), 2);
        l.append_after(LogIndex(1), ents(2, &[2]).into());
        l.on_persisted(LogIndex(2), Term(1));
        assert_eq!(l.persisted(), LogIndex(0), "2/1 was replaced by 2/2");
        assert_eq!(l.take_unstable().len(), 1);
        l.on_persisted(LogIndex(2), Term(2));
        assert_eq!(l.persisted(), LogIndex(2));
    }

    #[test]
    fn compaction_hands_the_dropped_entries_out_once() {
        let mut l = log(&[1, 1, 2, 2]);
        l.commit_to(LogIndex(3));
        l.compact(LogIndex(1));
        l.compact(LogIndex(3));
        let dropped: Vec<u64> = l.take_compacted().iter().map(|e| e.index.0).collect();
        assert_eq!(dropped, [1, 2, 3], "both compactions, in log order");
        assert!(l.take_compacted().is_empty(), "handed out once");
        assert_eq!(l.first_index(), LogIndex(4));
    }

    #[test]
    fn compact_and_restore() {
        let mut l = log(&[1, 1, 2, 2]);
        l.commit_to(LogIndex(3));
        assert_eq!(l.compact(LogIndex(2)), Term(1));
        assert_eq!(l.first_index(), LogIndex(3));
        assert_eq!(l.term(LogIndex(2)), Some(Term(1)));
        assert_eq!(l.term(LogIndex(1)), None);
        let (s, _) = l.slice_from(LogIndex(3), 1);
        assert_eq!(s.len(), 1, "at least one entry even over the byte limit");
        l.restore(LogIndex(9), Term(5));
        assert_eq!(
            (l.first_index(), l.last_index(), l.commit()),
            (LogIndex(10), LogIndex(9), LogIndex(9))
        );
    }
}
