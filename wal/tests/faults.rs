//! Fault injection on the simulated disk: EIO on write and on fdatasync (fatal, never
//! retried), short writes, and ENOSPC while preparing a segment (clear, recoverable).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringraft_wal::sim::SimDisk;
use ringraft_wal::{Entry, Error, HardState};

fn entries(from: u64, to: u64, len: usize) -> Vec<Entry> {
    (from..=to)
        .map(|i| Entry::new(i, 1, vec![i as u8; len]))
        .collect()
}

fn fatal_then_refused(disk: &SimDisk, inject: impl Fn(&SimDisk)) {
    let b = disk.backend();
    let wal = open(&b, &sim_config()).unwrap();
    wal.append(entries(1, 10, 50)).unwrap().wait().unwrap();
    inject(disk);
    let err = wal.append(entries(11, 12, 50)).unwrap().wait().unwrap_err();
    assert!(err.is_fatal(), "{err:?}");
    let ops = disk.ops();
    // Every later request is refused without touching the disk: no retried fsync.
    assert!(wal.append(entries(11, 12, 50)).unwrap_err().is_fatal());
    assert!(wal
        .set_hard_state(HardState::default())
        .unwrap_err()
        .is_fatal());
    assert!(wal.truncate_suffix(5).unwrap_err().is_fatal());
    assert!(wal.flush().unwrap_err().is_fatal());
    assert!(wal.fatal_error().is_some());
    assert_eq!(disk.ops(), ops);
    assert_eq!(wal.last_index(), 10);
    drop(wal);
    let wal = open(&b, &sim_config()).unwrap();
    assert!(wal.last_index() >= 10);
    assert_eq!(wal.entry(10).unwrap().payload, vec![10u8; 50]);
}

#[test]
fn eio_on_write_is_fatal() {
    fatal_then_refused(&SimDisk::new(), |d| d.fail_write_in(0));
}

#[test]
fn eio_on_fdatasync_is_fatal_and_not_retried() {
    let disk = SimDisk::new();
    fatal_then_refused(&disk, |d| d.fail_sync_in(0));
}

#[test]
fn short_writes_are_completed() {
    let disk = SimDisk::new();
    let b = disk.backend();
    let wal = open(&b, &sim_config()).unwrap();
    for i in 0..20u64 {
        disk.short_write_in(0);
        wal.append(entries(i * 5 + 1, i * 5 + 5, 200))
            .unwrap()
            .wait()
            .unwrap();
    }
    drop(wal);
    let wal = open(&b, &sim_config()).unwrap();
    assert_eq!(wal.last_index(), 100);
    for e in wal.entries(1..101).unwrap() {
        assert_eq!(e.payload, vec![e.index as u8; 200]);
    }
}

fn no_space_then_resume(prepare_ahead: bool) {
    let disk = SimDisk::new();
    let b = disk.backend();
    let cfg = ringraft_wal::Config {
        prepare_ahead,
        ..sim_config()
    };
    let wal = open(&b, &cfg).unwrap();
    // Let the background preparer (if any) finish its first spare before the disk fills.
    wal.append(entries(1, 1, 10)).unwrap().wait().unwrap();
    if prepare_ahead {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    disk.set_no_space(true);
    let mut next = 2;
    let err = loop {
        match wal.append(entries(next, next, 500)).unwrap().wait() {
            Ok(_) => next += 1,
            Err(e) => break e,
        }
        assert!(next < 1000, "the disk never filled");
    };
    assert!(matches!(err, Error::NoSpace { .. }), "{err:?}");
    assert!(!err.is_fatal());
    assert_eq!(wal.last_index(), next - 1);
    // Still refused while full, and nothing of it is readable.
    assert!(matches!(
        wal.append(entries(next, next, 500)).unwrap().wait(),
        Err(Error::NoSpace { .. })
    ));
    disk.set_no_space(false);
    wal.append(entries(next, next + 30, 500))
        .unwrap()
        .wait()
        .unwrap();
    drop(wal);
    let wal = open(&b, &sim_config()).unwrap();
    assert_eq!(wal.last_index(), next + 30);
    for e in wal.entries(2..next + 31).unwrap() {
        assert_eq!(e.payload, vec![e.index as u8; 500]);
    }
}

#[test]
fn enospc_when_preparing_a_segment_is_recoverable() {
    no_space_then_resume(false);
}

#[test]
fn enospc_with_background_preparation() {
    no_space_then_resume(true);
}
