//! The application's replicated state machine.

use std::io::{self, Read, Write};

use bytes::Bytes;

use crate::raft::{LogIndex, Term};

/// One committed command handed to [`StateMachine::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Log index of the command.
    pub index: LogIndex,
    /// Term of the leader that proposed it.
    pub term: Term,
    /// The bytes given to [`crate::node::NodeHandle::propose`] (a zero-copy view of the log).
    pub data: Bytes,
}

/// The state machine an application replicates with ringraft.
///
/// The node calls every method on its own thread, one call at a time.
///
/// # Correctness
/// An implementation must guarantee:
/// - **Deterministic apply**: the state after `apply` depends only on the state before and
///   the commands, never on clocks, randomness, thread timing or local configuration.
///   Every replica applies the same commands in the same order and must end in the same state.
/// - **One response per command**, in order: `apply(batch)` returns `batch.len()` responses.
/// - **All or nothing per command**: a command that cannot be executed (bad input) must still
///   leave a deterministic state and report it in its response, never panic on one replica
///   only.
/// - **Snapshots are consistent cuts**: `snapshot` writes the state as of the last applied
///   command exactly, and `restore` of those bytes yields that state.
/// - **Restore replaces the state entirely**: nothing of the previous state survives it.
/// - **In-memory semantics**: after a restart the node restores the latest snapshot and
///   replays the log after it, so `apply` must not have durable side effects of its own.
pub trait StateMachine: Send + 'static {
    /// Applies a batch of committed commands in log order; one response per command.
    fn apply(&mut self, batch: &[Command]) -> Vec<Bytes>;

    /// Writes the whole state to `out` as a stream (the node writes it to a snapshot file
    /// and streams that to followers; the state never has to fit in one buffer).
    ///
    /// # Errors
    /// An I/O error of `out`; the snapshot is abandoned.
    fn snapshot(&self, out: &mut dyn Write) -> io::Result<()>;

    /// Optional: a point-in-time, owned view of the state that writes itself (as
    /// [`StateMachine::snapshot`] would) on another thread, so that a large snapshot does not
    /// stall the node's loop. The view must be cheap to take (a copy-on-write or MVCC handle,
    /// not a deep copy). `None` (the default) makes the node call `snapshot` on its own thread.
    fn snapshot_view(&self) -> Option<Box<dyn SnapshotView>> {
        None
    }

    /// Replaces the whole state by the one in `input` (written by [`StateMachine::snapshot`]).
    ///
    /// # Errors
    /// An I/O error or malformed input; the node stops, as its state is then unknown.
    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()>;
}

/// A point-in-time view of a state machine, from [`StateMachine::snapshot_view`].
///
/// # Correctness
/// It writes exactly the state as of the moment it was taken (what `snapshot` would have
/// written then), whatever the state machine applies afterwards.
pub trait SnapshotView: Send + 'static {
    /// Writes the state to `out`, in the format [`StateMachine::restore`] reads.
    ///
    /// # Errors
    /// An I/O error of `out`; the snapshot is abandoned.
    fn write_to(self: Box<Self>, out: &mut dyn Write) -> io::Result<()>;
}
