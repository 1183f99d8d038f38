//! Seeded deterministic simulation of whole ringraft clusters over the sans-I/O core.

pub mod clock;
pub mod kv;
pub mod network;
