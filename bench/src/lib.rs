//! Shared helpers for the ringraft benchmarks and the cluster load generator.
