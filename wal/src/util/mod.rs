//! The few helpers that every ringraft package shares, kept in one place so that each exists
//! once: the seeded RNG ([`rng::Rng`]) and the poison-tolerant lock helper ([`sync::lock`]).
//!
//! They live in the WAL because it is the package every other one already depends on (and it
//! depends on none of them), and the workspace's top level is fixed, so a package of their own
//! would have nowhere to go. They are not part of the log's API.

pub mod rng;
pub mod sync;
