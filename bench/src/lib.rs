//! Shared helpers for the ringraft benchmarks, and the library behind the `ringraft-bench`
//! load generator ([`loadgen`]); [`local`] starts an in-process cluster for the
//! criterion benches and the examples.

pub mod loadgen;
pub mod local;
