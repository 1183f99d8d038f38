//! Does a WAL commit reach the disk? One appender commits 256 B records one at a time on
//! each backend, interleaved with a raw `pwrite` + `fdatasync` loop on a zero-filled file
//! in the same directory, and the block device's own flush counter
//! (`/sys/block/<dev>/stat`, field 16: flush requests completed) is read around each phase.
//! A backend whose sync really reaches the device shows about one flush per commit, like
//! the raw loop. Other processes' flushes on the same device count too: run it on a quiet
//! disk, or read the counts as upper bounds.
//!
//! ```sh
//! cargo run --release -p ringraft-wal --example sync_check -- /work/tmp 2000 3 vda
//! ```
//! Arguments: directory, commits per phase, rounds, block device name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use ringraft_wal::{BackendKind, Config, Entry, Wal};

const RECORD_BYTES: usize = 256;
/// Size of the raw loop's zero-filled file (it overwrites in place, as the WAL does).
const RAW_FILE_BYTES: u64 = 64 << 20;

fn flushes(dev: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/sys/block/{dev}/stat")).expect("device stat");
    stat.split_whitespace()
        .nth(15)
        .and_then(|f| f.parse().ok())
        .expect("field 16 (flush requests completed) in the device stat")
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Commits `n` records one at a time; returns the backend's name, the latencies and the
/// device flushes during the commits (not during the open, which zero-fills a segment).
fn wal_phase(
    dir: &Path,
    kind: BackendKind,
    n: u64,
    dev: &str,
) -> (&'static str, Vec<Duration>, u64) {
    let config = Config {
        backend: kind,
        ..Config::default()
    };
    let wal = Wal::open(dir, config).expect("open wal");
    let before = flushes(dev);
    let mut lat = Vec::new();
    let start = wal.last_index() + 1;
    for i in start..start + n {
        let t = Instant::now();
        let e = Entry::new(i, 1, vec![7u8; RECORD_BYTES]);
        wal.append(vec![e]).expect("append").wait().expect("commit");
        lat.push(t.elapsed());
    }
    (wal.backend_name(), lat, flushes(dev) - before)
}

fn raw_phase(file: &File, n: u64) -> Vec<Duration> {
    let buf = [7u8; RECORD_BYTES];
    let mut lat = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        file.write_all_at(&buf, i * RECORD_BYTES as u64)
            .expect("pwrite");
        file.sync_data().expect("fdatasync");
        lat.push(t.elapsed());
    }
    lat
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let root = Path::new(args.get(1).map_or("/tmp", String::as_str)).to_path_buf();
    let n: u64 = args.get(2).map_or(2000, |s| s.parse().expect("commits"));
    let rounds: u32 = args.get(3).map_or(3, |s| s.parse().expect("rounds"));
    let dev = args.get(4).map_or("vda", String::as_str).to_string();
    let tmp = tempfile::tempdir_in(&root).expect("tempdir");
    let raw_path = tmp.path().join("raw");
    let raw = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&raw_path)
        .expect("raw file");
    raw.write_all_at(&vec![0u8; RAW_FILE_BYTES as usize], 0)
        .expect("zero-fill");
    raw.sync_all().expect("sync raw file");
    for round in 1..=rounds {
        for (name, kind) in [
            ("io_uring", Some(BackendKind::IoUring)),
            ("thread", Some(BackendKind::Thread)),
            ("raw pwrite+fdatasync", None),
        ] {
            let t = Instant::now();
            let (got, lat, f) = match kind {
                Some(kind) => {
                    let dir = tmp.path().join(format!("wal-{name}-{round}"));
                    wal_phase(&dir, kind, n, &dev)
                }
                None => {
                    let before = flushes(&dev);
                    let lat = raw_phase(&raw, n);
                    ("raw", lat, flushes(&dev) - before)
                }
            };
            let took = t.elapsed();
            println!(
                "round {round} {name:>20} ({got}): {n} commits in {:.2} s, p50 {:>7.1} us, \
                 device flushes {f} ({:.2} per commit)",
                took.as_secs_f64(),
                p50(lat).as_secs_f64() * 1e6,
                f as f64 / n as f64
            );
        }
    }
}
