//! Membership changes and their validation.

use crate::raft::errors::ConfChangeError;
use crate::raft::membership::Membership;
use crate::raft::types::NodeId;

/// One step of a membership change, applied in order to the incoming configuration.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConfChangeStep {
    /// Add a node that is not a member as a voter.
    AddVoter(NodeId),
    /// Add a node that is not a member as a learner.
    AddLearner(NodeId),
    /// Turn a learner into a voter.
    PromoteLearner(NodeId),
    /// Remove a member (voter or learner), the leader included.
    Remove(NodeId),
}

/// A membership change proposal.
///
/// A change that alters the voter set always goes through a joint configuration (Raft thesis
/// 4.3): `Enter` moves to `voters_outgoing = old voters, voters = new voters`; `Leave` moves to
/// the new voters alone. A change of learners only is applied directly, without joint state.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ConfChange {
    /// Apply `steps` to the current configuration.
    Enter {
        /// The steps, applied in order.
        steps: Vec<ConfChangeStep>,
        /// Leave the joint configuration automatically once it is applied on the leader.
        auto_leave: bool,
    },
    /// Leave the current joint configuration.
    Leave,
}

impl ConfChange {
    /// A change entering a joint configuration that the leader leaves automatically.
    #[must_use]
    pub fn auto(steps: Vec<ConfChangeStep>) -> Self {
        ConfChange::Enter {
            steps,
            auto_leave: true,
        }
    }

    /// The configuration that results from applying `self` to `current`, or why it is refused.
    pub fn apply_to(&self, current: &Membership) -> Result<Membership, ConfChangeError> {
        match self {
            ConfChange::Leave => leave_joint(current),
            ConfChange::Enter { steps, auto_leave } => enter(current, steps, *auto_leave),
        }
    }
}

fn leave_joint(current: &Membership) -> Result<Membership, ConfChangeError> {
    if !current.is_joint() {
        return Err(ConfChangeError::NotJoint);
    }
    let mut next = current.clone();
    next.voters_outgoing.clear();
    next.auto_leave = false;
    Ok(next)
}

fn enter(
    current: &Membership,
    steps: &[ConfChangeStep],
    auto_leave: bool,
) -> Result<Membership, ConfChangeError> {
    if current.is_joint() {
        return Err(ConfChangeError::AlreadyJoint);
    }
    if steps.is_empty() {
        return Err(ConfChangeError::Empty);
    }
    let mut next = current.clone();
    for step in steps {
        apply_step(&mut next, *step)?;
    }
    if next.voters.is_empty() {
        return Err(ConfChangeError::NoVotersLeft);
    }
    if next.voters != current.voters {
        next.voters_outgoing = current.voters.clone();
        next.auto_leave = auto_leave;
    }
    next.assert_valid();
    Ok(next)
}

fn apply_step(next: &mut Membership, step: ConfChangeStep) -> Result<(), ConfChangeError> {
    match step {
        ConfChangeStep::AddVoter(id) | ConfChangeStep::AddLearner(id) => {
            if id == NodeId(0) {
                return Err(ConfChangeError::InvalidNodeId);
            }
            if next.voters.contains(&id) || next.learners.contains(&id) {
                return Err(ConfChangeError::AlreadyMember { id });
            }
            if matches!(step, ConfChangeStep::AddVoter(_)) {
                next.voters.insert(id);
            } else {
                next.learners.insert(id);
            }
        }
        ConfChangeStep::PromoteLearner(id) => {
            if !next.learners.remove(&id) {
                return Err(ConfChangeError::NotLearner { id });
            }
            next.voters.insert(id);
        }
        ConfChangeStep::Remove(id) => {
            if !next.voters.remove(&id) && !next.learners.remove(&id) {
                return Err(ConfChangeError::NotMember { id });
            }
        }
    }
    Ok(())
}
