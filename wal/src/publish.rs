//! The publisher: what readers see, updated once the commit that carries a change is durable.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::format::StreamState;
use crate::index::PosIndex;
use crate::segment::Segment;
use crate::transition::{FramePos, Transition};

/// What readers see: durable state only.
pub(crate) struct ReadState {
    pub(crate) index: PosIndex,
    pub(crate) stream: StreamState,
    pub(crate) segments: BTreeMap<u64, Arc<Segment>>,
}

/// A change readers see once the commit that carries it is durable.
pub(crate) enum Effect {
    /// A segment the commit rotated into.
    Segment(Arc<Segment>),
    /// A transition, and where its frame lies.
    Log(Transition, FramePos),
}

impl ReadState {
    /// Publishes one durable change.
    pub(crate) fn apply(&mut self, e: Effect) {
        match e {
            Effect::Segment(seg) => {
                self.segments.insert(seg.seq, seg);
            }
            Effect::Log(t, at) => {
                self.index.apply(&t, at);
                self.stream.apply(&t);
                // Invariant (PosIndex): the index ends where the log does.
                assert_eq!(
                    self.index.next_index(),
                    self.stream.next_index,
                    "published index and stream agree on the log end after {t:?}"
                );
            }
        }
    }
}
