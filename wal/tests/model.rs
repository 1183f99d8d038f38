//! Property tests against a Vec model: random appends, truncations, compactions, hard state
//! and snapshot updates, and reopens; the log always reads back equal to the model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use ringraft_wal::io::{DirBackend, IoBackend};
use ringraft_wal::sim::SimDisk;
use ringraft_wal::{Config, HardState, SnapshotMeta};

#[derive(Debug, Clone)]
enum Op {
    Append { n: u8, len: u16, bump: bool },
    Truncate(u16),
    Compact(u16),
    Hard(u8),
    Snap(u8),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..8, 0u16..600, any::<bool>()).prop_map(|(n, len, bump)| Op::Append { n, len, bump }),
        1 => any::<u16>().prop_map(Op::Truncate),
        1 => any::<u16>().prop_map(Op::Compact),
        1 => any::<u8>().prop_map(Op::Hard),
        1 => any::<u8>().prop_map(Op::Snap),
        1 => Just(Op::Reopen),
    ]
}

/// Translates a generated op into a valid step (or a reopen) and applies it to the model.
fn to_step(op: &Op, m: &mut Model, term: &mut u64) -> Option<Step> {
    let span = m.entries.len() as u64 + 1;
    Some(match *op {
        Op::Append { n, len, bump } => {
            *term += u64::from(bump);
            let batch: Vec<_> = (0..n)
                .map(|i| {
                    (
                        *term,
                        Bytes::from(vec![i.wrapping_add(len as u8); len as usize]),
                    )
                })
                .collect();
            for (t, p) in &batch {
                m.append(*t, p.clone());
            }
            Step::Append(batch)
        }
        Op::Truncate(x) => {
            let from = m.first + u64::from(x) % span;
            m.truncate(from);
            *term += 1;
            Step::Truncate(from)
        }
        Op::Compact(x) => {
            let up_to = m.first - 1 + u64::from(x) % (span + 3);
            m.compact(up_to);
            Step::Compact(up_to)
        }
        Op::Hard(x) => {
            let hs = HardState {
                term: *term,
                vote: (x % 2 == 0).then_some(u64::from(x)),
                commit: u64::from(x),
            };
            m.hard_state = Some(hs);
            Step::HardState(hs)
        }
        Op::Snap(x) => {
            let s = SnapshotMeta {
                index: u64::from(x),
                term: *term,
                membership: Bytes::from(vec![x; x as usize]),
            };
            m.snapshot = Some(s.clone());
            Step::Snapshot(s)
        }
        Op::Reopen => return None,
    })
}

fn check_ops(backend: Arc<dyn IoBackend>, cfg: &Config, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut m = Model::new();
    let mut term = 1;
    let mut wal = open(&backend, cfg).unwrap();
    for op in ops {
        match to_step(op, &mut m, &mut term) {
            Some(step) => apply(&wal, &m, &step).unwrap(),
            None => {
                drop(wal);
                wal = open(&backend, cfg).unwrap();
            }
        }
        let got = Model::read(&wal);
        prop_assert!(
            got.same(&m),
            "after {:?}:\n got {:?}\nwant {:?}",
            op,
            got,
            m
        );
    }
    drop(wal);
    let wal = open(&backend, cfg).unwrap();
    prop_assert!(Model::read(&wal).same(&m));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sim_log_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        check_ops(SimDisk::new().backend(), &sim_config(), &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn thread_backend_log_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config { durability: ringraft_wal::Durability::NoSync, ..sim_config() };
        let backend: Arc<dyn IoBackend> = Arc::new(DirBackend::thread(dir.path()).unwrap());
        check_ops(backend, &cfg, &ops)?;
    }
}
