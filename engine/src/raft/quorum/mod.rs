//! Quorum arithmetic: the highest value acknowledged by a quorum, and vote tallies, for a
//! majority configuration and a joint one (Raft thesis 4.3). Pure functions, tested against a
//! naive model.

mod joint;
mod majority;

pub(crate) use joint::JointConfig;
pub(crate) use majority::MajorityConfig;

/// The outcome of a vote so far.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum VoteResult {
    /// Not decided yet.
    Pending,
    /// A quorum granted.
    Won,
    /// A quorum can no longer be reached.
    Lost,
}

#[cfg(test)]
mod tests;
