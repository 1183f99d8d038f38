//! The request queue: what appenders have handed to the log and no commit has taken yet.

use std::sync::Arc;

use crate::completion::Completion;
use crate::error::Error;
use crate::types::{Entry, HardState, SnapshotMeta};

/// One queued request.
pub(crate) struct Request {
    pub(crate) op: Op,
    pub(crate) done: Arc<Completion>,
}

/// What a request writes.
pub(crate) enum Op {
    Append(Vec<Entry>),
    HardState(HardState),
    Snapshot(SnapshotMeta),
    Truncate { from: u64, last_term: u64 },
    Compact { first: u64, prev_term: u64 },
}

/// Accepted but not yet committed requests, and the log end they imply.
pub(crate) struct Queue {
    pub(crate) reqs: Vec<Request>,
    /// Invariant: the sum of `reqs[..].bytes`.
    pub(crate) bytes: usize,
    /// Index the next appended entry must carry, counting queued appends.
    pub(crate) next_index: u64,
    /// Term of entry `next_index - 1`, counting queued appends.
    pub(crate) last_term: u64,
    pub(crate) fatal: Option<Error>,
    pub(crate) bg_idle: bool,
    pub(crate) closed: bool,
}
