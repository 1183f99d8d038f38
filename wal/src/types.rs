//! Values stored in the log.

use bytes::Bytes;

/// One log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the log; consecutive, starting at the log's next index.
    pub index: u64,
    /// Term; never lower than the previous record's.
    pub term: u64,
    /// Opaque payload. On reads it is a zero-copy view of the segment's memory map.
    pub payload: Bytes,
}

impl Entry {
    /// Builds an entry.
    pub fn new(index: u64, term: u64, payload: impl Into<Bytes>) -> Self {
        Entry {
            index,
            term,
            payload: payload.into(),
        }
    }
}

/// The persistent vote state of a replica, stored opaquely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardState {
    /// Current term.
    pub term: u64,
    /// Candidate voted for in `term`, if any.
    pub vote: Option<u64>,
    /// Highest index known committed.
    pub commit: u64,
}

/// Metadata of the latest snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotMeta {
    /// Last index included in the snapshot.
    pub index: u64,
    /// Term of that index.
    pub term: u64,
    /// Opaque membership configuration.
    pub membership: Bytes,
}
