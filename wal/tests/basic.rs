//! Behaviour on the simulated disk: reads, reopen, rotation, markers, bad input, corruption.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use ringraft_wal::layout::{segment_name, HEADER_LEN};
use ringraft_wal::sim::SimDisk;
use ringraft_wal::{CorruptionKind, Entry, Error, HardState, RecoveryMode, SnapshotMeta};

fn fill(wal: &ringraft_wal::Wal, from: u64, to: u64, len: usize) {
    let e: Vec<_> = (from..=to)
        .map(|i| Entry::new(i, 1 + i / 100, vec![i as u8; len]))
        .collect();
    wal.append(e).unwrap().wait().unwrap();
}

#[test]
fn append_read_reopen_across_segments() {
    let disk = SimDisk::new();
    let b = disk.backend();
    let cfg = sim_config();
    {
        let wal = open(&b, &cfg).unwrap();
        for i in 0..50 {
            fill(&wal, i * 10 + 1, i * 10 + 10, 300);
        }
        assert_eq!(wal.last_index(), 500);
        let t = wal
            .set_hard_state(HardState {
                term: 5,
                vote: Some(2),
                commit: 400,
            })
            .unwrap();
        assert_eq!(t.wait().unwrap(), 500);
        assert_eq!(
            wal.entry(250).unwrap().payload,
            Bytes::from(vec![250u8; 300])
        );
    }
    // 500 * 336 bytes does not fit in one 64 KiB segment.
    assert!(disk.file(&segment_name(3)).is_some());
    let wal = open(&b, &cfg).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (1, 500));
    assert_eq!(
        wal.hard_state(),
        Some(HardState {
            term: 5,
            vote: Some(2),
            commit: 400
        })
    );
    let all = wal.entries(1..501).unwrap();
    for (k, e) in all.iter().enumerate() {
        assert_eq!((e.index, e.term), (k as u64 + 1, 1 + (k as u64 + 1) / 100));
        assert_eq!(e.payload, Bytes::from(vec![(k + 1) as u8; 300]));
    }
    fill(&wal, 501, 510, 10);
    assert_eq!(wal.term(510).unwrap(), 6);
}

#[test]
fn bad_input_writes_nothing() {
    let disk = SimDisk::new();
    let b = disk.backend();
    let cfg = sim_config();
    let wal = open(&b, &cfg).unwrap();
    fill(&wal, 1, 3, 10);
    let ops = disk.ops();
    let big = vec![0u8; cfg.record_bytes_max as usize + 1];
    assert!(matches!(
        wal.append(vec![Entry::new(4, 1, big)]),
        Err(Error::RecordTooLarge { index: 4, .. })
    ));
    assert!(matches!(
        wal.append(vec![Entry::new(5, 1, "x")]),
        Err(Error::NonConsecutive {
            expected: 4,
            got: 5
        })
    ));
    assert!(matches!(
        wal.append(vec![Entry::new(4, 1, "x"), Entry::new(6, 1, "x")]),
        Err(Error::NonConsecutive {
            expected: 5,
            got: 6
        })
    ));
    assert!(matches!(
        wal.append(vec![Entry::new(4, 0, "x")]),
        Err(Error::TermRegression {
            index: 4,
            term: 0,
            prev_term: 1
        })
    ));
    assert!(matches!(wal.append(vec![]), Err(Error::EmptyBatch)));
    assert!(matches!(
        wal.truncate_suffix(5),
        Err(Error::TruncateOutOfRange {
            from: 5,
            first: 1,
            last: 3
        })
    ));
    wal.compact_prefix(1).unwrap();
    let ops2 = disk.ops();
    assert!(ops2 > ops);
    assert!(matches!(
        wal.compact_prefix(0),
        Err(Error::CompactOutOfRange { up_to: 0, first: 2 })
    ));
    assert!(matches!(
        wal.truncate_suffix(1),
        Err(Error::TruncateOutOfRange { from: 1, .. })
    ));
    assert!(matches!(
        wal.entry(1),
        Err(Error::Compacted { index: 1, first: 2 })
    ));
    assert!(matches!(
        wal.entry(4),
        Err(Error::Unavailable { index: 4, last: 3 })
    ));
    let m = SnapshotMeta {
        index: 1,
        term: 1,
        membership: Bytes::from(vec![0u8; 5000]),
    };
    assert!(matches!(
        wal.set_snapshot_meta(m),
        Err(Error::MembershipTooLarge { .. })
    ));
    assert_eq!(disk.ops(), ops2);
    fill(&wal, 4, 4, 1);
}

#[test]
fn truncate_then_append_never_resurrects() {
    let disk = SimDisk::new();
    let b = disk.backend();
    let cfg = sim_config();
    {
        let wal = open(&b, &cfg).unwrap();
        fill(&wal, 1, 300, 200);
        wal.truncate_suffix(100).unwrap();
        assert_eq!(wal.last_index(), 99);
        let e: Vec<_> = (100..=120)
            .map(|i| Entry::new(i, 9, vec![0xEE; 7]))
            .collect();
        wal.append(e).unwrap().wait().unwrap();
    }
    let wal = open(&b, &cfg).unwrap();
    assert_eq!(wal.last_index(), 120);
    assert_eq!(wal.entry(110).unwrap().payload, Bytes::from(vec![0xEE; 7]));
    assert_eq!(wal.entry(99).unwrap().payload, Bytes::from(vec![99u8; 200]));
}

#[test]
fn compaction_deletes_whole_segments_and_keeps_state() {
    let disk = SimDisk::new();
    let b = disk.backend();
    let cfg = sim_config();
    {
        let wal = open(&b, &cfg).unwrap();
        wal.set_hard_state(HardState {
            term: 2,
            vote: None,
            commit: 7,
        })
        .unwrap()
        .wait()
        .unwrap();
        fill(&wal, 1, 1000, 200);
        let snap = SnapshotMeta {
            index: 900,
            term: 10,
            membership: Bytes::from_static(b"abc"),
        };
        wal.set_snapshot_meta(snap).unwrap().wait().unwrap();
        wal.compact_prefix(900).unwrap();
        assert_eq!(wal.first_index(), 901);
        assert_eq!(wal.term(900).unwrap(), 10);
    }
    assert!(
        disk.file(&segment_name(1)).is_none(),
        "old segments deleted"
    );
    let wal = open(&b, &cfg).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (901, 1000));
    assert_eq!(
        wal.hard_state(),
        Some(HardState {
            term: 2,
            vote: None,
            commit: 7
        })
    );
    assert_eq!(wal.snapshot_meta().unwrap().index, 900);
    // Compact past the end: the log is empty and continues after the snapshot.
    wal.compact_prefix(2000).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (2001, 2000));
    fill(&wal, 2001, 2001, 3);
    drop(wal);
    let wal = open(&b, &cfg).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (2001, 2001));
}

/// The node's loop compacts without draining the queue: the marker rides with appends
/// queued around it, segments go only when asked, and the result reopens the same.
#[test]
fn queued_compaction_rides_with_appends_and_reopens() {
    let disk = SimDisk::new();
    let b = disk.backend();
    let cfg = sim_config();
    {
        let wal = open(&b, &cfg).unwrap();
        fill(&wal, 1, 1000, 200);
        let err = wal.compact_prefix_queued(1001).err();
        assert!(
            matches!(
                err,
                Some(Error::CompactNotDurable {
                    up_to: 1001,
                    last: 1000
                })
            ),
            "{err:?}"
        );
        let before: Vec<_> = (1001..=1010)
            .map(|i| Entry::new(i, 11, vec![1u8; 50]))
            .collect();
        let t_before = wal.append(before).unwrap();
        let t_compact = wal
            .compact_prefix_queued(900)
            .unwrap()
            .expect("something to compact");
        let after: Vec<_> = (1011..=1020)
            .map(|i| Entry::new(i, 11, vec![2u8; 50]))
            .collect();
        let t_after = wal.append(after).unwrap();
        assert_eq!(t_after.wait().unwrap(), 1020);
        assert!(t_before.wait().unwrap() >= 1010);
        t_compact.wait().unwrap();
        assert_eq!((wal.first_index(), wal.last_index()), (901, 1020));
        assert_eq!(wal.term(900).unwrap(), 10);
        assert!(disk.file(&segment_name(1)).is_some(), "kept until deleted");
        wal.delete_compacted().unwrap();
        assert!(
            disk.file(&segment_name(1)).is_none(),
            "old segments deleted"
        );
        // Already compacted: nothing to queue.
        assert!(wal.compact_prefix_queued(850).unwrap().is_none());
    }
    let wal = open(&b, &cfg).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (901, 1020));
    assert_eq!(wal.entry(1015).unwrap().payload, Bytes::from(vec![2u8; 50]));
}

fn flipped_log() -> (SimDisk, usize) {
    let disk = SimDisk::new();
    let b = disk.backend();
    let wal = open(&b, &sim_config()).unwrap();
    fill(&wal, 1, 100, 100);
    drop(wal);
    // Entry frames are 136 bytes after a 48-byte checkpoint; flip a payload bit of entry 50.
    let off = HEADER_LEN + 48 + 49 * 136 + 40;
    disk.flip_bit(&segment_name(1), off, 3);
    (disk, off)
}

#[test]
fn bit_flip_in_the_middle_is_corruption() {
    let (disk, off) = flipped_log();
    let err = open(&disk.backend(), &sim_config()).unwrap_err();
    match err {
        Error::Corruption {
            kind: CorruptionKind::BadFrame,
            segment: 1,
            offset,
            index: Some(50),
        } => {
            assert_eq!(offset as usize, off - 40);
        }
        other => panic!("unexpected {other:?}"),
    }
    // Nothing deleted: a second strict open reports the same.
    assert!(matches!(
        open(&disk.backend(), &sim_config()),
        Err(Error::Corruption { .. })
    ));
}

#[test]
fn truncate_at_corruption_cuts_there() {
    let (disk, _) = flipped_log();
    let cfg = ringraft_wal::Config {
        recovery: RecoveryMode::TruncateAtCorruption,
        ..sim_config()
    };
    let wal = open(&disk.backend(), &cfg).unwrap();
    assert_eq!(wal.last_index(), 49);
    fill(&wal, 50, 60, 5);
    drop(wal);
    let wal = open(&disk.backend(), &sim_config()).unwrap();
    assert_eq!(wal.last_index(), 60);
}

#[test]
fn async_ticket_completes_with_background_writer() {
    let disk = SimDisk::new();
    let cfg = ringraft_wal::Config {
        background_writer: true,
        ..sim_config()
    };
    let wal = open(&disk.backend(), &cfg).unwrap();
    let t = wal.append(vec![Entry::new(1, 1, "a")]).unwrap();
    assert_eq!(block_on(t).unwrap(), 1);
}

/// A minimal executor: parks the thread until woken.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake};
    struct T(std::thread::Thread);
    impl Wake for T {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(T(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn missing_middle_segment_is_corruption() {
    let disk = SimDisk::new();
    let b = disk.backend();
    let wal = open(&b, &sim_config()).unwrap();
    fill(&wal, 1, 300, 200);
    drop(wal);
    b.remove(&segment_name(3)).unwrap();
    b.sync_dir().unwrap();
    match open(&b, &sim_config()) {
        Err(Error::Corruption {
            kind: CorruptionKind::MissingSegment,
            segment: 3,
            ..
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn damaged_sealed_segment_is_corruption_not_a_torn_tail() {
    let disk = SimDisk::new();
    let b = disk.backend();
    let wal = open(&b, &sim_config()).unwrap();
    fill(&wal, 1, 300, 200);
    drop(wal);
    // Zero the last frames of segment 1 (its seal included): valid frames follow in
    // segment 2, so this cannot be a torn tail.
    let seg = disk.file(&segment_name(1)).unwrap();
    let last_nonzero = seg.iter().rposition(|&x| x != 0).unwrap();
    for (off, &byte) in seg
        .iter()
        .enumerate()
        .take(last_nonzero + 1)
        .skip(last_nonzero - 300)
    {
        if byte != 0 {
            for bit in 0..8 {
                if byte & (1 << bit) != 0 {
                    disk.flip_bit(&segment_name(1), off, bit);
                }
            }
        }
    }
    match open(&b, &sim_config()) {
        Err(Error::Corruption { segment: 1, .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
}
