//! An example replicated key-value store: the commands of [`KvCommand`], encoded compactly,
//! the [`StateMachine`](crate::node::StateMachine) that applies them ([`KvStateMachine`]),
//! and the RESP2 protocol ([`resp`]) for a Redis-compatible front end. Used by the tests,
//! the benchmark and the README example.
//!
//! ```text
//! response = set: empty | get: 0 (absent) or 1 value | del: 0 (absent) or 1 (deleted)
//!            | ops 4 and up: a KvReply | batch: each command's response
//!            | 0xff: the command did not decode (applied as a no-op on every replica)
//! ```
//!
//! The command encoding is described in `command.rs` ([`KvCommand::encode`]).

mod command;
pub mod resp;
mod state_machine;

pub use self::command::{
    decode_batch_response, BatchBuilder, KvCommand, KvError, KvReply, SetCondition,
    BATCH_COMMANDS_MAX,
};
pub use self::state_machine::{parse_i64, KvStateMachine};

use bytes::Bytes;

/// Response to a command that does not decode.
pub const RESPONSE_INVALID: u8 = 0xff;
/// Longest key accepted, bytes: keys are indexed in memory.
pub const KEY_BYTES_MAX: usize = 64 << 10;
/// Longest value an `append` may produce, bytes: half the WAL's default 8 MiB record, so
/// that a value and its command always fit in one log entry and one snapshot record.
pub const VALUE_BYTES_MAX: usize = 4 << 20;

/// A command that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid kv command")]
pub struct InvalidCommand;

/// Decodes the response to a `get` (or `del`): the value if the key was present.
#[must_use]
pub fn decode_get_response(response: &Bytes) -> Option<Bytes> {
    match response.first() {
        Some(1) => Some(response.slice(1..)),
        _ => None,
    }
}
