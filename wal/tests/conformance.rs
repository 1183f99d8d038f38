//! One conformance suite run against both real I/O backends (io_uring and the plain thread)
//! over real temporary directories, with the default threads (background writer, segment
//! preparation ahead).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::thread;

use bytes::Bytes;
use common::Model;
use ringraft_wal::{BackendKind, Config, Entry, HardState, SnapshotMeta, Wal};

fn config(backend: BackendKind) -> Config {
    Config {
        backend,
        segment_bytes: 64 << 10,
        record_bytes_max: 4 << 10,
        ..Config::small()
    }
}

fn available(kind: BackendKind) -> bool {
    let dir = tempfile::tempdir().unwrap();
    match Wal::open(dir.path(), config(kind)) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping {kind:?}: {e}");
            false
        }
    }
}

fn append_read_reopen(kind: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::new();
    {
        let wal = Wal::open(dir.path(), config(kind)).unwrap();
        for i in 1..=600u64 {
            let p = Bytes::from(vec![i as u8; (i % 700) as usize]);
            m.append(i / 50, p.clone());
            let t = wal.append(vec![Entry::new(i, i / 50, p)]).unwrap();
            if i % 3 == 0 {
                assert!(t.wait().unwrap() >= i);
            }
        }
        wal.flush().unwrap();
        let hs = HardState {
            term: 12,
            vote: Some(1),
            commit: 500,
        };
        wal.set_hard_state(hs).unwrap().wait().unwrap();
        m.hard_state = Some(hs);
        assert!(Model::read(&wal).same(&m));
    }
    let wal = Wal::open(dir.path(), config(kind)).unwrap();
    assert!(Model::read(&wal).same(&m));
}

fn markers_survive_reopen(kind: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::new();
    {
        let wal = Wal::open(dir.path(), config(kind)).unwrap();
        let e: Vec<_> = (1..=400)
            .map(|i| Entry::new(i, 1, vec![7u8; 300]))
            .collect();
        for e in &e {
            m.append(1, e.payload.clone());
        }
        wal.append(e).unwrap().wait().unwrap();
        wal.truncate_suffix(300).unwrap();
        m.truncate(300);
        wal.append(vec![Entry::new(300, 2, "x")])
            .unwrap()
            .wait()
            .unwrap();
        m.append(2, Bytes::from_static(b"x"));
        let s = SnapshotMeta {
            index: 250,
            term: 1,
            membership: Bytes::from_static(b"m"),
        };
        wal.set_snapshot_meta(s.clone()).unwrap().wait().unwrap();
        m.snapshot = Some(s);
        wal.compact_prefix(250).unwrap();
        m.compact(250);
        assert!(Model::read(&wal).same(&m));
    }
    let wal = Wal::open(dir.path(), config(kind)).unwrap();
    assert!(Model::read(&wal).same(&m));
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(
        files <= 4,
        "compaction deleted old segments ({files} files left)"
    );
}

fn concurrent_appenders(kind: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(dir.path(), config(kind)).unwrap());
    // Appenders take turns through a mutex to pick indices, then wait concurrently.
    let next = Arc::new(std::sync::Mutex::new(1u64));
    let hs: Vec<_> = (0..8)
        .map(|t| {
            let (wal, next) = (wal.clone(), next.clone());
            thread::spawn(move || {
                for _ in 0..100 {
                    let ticket = {
                        let mut n = next.lock().unwrap();
                        let tk = wal
                            .append(vec![Entry::new(*n, 1, vec![t as u8; 100])])
                            .unwrap();
                        *n += 1;
                        tk
                    };
                    let idx = ticket.wait().unwrap();
                    assert!(idx >= 1);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(wal.last_index(), 800);
    assert_eq!(wal.entries(1..801).unwrap().len(), 800);
}

macro_rules! conformance {
    ($name:ident, $kind:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn append_read_reopen() {
                if available($kind) {
                    super::append_read_reopen($kind);
                }
            }

            #[test]
            fn markers_survive_reopen() {
                if available($kind) {
                    super::markers_survive_reopen($kind);
                }
            }

            #[test]
            fn concurrent_appenders() {
                if available($kind) {
                    super::concurrent_appenders($kind);
                }
            }
        }
    };
}

conformance!(io_uring, BackendKind::IoUring);
conformance!(thread_backend, BackendKind::Thread);
