//! Seeded deterministic simulation of whole ringraft clusters over the sans-I/O core.
//!
//! Everything (parameters, faults, message fates, disk latencies, clock rates, client choices,
//! election jitter) is drawn from one `u64` seed, and the simulation is single-threaded over an
//! event queue ordered by (true time, insertion order), so a seed replays exactly.

pub mod client;
pub mod clock;
pub mod cluster;
pub mod disk;
pub mod kv;
pub mod network;
pub mod node;
pub mod params;
pub mod runner;
pub mod trace;

pub use cluster::{Failure, RunStats, SimOptions, Simulation};
