//! The in-memory position index: for every live entry, its segment and offset. Nothing else
//! of a record is kept in memory (4 bytes per entry plus a few words per segment).

use std::collections::VecDeque;

/// Live entries of one segment: indices `first..first + offsets.len()`.
#[derive(Debug, Clone)]
struct SegRun {
    seq: u64,
    first: u64,
    offsets: Vec<u32>,
}

/// Positions of live entries, in index order; segments in sequence order.
///
/// Invariant: runs are non-empty, contiguous in index (`run[k+1].first == run[k].end()`),
/// increasing in `seq`, and the last run ends at `next_index`.
#[derive(Debug, Clone, Default)]
pub(crate) struct PosIndex {
    runs: VecDeque<SegRun>,
    next_index: u64,
}

impl PosIndex {
    pub(crate) fn new(next_index: u64) -> PosIndex {
        PosIndex {
            runs: VecDeque::new(),
            next_index,
        }
    }

    /// First index that has a position (== `next_index` when empty).
    pub(crate) fn positions_start(&self) -> u64 {
        self.runs.front().map_or(self.next_index, |r| r.first)
    }

    pub(crate) fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Records entry `index` at `offset` of segment `seq`.
    pub(crate) fn push(&mut self, seq: u64, index: u64, offset: u32) {
        assert_eq!(
            index, self.next_index,
            "positions must be pushed in index order"
        );
        match self.runs.back_mut() {
            Some(r) if r.seq == seq => r.offsets.push(offset),
            last => {
                assert!(last.is_none_or(|r| r.seq < seq), "segments must increase");
                self.runs.push_back(SegRun {
                    seq,
                    first: index,
                    offsets: vec![offset],
                });
            }
        }
        self.next_index = index + 1;
    }

    /// Drops entries `from..`; the next entry is `from`.
    pub(crate) fn truncate(&mut self, from: u64) {
        while let Some(r) = self.runs.back_mut() {
            if r.first >= from {
                self.runs.pop_back();
            } else {
                let keep = (from - r.first) as usize;
                r.offsets.truncate(keep);
                break;
            }
        }
        self.next_index = from;
    }

    /// Drops entries below `first`; if `first` is past the end the index becomes empty and
    /// the next entry is `first`.
    pub(crate) fn compact(&mut self, first: u64) {
        while let Some(r) = self.runs.front_mut() {
            let end = r.first + r.offsets.len() as u64;
            if end <= first {
                self.runs.pop_front();
            } else {
                if r.first < first {
                    r.offsets.drain(..(first - r.first) as usize);
                    r.first = first;
                }
                break;
            }
        }
        if first > self.next_index {
            self.next_index = first;
        }
    }

    /// Segment and offset of `index`, if it has a position.
    pub(crate) fn locate(&self, index: u64) -> Option<(u64, u32)> {
        if index >= self.next_index || index < self.positions_start() {
            return None;
        }
        let k = self
            .runs
            .partition_point(|r| r.first + r.offsets.len() as u64 <= index);
        let r = self.runs.get(k)?;
        Some((r.seq, r.offsets[(index - r.first) as usize]))
    }

    /// Sequence number of the oldest segment holding a live entry.
    pub(crate) fn oldest_seq(&self) -> Option<u64> {
        self.runs.front().map(|r| r.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_truncate_compact_locate() {
        let mut p = PosIndex::new(1);
        for i in 1..=10 {
            p.push(i / 4, i, i as u32 * 10);
        }
        assert_eq!(p.locate(5), Some((1, 50)));
        p.truncate(6);
        assert_eq!(p.locate(6), None);
        p.push(7, 6, 1);
        assert_eq!(p.locate(6), Some((7, 1)));
        p.compact(3);
        assert_eq!(p.positions_start(), 3);
        assert_eq!(p.locate(2), None);
        assert_eq!(p.locate(3), Some((0, 30)));
        assert_eq!(p.oldest_seq(), Some(0));
        p.compact(6);
        assert_eq!(p.oldest_seq(), Some(7));
        p.compact(20);
        assert_eq!((p.positions_start(), p.next_index()), (20, 20));
    }
}
