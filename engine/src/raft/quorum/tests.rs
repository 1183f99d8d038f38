//! Quorum arithmetic against a naive model.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::raft::membership::Membership;
use crate::raft::quorum::{JointConfig, MajorityConfig, VoteResult};
use crate::raft::types::NodeId;

/// The largest value that at least a majority of `voters` has acknowledged, by brute force.
fn naive_committed(voters: &BTreeSet<NodeId>, acked: &BTreeMap<NodeId, u64>) -> u64 {
    if voters.is_empty() {
        return u64::MAX;
    }
    let quorum = voters.len() / 2 + 1;
    let value = |id: &NodeId| acked.get(id).copied().unwrap_or(0);
    let mut candidates: Vec<u64> = voters.iter().map(value).collect();
    candidates.push(0);
    candidates
        .into_iter()
        .filter(|c| voters.iter().filter(|v| value(v) >= *c).count() >= quorum)
        .max()
        .unwrap_or(0)
}

fn naive_vote(voters: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let quorum = voters.len() / 2 + 1;
    let yes = voters
        .iter()
        .filter(|v| votes.get(v) == Some(&true))
        .count();
    let no = voters
        .iter()
        .filter(|v| votes.get(v) == Some(&false))
        .count();
    if yes >= quorum {
        VoteResult::Won
    } else if voters.len() - no >= quorum {
        VoteResult::Pending
    } else {
        VoteResult::Lost
    }
}

fn ids(v: &[u64]) -> BTreeSet<NodeId> {
    v.iter().map(|i| NodeId(*i)).collect()
}

#[test]
fn majority_committed_table() {
    type Case<'a> = (&'a [u64], &'a [(u64, u64)], u64);
    let cases: &[Case<'_>] = &[
        (&[1], &[(1, 5)], 5),
        (&[1, 2, 3], &[(1, 5), (2, 3)], 3),
        (&[1, 2, 3], &[(1, 5)], 0),
        (&[1, 2, 3, 4], &[(1, 9), (2, 8), (3, 7), (4, 1)], 7),
        (
            &[1, 2, 3, 4, 5],
            &[(1, 9), (2, 9), (3, 2), (4, 2), (5, 2)],
            2,
        ),
        (&[], &[], u64::MAX),
    ];
    for (voters, acked, want) in cases {
        let cfg = MajorityConfig::new(ids(voters));
        let acked: BTreeMap<NodeId, u64> = acked.iter().map(|(i, v)| (NodeId(*i), *v)).collect();
        assert_eq!(
            cfg.committed(|id| acked.get(&id).copied()),
            *want,
            "{voters:?}"
        );
    }
}

#[test]
fn joint_vote_needs_both_halves() {
    let m = Membership {
        voters: ids(&[1, 2, 3]),
        voters_outgoing: ids(&[3, 4, 5]),
        ..Membership::default()
    };
    let cfg = JointConfig::from_membership(&m);
    let votes = |pairs: &[(u64, bool)]| -> BTreeMap<NodeId, bool> {
        pairs.iter().map(|(i, g)| (NodeId(*i), *g)).collect()
    };
    let v = votes(&[(1, true), (2, true)]);
    assert_eq!(
        cfg.vote_result(|id| v.get(&id).copied()),
        VoteResult::Pending
    );
    let v = votes(&[(1, true), (2, true), (3, true), (4, true)]);
    assert_eq!(cfg.vote_result(|id| v.get(&id).copied()), VoteResult::Won);
    let v = votes(&[(1, true), (2, true), (4, false), (5, false)]);
    assert_eq!(cfg.vote_result(|id| v.get(&id).copied()), VoteResult::Lost);
}

fn arb_voters() -> impl Strategy<Value = BTreeSet<NodeId>> {
    prop::collection::btree_set(1u64..10, 0..8).prop_map(|s| s.into_iter().map(NodeId).collect())
}

fn arb_acked() -> impl Strategy<Value = BTreeMap<NodeId, u64>> {
    prop::collection::btree_map((1u64..10).prop_map(NodeId), 0u64..20, 0..10)
}

fn arb_votes() -> impl Strategy<Value = BTreeMap<NodeId, bool>> {
    prop::collection::btree_map((1u64..10).prop_map(NodeId), any::<bool>(), 0..10)
}

proptest! {
    #[test]
    fn majority_committed_matches_model(voters in arb_voters(), acked in arb_acked()) {
        let cfg = MajorityConfig::new(voters.clone());
        prop_assert_eq!(cfg.committed(|id| acked.get(&id).copied()), naive_committed(&voters, &acked));
    }

    #[test]
    fn joint_committed_is_min_of_halves(a in arb_voters(), b in arb_voters(), acked in arb_acked()) {
        let cfg = JointConfig {
            incoming: MajorityConfig::new(a.clone()),
            outgoing: MajorityConfig::new(b.clone()),
        };
        let want = naive_committed(&a, &acked).min(naive_committed(&b, &acked));
        prop_assert_eq!(cfg.committed(|id| acked.get(&id).copied()), want);
    }

    #[test]
    fn vote_result_matches_model(voters in arb_voters(), votes in arb_votes()) {
        let cfg = MajorityConfig::new(voters.clone());
        prop_assert_eq!(cfg.vote_result(|id| votes.get(&id).copied()), naive_vote(&voters, &votes));
    }

    #[test]
    fn joint_vote_matches_model(a in arb_voters(), b in arb_voters(), votes in arb_votes()) {
        let cfg = JointConfig {
            incoming: MajorityConfig::new(a.clone()),
            outgoing: MajorityConfig::new(b.clone()),
        };
        let (ra, rb) = (naive_vote(&a, &votes), naive_vote(&b, &votes));
        let want = match (ra, rb) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        };
        prop_assert_eq!(cfg.vote_result(|id| votes.get(&id).copied()), want);
    }
}
