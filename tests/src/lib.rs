//! Test harnesses for ringraft: simulation, checkers and cluster fixtures.
//!
//! - [`linearizability`]: a checker for key-value register histories.
//! - [`sim`]: a seeded deterministic simulation of whole clusters over the Raft core.
//! - [`invariants`]: the safety properties the simulation checks after every step.
//! - [`rng`]: the deterministic generator every simulated choice is drawn from.
//! - [`process`]: fault injection against real `ringraft` processes (supervisor, TCP proxy,
//!   recorded clients, checks).

pub mod invariants;
pub mod linearizability;
pub mod process;
pub mod rng;
pub mod sim;
