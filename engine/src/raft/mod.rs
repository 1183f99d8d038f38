//! The sans-I/O Raft core.
//!
//! The core is a deterministic state machine in the style of etcd-io/raft and tikv/raft-rs. It
//! does no I/O and reads no clock: the runtime feeds it messages ([`RawNode::step`]), ticks
//! ([`RawNode::tick`]), proposals, read requests, a monotonic `now` ([`Instant`]) and
//! completions, and takes back numbered [`Ready`] batches of work. Randomness (election
//! jitter) comes from the seed given to [`RawNode::new`].
//!
//! # The driver loop
//!
//! A runtime runs this loop (one thread per node is enough):
//!
//! ```
//! use ringraft::raft::{Config, InitialState, Instant, LogIndex, NodeId, RawNode};
//!
//! let mut node = RawNode::new(
//!     Config::new(NodeId(1)),
//!     InitialState::bootstrap([NodeId(1)]),
//!     42,
//!     Instant(0),
//! )?;
//! node.campaign(Instant(0));
//! let mut now = Instant(0);
//! for _turn in 0..3 {
//!     now = Instant(now.0 + node.config().tick_nanos);
//!     node.tick(now); // on every tick of the runtime's timer
//!     // ... node.step(msg, now) for each received message,
//!     // ... node.propose(data) for each queued client write (on the leader).
//!     while node.has_ready() {
//!         let rd = node.ready();
//!         // 1. Send rd.messages now; a leader's appends go out in parallel with its fsync.
//!         // 2. Install rd.snapshot if any; then append rd.entries to the WAL (truncating the
//!         //    stored suffix from rd.entries[0].index first) and write rd.hard_state; fsync.
//!         // 3. Only after that fsync: send rd.persisted_messages (votes, append acks).
//!         // 4. Apply rd.committed_entries in order; serve rd.read_states once applied has
//!         //    reached their index; report rd.failed_reads.
//!         // 5. Tell the core:
//!         node.on_persisted(rd.number, now);
//!         if let Some(last) = rd.committed_entries.last() {
//!             node.on_applied(last.index)?;
//!         }
//!     }
//! }
//! assert_eq!(node.status().commit, LogIndex(1)); // the leader's no-op
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Steps 2-5 may be pipelined (call `ready()` again before the previous Ready is durable) as
//! long as Readys are persisted, and acknowledged with `on_persisted`, in order.
//!
//! # Module layout
//! - `types`, `message`, `config`, `errors`, `entries`: the vocabulary ([`Entries`] is a shared
//!   run of entries: one batch serves the WAL, every follower and the state machine);
//! - `log`: the in-memory log since the snapshot with its persisted/commit marks;
//! - `quorum`: commit index and vote tallies for majority and joint configurations;
//! - `tracker`: per-follower progress (probe/replicate/snapshot) and in-flight windows;
//! - `membership`: configurations, changes, validation and encoding;
//! - `role/`: follower, candidate, leader, replication and reads logic, one file each;
//! - `read`: lease and ReadIndex bookkeeping; `apply`: completions from the runtime;
//! - `initial`, `leader_state`, `core`: start state, leader-only state, the state machine;
//! - `ready`, `raw_node`, `status`: the output batch, the public handle, read-only views.
//!
//! # Decisions
//! - Membership changes take effect when applied (as in etcd), so a change never needs to be
//!   rolled back by a truncation; one change in flight until applied.
//! - Vote requests, votes and append acknowledgements leave only after the Ready that made
//!   them true is persisted (`persisted_messages`); the leader's appends leave at once and it
//!   counts itself toward a quorum only for persisted entries.
//! - Leader stickiness and leases are measured on `now` (nanoseconds), elections on ticks.

mod apply;
mod config;
mod core;
mod display;
mod entries;
mod errors;
mod initial;
mod leader_state;
mod log;
mod membership;
mod message;
mod quorum;
mod raw_node;
mod read_tracker;
mod ready;
mod role;
mod rules;
mod status;
mod tracker;
mod types;

pub use self::config::{Config, Mutation};
pub use self::display::DisplayEntries;
pub use self::entries::Entries;
pub use self::errors::{
    ConfChangeError, ConfigError, ProposeError, ReadError, SnapshotError, StepError, TransferError,
};
pub use self::initial::InitialState;
pub use self::membership::{ConfChange, ConfChangeStep, DecodeError, Membership};
pub use self::message::{Message, MessageBody, RejectHint, SnapshotMeta};
pub use self::raw_node::RawNode;
pub use self::ready::Ready;
pub use self::status::{ProgressStatus, Status};
pub use self::tracker::ProgressState;
pub use self::types::{
    Entry, EntryKind, HardState, Instant, LogIndex, NodeId, ReadId, ReadMode, ReadState, Role,
    SoftState, Term,
};
