//! Test harnesses for ringraft: simulation, checkers and cluster fixtures.
//!
//! - [`linearizability`]: a checker for key-value register histories.
//! - [`rng`]: the deterministic generator every simulated choice is drawn from.

pub mod linearizability;
pub mod rng;
