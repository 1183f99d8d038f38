//! Why the WAL writes a new segment's zeros back one chunk at a time: commit latency (4 KiB
//! `pwrite` + `fdatasync`, one writer) while a second thread prepares 64 MiB segments
//! back to back, three ways, interleaved in rounds so all see the same disk:
//! - `idle`: nothing else writes (the floor);
//! - `burst`: 1 MiB zero writes, one closing fsync (the WAL before this change);
//! - `paced`: each 1 MiB chunk written back with `sync_file_range` before the next (the WAL now).
//!
//! `cargo run --release -p ringraft-bench --example zero_fill_pacing -- [SECONDS_PER_MODE] [ROUNDS]`
//! (defaults 5 and 2; files go to `$WAL_BENCH_DIR` or the temporary directory).

use clap::Parser;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CHUNK: usize = 1 << 20;
const SEGMENT_CHUNKS: u64 = 64;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Idle,
    Burst,
    Paced,
}

fn create(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .expect("create file")
}

/// Prepares segments until `stop`, as the WAL's preparer would under `mode`.
fn prepare_segments(dir: &Path, mode: Mode, stop: &AtomicBool) {
    let zeros = vec![0u8; CHUNK];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let f = create(&dir.join(format!("segment-{}", n % 2)));
        for i in 0..SEGMENT_CHUNKS {
            let off = i * CHUNK as u64;
            f.write_all_at(&zeros, off).expect("zero write");
            if mode == Mode::Paced {
                let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER;
                // SAFETY: a plain syscall on an open descriptor; no memory is passed.
                let rc = unsafe {
                    libc::sync_file_range(f.as_raw_fd(), off as i64, CHUNK as i64, flags)
                };
                assert_eq!(
                    rc,
                    0,
                    "sync_file_range: {}",
                    std::io::Error::last_os_error()
                );
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        f.sync_all().expect("fsync segment");
        n += 1;
    }
}

/// Commit latencies (microseconds, sorted) of one writer for `secs` under `mode`.
fn commits(dir: &Path, mode: Mode, secs: u64) -> Vec<u64> {
    let log = create(&dir.join("log"));
    let zeros = vec![0u8; CHUNK];
    for i in 0..16u64 {
        log.write_all_at(&zeros, i * CHUNK as u64)
            .expect("fill log");
    }
    log.sync_all().expect("fsync log");
    let stop = AtomicBool::new(false);
    let mut lat = Vec::new();
    std::thread::scope(|s| {
        if mode != Mode::Idle {
            s.spawn(|| prepare_segments(dir, mode, &stop));
        }
        let buf = vec![0xABu8; 4096];
        let end = Instant::now() + Duration::from_secs(secs);
        let mut off = 0u64;
        while Instant::now() < end {
            let t = Instant::now();
            log.write_all_at(&buf, off).expect("commit write");
            log.sync_data().expect("fdatasync");
            lat.push(t.elapsed().as_micros() as u64);
            off = (off + 4096) % (16 * CHUNK as u64);
        }
        stop.store(true, Ordering::Relaxed);
    });
    lat.sort_unstable();
    lat
}

/// Commit latency while new WAL segments are zero-filled three ways.
#[derive(Parser, Debug)]
struct Args {
    /// Seconds measured per mode and round.
    #[arg(default_value_t = 5)]
    secs: u64,
    /// Rounds of the three modes.
    #[arg(default_value_t = 2)]
    rounds: u64,
}

fn main() {
    let Args { secs, rounds } = Args::parse();
    let base = std::env::var_os("WAL_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base).expect("temporary directory");
    println!(
        "commit = 4 KiB pwrite + fdatasync, 1 writer; preparer = 64 MiB segments back to back"
    );
    for round in 1..=rounds {
        for mode in [Mode::Idle, Mode::Burst, Mode::Paced] {
            let lat = commits(dir.path(), mode, secs);
            let q = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
            println!(
                "round {round} {:<5} commits {:>6}  p50 {:>6} us  p99 {:>6} us  p99.9 {:>6} us  max {:>6} us",
                format!("{mode:?}").to_lowercase(),
                lat.len(),
                q(0.5),
                q(0.99),
                q(0.999),
                lat[lat.len() - 1],
            );
        }
    }
}
