//! The `ringraft-bench` load generator: starts a system under test on loopback (a ringraft
//! cluster of `ringraft serve` processes, an etcd cluster, or a durable redis-server), drives
//! it with many pipelined clients over TCP, and reports throughput, latency percentiles, CPU
//! per process and the machine's physical floor.
//!
//! - [`workload`]: what the clients do;
//! - [`wire`]: the RESP2 and etcd HTTP codecs;
//! - [`driver`]: the clients and the measured phase;
//! - [`inproc`]: the same for clusters inside this process ([`memory`], `openraft_peer`);
//! - [`servers`]: starting and stopping the systems;
//! - [`floor`], [`procstat`], [`machine`]: what the report says about the machine;
//! - [`report`]: one run's report; [`run`]: start, drive, report;
//! - [`engines`], [`compare`]: the interleaved side-by-side comparison, with
//!   [`redis_benchmark`] against `ringraft cluster`; [`sweep`]: client
//!   counts with SVG charts.

pub mod compare;
pub mod driver;
pub mod engines;
#[cfg(feature = "etcd-grpc")]
pub mod etcd_grpc;
pub mod floor;
pub mod inproc;
pub mod latency;
pub mod machine;
pub mod memory;
#[cfg(feature = "openraft")]
pub mod openraft_peer;
pub mod procstat;
pub mod redis_benchmark;
pub mod report;
pub mod run;
pub mod servers;
pub mod sweep;
pub mod wire;
pub mod workload;
