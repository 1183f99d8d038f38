//! The log's state transitions, written once: what an append, a truncation, a compaction, a
//! hard state and snapshot metadata do to the log's logical state ([`StreamState`]) and to
//! its position index ([`PosIndex`]), and which of them may follow a given state.
//!
//! Three places replay them and must agree exactly, or a log would read differently before
//! and after a restart: the encoder (the writer's view, as frames are encoded), the publisher
//! (what readers see once the frames are durable) and recovery (the frames read back on
//! open). Each calls [`StreamState::apply`] and [`PosIndex::apply`]; the encoder asserts and
//! recovery enforces the same [`StreamState::refusal`].

use crate::error::CorruptionKind;
use crate::format::{decode_hard_state, Frame, Kind, StreamState};
use crate::index::PosIndex;
use crate::types::{HardState, SnapshotMeta};

/// One change to the log's logical state: the meaning of one frame (other than a checkpoint
/// or a seal, which restate the state and change nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Entry `index` of `term` (its payload is the frame's and plays no part in the state).
    Append { index: u64, term: u64 },
    /// Entries `from..` dropped; entry `from - 1` has `last_term`.
    Truncate { from: u64, last_term: u64 },
    /// Entries below `first` dropped; entry `first - 1` has `prev_term`.
    Compact { first: u64, prev_term: u64 },
    /// The latest hard state.
    HardState(HardState),
    /// The latest snapshot metadata.
    Snapshot(SnapshotMeta),
}

/// Where a frame lies: segment sequence number and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FramePos {
    pub(crate) seq: u64,
    pub(crate) off: u32,
}

impl Transition {
    /// The header fields of the frame that carries this transition: kind, index and term.
    /// (Its payload: an entry's own, the encoded hard state, the snapshot's membership, or
    /// none for a marker.)
    pub(crate) fn frame_header(&self) -> (Kind, u64, u64) {
        match self {
            Transition::Append { index, term } => (Kind::Entry, *index, *term),
            Transition::Truncate { from, last_term } => (Kind::Truncate, *from, *last_term),
            Transition::Compact { first, prev_term } => (Kind::Compact, *first, *prev_term),
            Transition::HardState(_) => (Kind::HardState, 0, 0),
            Transition::Snapshot(m) => (Kind::Snapshot, m.index, m.term),
        }
    }

    /// The transition a decoded frame carries; `Ok(None)` for a checkpoint or a seal.
    pub(crate) fn from_frame(f: &Frame<'_>) -> Result<Option<Transition>, CorruptionKind> {
        Ok(Some(match f.kind {
            Kind::Entry => Transition::Append {
                index: f.index,
                term: f.term,
            },
            Kind::Truncate => Transition::Truncate {
                from: f.index,
                last_term: f.term,
            },
            Kind::Compact => Transition::Compact {
                first: f.index,
                prev_term: f.term,
            },
            Kind::HardState => {
                Transition::HardState(decode_hard_state(f.payload).ok_or(CorruptionKind::BadFrame)?)
            }
            Kind::Snapshot => Transition::Snapshot(SnapshotMeta {
                index: f.index,
                term: f.term,
                membership: bytes::Bytes::copy_from_slice(f.payload),
            }),
            Kind::Checkpoint | Kind::Seal => return Ok(None),
        }))
    }
}

impl StreamState {
    /// Why `t` cannot follow this state, if it cannot: recovery refuses such a frame as
    /// corruption, and the writer (which validates requests against the accepted log end
    /// before queueing them) asserts it never encodes one, since a frame recovery refuses
    /// would make the log unopenable.
    pub(crate) fn refusal(&self, t: &Transition) -> Option<CorruptionKind> {
        match *t {
            // Entries are consecutive; the entry after `u64::MAX` would have no index.
            Transition::Append { index, .. } if index != self.next_index || index == u64::MAX => {
                Some(CorruptionKind::IndexGap)
            }
            // Terms never decrease along the log (Raft's log matching relies on it).
            Transition::Append { term, .. } if term < self.last_term => {
                Some(CorruptionKind::TermRegression)
            }
            // A truncation cuts inside the live log or at its end, never below its start.
            Transition::Truncate { from, .. }
                if from < self.first_index || from > self.next_index =>
            {
                Some(CorruptionKind::BadMarker)
            }
            // A compaction only moves the start forward (past the end empties the log).
            Transition::Compact { first, .. } if first < self.first_index => {
                Some(CorruptionKind::BadMarker)
            }
            _ => None,
        }
    }

    /// Applies `t`, which [`StreamState::refusal`] accepts.
    pub(crate) fn apply(&mut self, t: &Transition) {
        match t {
            &Transition::Append { index, term } => {
                self.next_index = index + 1;
                self.last_term = term;
            }
            &Transition::Truncate { from, last_term } => {
                self.next_index = from;
                self.last_term = last_term;
            }
            &Transition::Compact { first, prev_term } => {
                self.first_index = first;
                self.prev_term = prev_term;
                // Compacting past the end empties the log: its last entry is the compacted
                // one, and the next append carries `first`.
                if first > self.next_index {
                    self.next_index = first;
                    self.last_term = prev_term;
                }
            }
            Transition::HardState(hs) => self.hard_state = Some(*hs),
            Transition::Snapshot(m) => self.snapshot = Some(m.clone()),
        }
    }
}

impl PosIndex {
    /// Applies `t` to the positions; `at` is where its frame lies (an entry is found there).
    pub(crate) fn apply(&mut self, t: &Transition, at: FramePos) {
        match *t {
            Transition::Append { index, .. } => self.push(at.seq, index, at.off),
            Transition::Truncate { from, .. } => self.truncate(from),
            Transition::Compact { first, .. } => self.compact(first),
            Transition::HardState(_) | Transition::Snapshot(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::encode_hard_state;

    fn state(first: u64, next: u64, last_term: u64, prev_term: u64) -> StreamState {
        StreamState {
            first_index: first,
            next_index: next,
            last_term,
            prev_term,
            ..StreamState::default()
        }
    }

    /// A table of (state, transition, refusal, state after): the rules the encoder, the
    /// publisher and recovery share.
    #[test]
    fn refusals_and_results() {
        use CorruptionKind::*;
        let s = state(3, 8, 2, 1);
        let append = |index, term| Transition::Append { index, term };
        let truncate = |from, last_term| Transition::Truncate { from, last_term };
        let compact = |first, prev_term| Transition::Compact { first, prev_term };
        let cases = [
            (append(8, 2), None, state(3, 9, 2, 1)),
            (append(8, 5), None, state(3, 9, 5, 1)),
            (append(9, 2), Some(IndexGap), s.clone()),
            (append(7, 2), Some(IndexGap), s.clone()),
            (append(8, 1), Some(TermRegression), s.clone()),
            (truncate(5, 2), None, state(3, 5, 2, 1)),
            (truncate(8, 2), None, state(3, 8, 2, 1)),
            (truncate(3, 1), None, state(3, 3, 1, 1)),
            (truncate(2, 1), Some(BadMarker), s.clone()),
            (truncate(9, 2), Some(BadMarker), s.clone()),
            (compact(5, 2), None, state(5, 8, 2, 2)),
            (compact(3, 1), None, state(3, 8, 2, 1)),
            (compact(8, 2), None, state(8, 8, 2, 2)),
            (compact(20, 4), None, state(20, 20, 4, 4)),
            (compact(2, 1), Some(BadMarker), s.clone()),
        ];
        for (t, refusal, after) in cases {
            assert_eq!(s.refusal(&t), refusal, "{t:?}");
            if refusal.is_none() {
                let mut got = s.clone();
                got.apply(&t);
                assert_eq!(got, after, "{t:?}");
            }
        }
        let mut at_max = state(1, u64::MAX, 1, 0);
        assert_eq!(at_max.refusal(&append(u64::MAX, 1)), Some(IndexGap));
        let hs = HardState {
            term: 3,
            vote: Some(2),
            commit: 5,
        };
        at_max.apply(&Transition::HardState(hs));
        assert_eq!(at_max.hard_state, Some(hs));
    }

    /// Every transition survives its frame: what the encoder writes, recovery reads back.
    #[test]
    fn frame_fields_round_trip() {
        let ts = [
            Transition::Append { index: 4, term: 2 },
            Transition::Truncate {
                from: 3,
                last_term: 1,
            },
            Transition::Compact {
                first: 9,
                prev_term: 4,
            },
            Transition::HardState(HardState {
                term: 7,
                vote: None,
                commit: 2,
            }),
            Transition::Snapshot(SnapshotMeta {
                index: 9,
                term: 4,
                membership: bytes::Bytes::from_static(b"conf"),
            }),
        ];
        for t in ts {
            let (kind, index, term) = t.frame_header();
            let payload = match &t {
                Transition::HardState(hs) => encode_hard_state(hs).to_vec(),
                Transition::Snapshot(m) => m.membership.to_vec(),
                _ => Vec::new(),
            };
            let f = Frame {
                kind,
                index,
                term,
                payload: &payload,
                len: 0,
                synced: 0,
            };
            assert_eq!(Transition::from_frame(&f), Ok(Some(t.clone())), "{t:?}");
        }
    }

    #[test]
    fn index_follows_the_transitions() {
        let mut ix = PosIndex::new(1);
        let at = |off| FramePos { seq: 1, off };
        for i in 1..=5 {
            ix.apply(&Transition::Append { index: i, term: 1 }, at(i as u32 * 64));
        }
        ix.apply(
            &Transition::Truncate {
                from: 4,
                last_term: 1,
            },
            at(0),
        );
        assert_eq!(ix.next_index(), 4);
        ix.apply(
            &Transition::Compact {
                first: 2,
                prev_term: 1,
            },
            at(0),
        );
        assert_eq!(ix.positions_start(), 2);
        assert_eq!(ix.locate(3), Some((1, 192)));
        assert_eq!(ix.locate(1), None);
    }
}
