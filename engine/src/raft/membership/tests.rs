//! Membership change validation and encoding.

use proptest::prelude::*;

use crate::raft::errors::ConfChangeError;
use crate::raft::membership::{ConfChange, ConfChangeStep, Membership};
use crate::raft::types::NodeId;

use ConfChangeStep::{AddLearner, AddVoter, PromoteLearner, Remove};

fn n(i: u64) -> NodeId {
    NodeId(i)
}

fn base() -> Membership {
    let mut m = Membership::with_voters([n(1), n(2), n(3)]);
    m.learners.insert(n(4));
    m
}

#[test]
fn validation_table() {
    let cases: Vec<(Vec<ConfChangeStep>, Result<(), ConfChangeError>)> = vec![
        (vec![AddVoter(n(5))], Ok(())),
        (
            vec![AddVoter(n(2))],
            Err(ConfChangeError::AlreadyMember { id: n(2) }),
        ),
        (
            vec![AddLearner(n(4))],
            Err(ConfChangeError::AlreadyMember { id: n(4) }),
        ),
        (
            vec![PromoteLearner(n(3))],
            Err(ConfChangeError::NotLearner { id: n(3) }),
        ),
        (vec![PromoteLearner(n(4))], Ok(())),
        (
            vec![Remove(n(9))],
            Err(ConfChangeError::NotMember { id: n(9) }),
        ),
        (
            vec![Remove(n(1)), Remove(n(2)), Remove(n(3))],
            Err(ConfChangeError::NoVotersLeft),
        ),
        (vec![Remove(n(1))], Ok(())),
        (vec![AddVoter(n(0))], Err(ConfChangeError::InvalidNodeId)),
        (vec![], Err(ConfChangeError::Empty)),
        // Steps apply in order: demote a voter to learner.
        (vec![Remove(n(3)), AddLearner(n(3))], Ok(())),
    ];
    for (steps, want) in cases {
        let got = ConfChange::auto(steps.clone())
            .apply_to(&base())
            .map(|_| ());
        assert_eq!(got, want, "{steps:?}");
    }
}

#[test]
fn voter_changes_go_joint_learner_changes_do_not() {
    let joint = ConfChange::auto(vec![AddVoter(n(5))])
        .apply_to(&base())
        .expect("valid");
    assert!(joint.is_joint());
    assert_eq!(joint.voters_outgoing, base().voters);
    assert!(joint.auto_leave);
    assert_eq!(
        ConfChange::Leave.apply_to(&base()),
        Err(ConfChangeError::NotJoint)
    );
    assert_eq!(
        ConfChange::auto(vec![AddVoter(n(6))]).apply_to(&joint),
        Err(ConfChangeError::AlreadyJoint)
    );
    let left = ConfChange::Leave.apply_to(&joint).expect("leave");
    assert!(!left.is_joint());
    assert!(left.voters.contains(&n(5)));

    let simple = ConfChange::auto(vec![AddLearner(n(7))])
        .apply_to(&base())
        .expect("valid");
    assert!(!simple.is_joint());
    assert!(simple.learners.contains(&n(7)));
}

#[test]
fn demoted_voter_is_outgoing_voter_and_learner_while_joint() {
    let m = ConfChange::auto(vec![Remove(n(3)), AddLearner(n(3))])
        .apply_to(&base())
        .expect("valid");
    assert!(m.is_voter(n(3)), "still votes in the outgoing half");
    assert!(m.learners.contains(&n(3)));
    let left = ConfChange::Leave.apply_to(&m).expect("leave");
    assert!(left.is_learner_only(n(3)));
}

fn arb_step() -> impl Strategy<Value = ConfChangeStep> {
    (0u8..4, 0u64..8).prop_map(|(k, i)| match k {
        0 => AddVoter(n(i)),
        1 => AddLearner(n(i)),
        2 => PromoteLearner(n(i)),
        _ => Remove(n(i)),
    })
}

proptest! {
    #[test]
    fn conf_change_roundtrips(steps in prop::collection::vec(arb_step(), 0..6), auto in any::<bool>()) {
        let cc = ConfChange::Enter { steps, auto_leave: auto };
        prop_assert_eq!(ConfChange::decode(&cc.encode()), Ok(cc));
    }

    #[test]
    fn membership_roundtrips_and_valid_changes_keep_invariants(
        steps in prop::collection::vec(arb_step(), 1..6)
    ) {
        let m = base();
        prop_assert_eq!(Membership::decode(&m.encode()), Ok(m.clone()));
        if let Ok(next) = ConfChange::auto(steps).apply_to(&m) {
            next.assert_valid();
            prop_assert!(!next.voters.is_empty());
            prop_assert_eq!(Membership::decode(&next.encode()), Ok(next.clone()));
        }
    }

    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = ConfChange::decode(&bytes);
        let _ = Membership::decode(&bytes);
    }
}
