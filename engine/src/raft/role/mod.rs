//! Role logic, one file per role. Each file adds `impl Core` blocks for the inputs that role
//! handles; `core.rs` dispatches.

mod candidate;
mod follower;
mod leader;
mod reads;
mod replication;
