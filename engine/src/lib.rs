//! ringraft: a durable, pipelined Raft log-replication engine.
//!
//! The crate is layered so that the architecture shows in its modules:
//! - [`raft`]: the sans-I/O Raft core (no files, sockets, threads, clocks or ambient randomness).
#![deny(missing_docs)]

pub mod raft;
// The staging copy still carries helpers its owner uses only in later work.
#[allow(dead_code)]
pub mod transport;
