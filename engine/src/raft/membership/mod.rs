//! Cluster membership: the configuration ([`Membership`]), the changes to it ([`ConfChange`])
//! and their validation and encoding.

mod change;
mod codec;
mod config;

pub use change::{ConfChange, ConfChangeStep};
pub use codec::DecodeError;
pub use config::Membership;

#[cfg(test)]
mod tests;
