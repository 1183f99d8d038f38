//! Fault injection against real `ringraft` processes (DESIGN.md testing layer 5, issue 10).
//!
//! - [`supervisor`]: child processes: spawn, SIGKILL, SIGSTOP/SIGCONT, SIGTERM, restart, and
//!   the check that each died only by a signal the test sent;
//! - [`proxy`]: a fault-injecting TCP proxy on every directed peer link, for partitions
//!   (isolated leader, bridge, one-way) without root;
//! - [`cluster`]: `ringraft serve` processes with a proxy on every peer link;
//! - [`client`]: a small blocking RESP2 client; [`recorder`]: concurrent clients whose every
//!   operation is recorded with its invocation and completion time;
//! - [`checks`]: linearizability (the simulation's checker on the real history), no
//!   acknowledged write lost, replicas that agree;
//! - [`power_cut`]: a node's WAL after a power cut (the unsynced pages of its last write lost);
//! - [`run`]: one fault run (start, wait for operations, heal, check, keep a failing run);
//! - [`schedule`]: seeded randomized fault schedules for the `soak` command;
//! - [`tools`]: what the machine offers (root, libfaketime, tmpfs mounts) and the `ringraft`
//!   binary, so that a fault that needs a missing tool is skipped with a printed line.

pub mod checks;
pub mod client;
pub mod cluster;
pub mod power_cut;
pub mod proxy;
pub mod recorder;
pub mod run;
pub mod schedule;
pub mod supervisor;
pub mod tools;

#[cfg(test)]
mod fake_server;
