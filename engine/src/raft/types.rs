//! Newtypes and plain data shared by the whole core.

use std::fmt;

use bytes::Bytes;

macro_rules! newtype_u64 {
    ($(#[$m:meta])* $name:ident, $prefix:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }
    };
}

newtype_u64!(
    /// Identifier of a node in the cluster. `NodeId(0)` is never a valid member.
    NodeId,
    ""
);
newtype_u64!(
    /// A Raft term. Terms only grow on every node.
    Term,
    "t"
);
newtype_u64!(
    /// Index of a log entry. Index 0 is the empty prefix; the first entry has index 1.
    LogIndex,
    "i"
);
newtype_u64!(
    /// A point on the runtime's monotonic clock, in nanoseconds. The core never reads a clock:
    /// the runtime (or the simulator) passes `now` in.
    Instant,
    "@"
);
newtype_u64!(
    /// Identifier of a read request, chosen by the caller; echoed back in [`ReadState`].
    ReadId,
    "r"
);

impl LogIndex {
    /// The next index.
    #[must_use]
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The previous index, saturating at 0.
    #[must_use]
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

impl Instant {
    /// Nanoseconds from `earlier` to `self`, 0 if `earlier` is later.
    #[must_use]
    pub fn nanos_since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// What an entry carries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EntryKind {
    /// Application data.
    Normal,
    /// The empty entry a new leader appends at the start of its term (Raft paper 5.4.2).
    Noop,
    /// An encoded [`crate::raft::ConfChange`].
    ConfChange,
}

/// One log entry. `data` is a zero-copy handle: the runtime may hand in slices of its WAL map.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    /// Position in the log.
    pub index: LogIndex,
    /// Term of the leader that created the entry.
    pub term: Term,
    /// Kind of payload.
    pub kind: EntryKind,
    /// Payload; empty for [`EntryKind::Noop`].
    pub data: Bytes,
}

impl Entry {
    /// Approximate size in bytes used for batching and flow control.
    #[must_use]
    pub fn size_bytes(&self) -> u64 {
        // 24 bytes of header (index, term, kind+length) on the wire and in the WAL.
        const ENTRY_HEADER_BYTES: u64 = 24;
        ENTRY_HEADER_BYTES + self.data.len() as u64
    }
}

/// State that must be durable before messages depending on it leave the node.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct HardState {
    /// Current term.
    pub term: Term,
    /// Candidate voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// Highest index known committed. Invariant: `commit <=` the last persisted index.
    pub commit: LogIndex,
}

/// The role a node plays.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks for pre-votes without raising its term (Raft thesis 9.6).
    PreCandidate,
    /// Asks for votes in a new term.
    Candidate,
    /// Leads its term.
    Leader,
}

/// Volatile state reported in a [`crate::raft::Ready`] when it changes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SoftState {
    /// Current role.
    pub role: Role,
    /// Known leader of the current term.
    pub leader: Option<NodeId>,
}

/// A read that may be served once the state machine has applied `index`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ReadState {
    /// The caller's id.
    pub id: ReadId,
    /// Serve the read once `applied >= index`.
    pub index: LogIndex,
}

/// How a linearizable read is confirmed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReadMode {
    /// Served locally by the leader while its lease holds; falls back to ReadIndex otherwise.
    Lease,
    /// Confirmed by a heartbeat round acknowledged by a quorum (Raft thesis 6.4).
    ReadIndex,
}
