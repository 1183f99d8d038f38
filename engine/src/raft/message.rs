//! Messages between cores. The runtime serializes and transports them; the core never does I/O.

use crate::raft::entries::Entries;
use crate::raft::membership::Membership;
use crate::raft::types::{LogIndex, NodeId, ReadId, ReadMode, Term};

/// Metadata of a snapshot. The data itself is the runtime's business: it creates it, persists it
/// and streams it to followers alongside an [`MessageBody::InstallSnapshot`].
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SnapshotMeta {
    /// Last index covered by the snapshot.
    pub index: LogIndex,
    /// Term of the entry at `index`.
    pub term: Term,
    /// Membership in effect at `index`.
    pub membership: Membership,
}

/// Where a follower's log diverges, sent with a rejected append so the leader can skip a whole
/// term at a time (Raft thesis 3.5, etcd's `findConflictByTerm`).
///
/// `index` is the largest index at or below the rejected `prev_index` whose term is at most the
/// rejected `prev_term`; `term` is the follower's term at `index`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RejectHint {
    /// Candidate match index on the follower.
    pub index: LogIndex,
    /// Follower's term at `index`.
    pub term: Term,
}

/// A message from one core to another.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
    /// Sender's term (for pre-votes: the term the sender would campaign in).
    pub term: Term,
    /// Payload.
    pub body: MessageBody,
}

/// The message kinds.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MessageBody {
    /// A (pre-)vote request.
    RequestVote {
        /// Pre-vote (Raft thesis 9.6): asks without raising anyone's term.
        pre_vote: bool,
        /// Candidate's last log index.
        last_index: LogIndex,
        /// Candidate's last log term.
        last_term: Term,
        /// Sent on a leadership transfer: overrides leader stickiness.
        transfer: bool,
    },
    /// Answer to [`MessageBody::RequestVote`].
    RequestVoteResponse {
        /// Whether this answers a pre-vote.
        pre_vote: bool,
        /// Whether the vote is granted.
        granted: bool,
    },
    /// Log entries (possibly none) following `prev_index`.
    AppendEntries {
        /// Index of the entry before `entries`.
        prev_index: LogIndex,
        /// Term at `prev_index`.
        prev_term: Term,
        /// Entries to append, contiguous from `prev_index + 1` (shared, cheap to clone).
        entries: Entries,
        /// Leader's commit index.
        commit: LogIndex,
        /// Leader's heartbeat round when sent; echoed for leases and reads.
        round: u64,
    },
    /// Answer to [`MessageBody::AppendEntries`] or [`MessageBody::InstallSnapshot`].
    AppendEntriesResponse {
        /// On success, the follower's log matches the leader's up to here (and it is durable).
        /// On rejection, the rejected `prev_index`.
        index: LogIndex,
        /// Set on rejection.
        reject: Option<RejectHint>,
        /// Echo of the request's round.
        round: u64,
    },
    /// Leader liveness and commit propagation.
    Heartbeat {
        /// min(leader commit, follower match).
        commit: LogIndex,
        /// Heartbeat round.
        round: u64,
    },
    /// Answer to [`MessageBody::Heartbeat`].
    HeartbeatResponse {
        /// Echo of the round.
        round: u64,
    },
    /// Tells a follower to install a snapshot; the runtime streams the data.
    InstallSnapshot {
        /// What the snapshot covers.
        meta: SnapshotMeta,
        /// Heartbeat round.
        round: u64,
    },
    /// Leadership transfer: the recipient campaigns at once.
    TimeoutNow,
    /// A follower asks the leader for a read index.
    ReadIndex {
        /// The follower's read id.
        id: ReadId,
        /// How the caller asked the read to be confirmed: a leader must not serve a
        /// [`ReadMode::ReadIndex`] read from its lease (the caller chose not to depend on
        /// clocks).
        mode: ReadMode,
    },
    /// The leader's answer: the read index, or `None` if it could not confirm.
    ReadIndexResponse {
        /// The follower's read id.
        id: ReadId,
        /// Read index, if confirmed.
        index: Option<LogIndex>,
    },
}

impl MessageBody {
    /// Whether the message may only leave after the sender's state it reports is durable.
    #[must_use]
    pub(crate) fn needs_durability(&self) -> bool {
        matches!(
            self,
            MessageBody::RequestVote {
                pre_vote: false,
                ..
            } | MessageBody::RequestVoteResponse {
                pre_vote: false,
                ..
            } | MessageBody::AppendEntriesResponse { .. }
        )
    }
}
