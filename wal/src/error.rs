//! Typed errors of the write-ahead log.

use std::io;
use std::sync::Arc;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why recovery rejected a segment or frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The segment header has a bad magic, version, size or checksum.
    BadHeader,
    /// A frame failed its checksum or framing checks and a valid frame follows it (or it lies
    /// in a sealed segment), so it is not a torn tail.
    BadFrame,
    /// A frame's index does not continue the log.
    IndexGap,
    /// A frame's term is lower than its predecessor's.
    TermRegression,
    /// A segment file in the middle of the sequence is missing.
    MissingSegment,
    /// A segment does not start with the checkpoint frame, or it disagrees with the log.
    BadCheckpoint,
    /// A sealed segment does not end with a seal frame.
    MissingSeal,
    /// Entries the log claims to hold are in no segment.
    MissingEntries,
    /// A truncation or compaction marker is out of range.
    BadMarker,
}

/// Errors returned by the write-ahead log.
///
/// Errors from bad input ([`Error::RecordTooLarge`], [`Error::NonConsecutive`], ...) write
/// nothing and leave the log usable. [`Error::Fatal`] means a write or fdatasync failed: the
/// log refuses every later append and must be reopened (recovery rebuilds a consistent state).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A write or fdatasync failed. The log is poisoned; the sync is never retried, because
    /// after a failed fsync the page cache may no longer hold the data (PostgreSQL "fsyncgate").
    #[error("fatal WAL I/O failure during {op} on segment {segment}: {source}")]
    Fatal {
        /// The operation that failed (`write`, `fdatasync`, ...).
        op: &'static str,
        /// Sequence number of the segment being written.
        segment: u64,
        /// The OS error.
        source: Arc<io::Error>,
    },
    /// Preparing a new segment failed because the disk is full. Nothing of the rejected
    /// request was written; appends succeed again once space is available.
    #[error("no space to prepare WAL segment {segment}: {source}")]
    NoSpace {
        /// Sequence number of the segment that could not be allocated.
        segment: u64,
        /// The OS error (ENOSPC or EDQUOT).
        source: Arc<io::Error>,
    },
    /// A non-fatal I/O error (opening, listing, preparing or deleting files).
    #[error("WAL I/O error during {op}: {source}")]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The OS error.
        source: Arc<io::Error>,
    },
    /// Recovery found damaged data that is not a torn tail. Nothing was deleted. Reopen with
    /// [`crate::RecoveryMode::TruncateAtCorruption`] to cut the log at this point.
    #[error("WAL corruption ({kind:?}) in segment {segment} at offset {offset} (index {index:?})")]
    Corruption {
        /// What is wrong.
        kind: CorruptionKind,
        /// Sequence number of the segment.
        segment: u64,
        /// Byte offset of the bad frame or header in the segment file.
        offset: u64,
        /// The log index expected at that point, when known.
        index: Option<u64>,
    },
    /// A segment header verifies but names a format version this code does not read (written
    /// by a newer release). Nothing was changed on disk.
    #[error(
        "WAL segment {segment} has format version {version}; this build reads versions 1 and 2"
    )]
    UnsupportedVersion {
        /// Sequence number of the segment.
        segment: u64,
        /// The version in its header.
        version: u32,
    },
    /// A record payload is larger than [`crate::Config::record_bytes_max`].
    #[error("record {index} has {len} bytes, over the maximum of {max}")]
    RecordTooLarge {
        /// Index of the offending record.
        index: u64,
        /// Its payload length.
        len: usize,
        /// The configured maximum.
        max: u32,
    },
    /// Snapshot membership bytes larger than [`crate::Config::membership_bytes_max`].
    #[error("snapshot membership has {len} bytes, over the maximum of {max}")]
    MembershipTooLarge {
        /// Length given.
        len: usize,
        /// The configured maximum.
        max: u32,
    },
    /// An appended record does not carry the next index.
    #[error("non-consecutive index: expected {expected}, got {got}")]
    NonConsecutive {
        /// The index the log expects next.
        expected: u64,
        /// The index given.
        got: u64,
    },
    /// An appended record's term is lower than its predecessor's.
    #[error("term goes backwards at index {index}: {term} < {prev_term}")]
    TermRegression {
        /// Index of the offending record.
        index: u64,
        /// Its term.
        term: u64,
        /// Term of the record before it.
        prev_term: u64,
    },
    /// An entry with index `u64::MAX`: the index after it could not be represented.
    #[error("the log holds no entry at index u64::MAX")]
    IndexExhausted,
    /// An empty batch was passed to append.
    #[error("empty append batch")]
    EmptyBatch,
    /// A suffix truncation point outside `first_index..=last_index + 1`.
    #[error("cannot truncate from {from}: log holds {first}..={last}")]
    TruncateOutOfRange {
        /// Requested first index to drop.
        from: u64,
        /// First index in the log.
        first: u64,
        /// Last index in the log (first - 1 when empty).
        last: u64,
    },
    /// A compaction point below the already compacted prefix.
    #[error("cannot compact to {up_to}: log already starts at {first}")]
    CompactOutOfRange {
        /// Requested last index to drop.
        up_to: u64,
        /// First index in the log.
        first: u64,
    },
    /// A queued compaction past the last durable entry (see `Wal::compact_prefix_queued`).
    #[error("cannot queue a compaction to {up_to}: the last durable entry is {last}")]
    CompactNotDurable {
        /// Requested last index to drop.
        up_to: u64,
        /// Last durable index.
        last: u64,
    },
    /// A read of an index that is compacted away.
    #[error("index {index} is compacted (log starts at {first})")]
    Compacted {
        /// Requested index.
        index: u64,
        /// First index in the log.
        first: u64,
    },
    /// A read of an index beyond the durable end of the log.
    #[error("index {index} is beyond the durable log end {last}")]
    Unavailable {
        /// Requested index.
        index: u64,
        /// Last durable index.
        last: u64,
    },
    /// The configuration is inconsistent.
    #[error("invalid WAL config: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// The log was closed before the request was written.
    #[error("WAL is closed")]
    Closed,
}

impl Error {
    pub(crate) fn io(op: &'static str, e: io::Error) -> Self {
        Error::Io {
            op,
            source: Arc::new(e),
        }
    }

    /// True for [`Error::Fatal`]: the log refuses further appends.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Fatal { .. })
    }
}
