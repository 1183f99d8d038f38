//! Shared helpers for the ringraft benchmarks, and the library behind the `ringraft-bench`
//! load generator ([`loadgen`]).

pub mod loadgen;
