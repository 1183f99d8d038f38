//! ringraft: a durable, pipelined Raft log-replication engine.
//!
//! The crate is layered so that the architecture shows in its modules:
//! - [`raft`]: the sans-I/O Raft core (no files, sockets, threads, clocks or ambient randomness).
//! - [`node`]: the runtime that drives the core with the WAL, the transport and the
//!   application's state machine, and the embeddable [`node::NodeHandle`] API.
//! - [`codec`]: the binary encoding of the core's messages, which the runtime hands to the
//!   transport as opaque payloads.
//! - [`transport`]: node-to-node TCP (io_uring, or threads) and an in-memory transport.
//! - [`kv`]: an example replicated key-value state machine.
//! - [`server`]: the Redis-compatible (RESP) server of the `ringraft` binary.
#![deny(missing_docs)]

pub mod codec;
pub mod kv;
pub mod node;
pub mod raft;
pub mod server;
pub mod transport;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
