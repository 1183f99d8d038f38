//! Each safety property, fed hand-made cluster states: it accepts a legal one and reports the
//! violation it exists for.

use std::collections::BTreeMap;

use ringraft_tests::invariants::acked_writes::AckedWritesDurable;
use ringraft_tests::invariants::commit_monotonic::CommitMonotonic;
use ringraft_tests::invariants::election_safety::ElectionSafety;
use ringraft_tests::invariants::leader_completeness::LeaderCompleteness;
use ringraft_tests::invariants::log_matching::LogMatching;
use ringraft_tests::invariants::state_machine_safety::StateMachineSafety;
use ringraft_tests::invariants::{
    AckedWrite, ClusterView, ConfigView, DurableView, EntryRecord, Invariant, LogMirror, NodeView,
    Observation, RoleView,
};

fn log(terms_digests: &[(u64, u64)]) -> LogMirror {
    LogMirror {
        snapshot_index: 0,
        snapshot_term: 0,
        entries: terms_digests
            .iter()
            .map(|(term, digest)| EntryRecord {
                term: *term,
                digest: *digest,
            })
            .collect(),
    }
}

/// A live follower at term 1 whose log, durable log and commit are as given.
fn node<'a>(id: u64, log: &'a LogMirror, durable: &'a LogMirror, commit: u64) -> NodeView<'a> {
    NodeView {
        id,
        alive: true,
        member: true,
        incarnation: 1,
        role: RoleView::Follower,
        term: 1,
        commit,
        applied: commit,
        log,
        durable: DurableView {
            term: 1,
            commit,
            log: durable,
        },
    }
}

fn view<'a>(
    nodes: Vec<NodeView<'a>>,
    observations: &'a [Observation],
    acked: &'a [AckedWrite],
) -> ClusterView<'a> {
    ClusterView {
        step: 1,
        now: 0,
        nodes: nodes
            .into_iter()
            .map(|n| (n.id, n))
            .collect::<BTreeMap<_, _>>(),
        observations,
        acked_writes: acked,
    }
}

#[test]
fn election_safety_rejects_two_leaders_in_one_term() {
    let l = log(&[]);
    let mut inv = ElectionSafety::default();
    let first = [Observation::BecameLeader { node: 1, term: 3 }];
    assert!(inv
        .check(&view(vec![node(1, &l, &l, 0)], &first, &[]))
        .is_ok());
    let later = [Observation::BecameLeader { node: 2, term: 4 }];
    assert!(
        inv.check(&view(vec![], &later, &[])).is_ok(),
        "another term is fine"
    );
    let second = [Observation::BecameLeader { node: 2, term: 3 }];
    let err = inv
        .check(&view(vec![], &second, &[]))
        .expect_err("two leaders of term 3");
    assert!(err.to_string().contains("term 3"), "{err}");
}

#[test]
fn log_matching_rejects_same_index_and_term_with_different_entries() {
    let a = log(&[(1, 10), (1, 11)]);
    let b_ok = log(&[(1, 10), (1, 11)]);
    let b_bad = log(&[(1, 10), (1, 99)]);
    let appended = |node| Observation::Appended {
        node,
        first_index: 1,
        count: 2,
    };
    let mut inv = LogMatching::default();
    let obs = [appended(1), appended(2)];
    assert!(inv
        .check(&view(
            vec![node(1, &a, &a, 0), node(2, &b_ok, &b_ok, 0)],
            &obs,
            &[]
        ))
        .is_ok());
    let mut inv = LogMatching::default();
    let err = inv
        .check(&view(
            vec![node(1, &a, &a, 0), node(2, &b_bad, &b_bad, 0)],
            &obs,
            &[],
        ))
        .expect_err("index 2 term 1 differs");
    assert_eq!(err.property, "log matching");
}

#[test]
fn log_matching_rejects_matching_entries_with_different_prefixes() {
    // Same (index 2, term 3) entry on both, but different terms at index 1 before it.
    let a = log(&[(1, 10), (3, 30)]);
    let b = log(&[(2, 20), (3, 30)]);
    let obs = [
        Observation::Appended {
            node: 1,
            first_index: 1,
            count: 2,
        },
        Observation::Appended {
            node: 2,
            first_index: 1,
            count: 2,
        },
    ];
    let mut inv = LogMatching::default();
    assert!(inv
        .check(&view(
            vec![node(1, &a, &a, 0), node(2, &b, &b, 0)],
            &obs,
            &[]
        ))
        .is_err());
}

#[test]
fn state_machine_safety_rejects_different_applies_at_one_index() {
    let l = log(&[]);
    let applied = |node, digest| Observation::Applied {
        node,
        index: 5,
        term: 2,
        digest,
    };
    let mut inv = StateMachineSafety::default();
    assert!(inv
        .check(&view(
            vec![node(1, &l, &l, 0)],
            &[applied(1, 7), applied(2, 7)],
            &[]
        ))
        .is_ok());
    let err = inv
        .check(&view(vec![], &[applied(3, 8)], &[]))
        .expect_err("different entry at 5");
    assert_eq!(err.property, "state machine safety");
}

#[test]
fn commit_monotonic_rejects_going_back() {
    let l = log(&[(1, 1), (1, 2), (1, 3)]);
    let mut inv = CommitMonotonic::default();
    assert!(inv.check(&view(vec![node(1, &l, &l, 3)], &[], &[])).is_ok());
    let mut back = node(1, &l, &l, 2);
    back.durable.commit = 2;
    assert!(
        inv.check(&view(vec![back], &[], &[])).is_err(),
        "durable commit 3 -> 2"
    );
}

#[test]
fn leader_completeness_rejects_a_leader_missing_a_committed_entry() {
    let committed = log(&[(1, 10), (1, 11)]);
    let stale = log(&[(1, 10), (2, 50)]);
    let mut inv = LeaderCompleteness::default();
    assert!(inv
        .check(&view(vec![node(1, &committed, &committed, 2)], &[], &[]))
        .is_ok());
    let mut leader = node(2, &stale, &stale, 1);
    leader.role = RoleView::Leader;
    leader.term = 3;
    let obs = [Observation::BecameLeader { node: 2, term: 3 }];
    let err = inv
        .check(&view(vec![leader], &obs, &[]))
        .expect_err("leader lacks entry 2");
    assert!(err.detail.contains("lacks committed entry 2"), "{err}");
}

#[test]
fn acked_writes_must_stay_durable_on_a_majority() {
    let with = log(&[(1, 10)]);
    let without = log(&[]);
    let write = AckedWrite {
        index: 1,
        term: 1,
        digest: 10,
        key: 0,
        value: 1,
        configs: vec![ConfigView {
            voters: [1, 2, 3].into(),
            voters_outgoing: Default::default(),
        }],
    };
    let acked = [write];
    let mut inv = AckedWritesDurable::default();
    let two = vec![
        node(1, &with, &with, 1),
        node(2, &with, &with, 1),
        node(3, &without, &without, 0),
    ];
    assert!(inv.check(&view(two, &[], &acked)).is_ok());
    // Node 2's durable copy is gone (it only had it in memory): one of three is not a majority.
    let one = vec![
        node(1, &with, &with, 1),
        node(2, &with, &without, 1),
        node(3, &without, &without, 0),
    ];
    let rescan = [Observation::DurableShrunkOrConfigChanged];
    let err = inv
        .check(&view(one, &rescan, &acked))
        .expect_err("only node 1 holds it");
    assert_eq!(err.property, "acknowledged writes durable");
}

#[test]
fn acked_writes_accept_any_configuration_in_force_before_the_ack() {
    // Committed on {2, 3} under {2, 3, 5} after the cluster shrank from {1, ..., 5}.
    let with = log(&[(1, 10)]);
    let without = log(&[]);
    let config = |voters: &[u64]| ConfigView {
        voters: voters.iter().copied().collect(),
        voters_outgoing: Default::default(),
    };
    let write = AckedWrite {
        index: 1,
        term: 1,
        digest: 10,
        key: 0,
        value: 1,
        configs: vec![config(&[1, 2, 3, 4, 5]), config(&[2, 3, 5])],
    };
    let acked = [write];
    let nodes = vec![
        node(1, &without, &without, 0),
        node(2, &with, &with, 1),
        node(3, &with, &with, 1),
    ];
    assert!(AckedWritesDurable::default()
        .check(&view(nodes, &[], &acked))
        .is_ok());
}
