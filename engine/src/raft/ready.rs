//! The core's output: one numbered batch of work for the runtime.

use crate::raft::entries::Entries;
use crate::raft::errors::ReadError;
use crate::raft::message::{Message, SnapshotMeta};
use crate::raft::types::{HardState, LogIndex, NodeId, ReadId, ReadState, SoftState, Term};

/// Work for the runtime, in this order (see the module documentation of [`crate::raft`]):
///
/// 1. send `messages` now (in parallel with the writes below);
/// 2. install `snapshot` if any, then persist `entries` (truncating the stored log from
///    `entries[0].index` if it already holds that index) and `hard_state`;
/// 3. after that persistence, send `persisted_messages`;
/// 4. apply `committed_entries` in order, serve `read_states` once applied reaches their
///    index, fail `failed_reads`;
/// 5. call [`crate::raft::RawNode::on_persisted`] with `number`, and
///    [`crate::raft::RawNode::on_applied`] as entries are applied.
#[derive(Debug, Default)]
#[must_use = "a Ready must be acted on, then acknowledged with on_persisted"]
pub struct Ready {
    /// Increases by one per Ready; acknowledged by `on_persisted(number)`.
    pub number: u64,
    /// Role or leader changed.
    pub soft_state: Option<SoftState>,
    /// Term, vote or commit changed: persist.
    pub hard_state: Option<HardState>,
    /// Entries to persist (shared with the messages that carry them).
    pub entries: Entries,
    /// A snapshot received from the leader: install it before persisting the entries.
    pub snapshot: Option<SnapshotMeta>,
    /// Messages that may leave right away.
    pub messages: Vec<Message>,
    /// Messages that may leave only once this Ready (and every earlier one) is persisted:
    /// votes and append acknowledgements.
    pub persisted_messages: Vec<Message>,
    /// Committed entries to apply, in order. They are durable locally too.
    pub committed_entries: Entries,
    /// Reads that may be served once the state machine has applied their index.
    pub read_states: Vec<ReadState>,
    /// Reads that failed; the caller may retry.
    pub failed_reads: Vec<(ReadId, ReadError)>,
}

impl Ready {
    /// Index of the last entry to persist, if any.
    #[must_use]
    pub fn last_entry_index(&self) -> Option<LogIndex> {
        self.entries.last().map(|e| e.index)
    }

    /// Whether the Ready asks the runtime to write anything before `persisted_messages`.
    #[must_use]
    pub fn must_persist(&self) -> bool {
        self.hard_state.is_some() || !self.entries.is_empty() || self.snapshot.is_some()
    }

    /// Recipients of all messages, for tests and tracing.
    #[must_use]
    pub fn recipients(&self) -> Vec<NodeId> {
        self.messages
            .iter()
            .chain(&self.persisted_messages)
            .map(|m| m.to)
            .collect()
    }
}

/// What a Ready asked to persist, to apply when the runtime acknowledges it.
#[derive(Debug)]
pub(crate) struct ReadyRecord {
    pub(crate) number: u64,
    /// The log's rewrite count when the Ready was handed out: after a later truncation or
    /// discard, `last_entry` may name an entry that is gone, whose write the runtime may have
    /// overwritten, even if an entry with the same index and term came back.
    pub(crate) rewrites: u64,
    pub(crate) last_entry: Option<(LogIndex, Term)>,
    pub(crate) term_vote: Option<(Term, Option<NodeId>)>,
}
