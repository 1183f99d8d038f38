//! WAL micro benchmarks, each next to its floor: a plain `pwrite` + `fdatasync` loop writing
//! the same bytes into a zero-filled file on the same disk.
//!
//! Groups (the durability mode is part of every group name):
//! - `append_fdatasync/{wal,floor}/b{batch}_p{payload}`: one appender, batches of 1, 8, 64,
//!   512 records of 16 B, 256 B, 4 KiB; each iteration is one durable batch.
//! - `concurrent_fdatasync/{wal,floor}/a{appenders}`: 1, 16, 256 appenders (tasks on one
//!   tokio current-thread runtime) each appending one 256 B record and awaiting it; the floor
//!   writes the same number of records with one pwrite and one fdatasync.
//! - `append_nosync/wal/...`: the no-sync mode, for comparison only.
//! - `read_range/mmap`: reading 1,000 records of 256 B from the map.
//! - `recovery/thread`: opening (recovering) a log of `WAL_BENCH_RECOVERY_MIB` MiB
//!   (default 1024).
//! - After criterion: p50/p99 latency of one appender (256 B) against the floor, HdrHistogram.
//!
//! Under `cargo test` (no `--bench` argument) everything runs once with tiny sizes.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use ringraft_wal::{BackendKind, Config, Durability, Entry, Wal};

/// Size of the floor's file and of the WAL's segments in these benchmarks: 16 MiB rather
/// than the 64 MiB default, because every log a benchmark opens zero-fills two segments and
/// this machine's disk is rate limited (Firecracker); less zero-fill traffic, less noise.
const FILE_BYTES: u64 = 16 << 20;
const FRAME_OVERHEAD_BYTES: usize = 32;

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `pwrite` + `fdatasync` into a zero-filled file, wrapping around at its end.
struct Floor {
    file: File,
    off: u64,
    buf: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl Floor {
    fn new() -> Floor {
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("floor"))
            .unwrap();
        let len = if bench_mode() { FILE_BYTES } else { 4 << 20 };
        let zeros = vec![0u8; 1 << 20];
        for i in 0..len >> 20 {
            file.write_all_at(&zeros, i << 20).unwrap();
        }
        file.sync_all().unwrap();
        Floor {
            file,
            off: 0,
            buf: Vec::new(),
            _dir: dir,
        }
    }

    /// One durable write of `records` frames of `payload` bytes.
    fn write(&mut self, records: usize, payload: usize) {
        let n = records * ((payload + FRAME_OVERHEAD_BYTES + 7) & !7);
        self.buf.resize(n, 0xAB);
        if self.off + n as u64 > self.file.metadata().map(|m| m.len()).unwrap() {
            self.off = 0;
        }
        self.file.write_all_at(&self.buf, self.off).unwrap();
        self.file.sync_data().unwrap();
        self.off += n as u64;
    }
}

/// Segment size: `WAL_BENCH_SEGMENT_MIB`, default [`FILE_BYTES`].
fn segment_bytes() -> u64 {
    std::env::var("WAL_BENCH_SEGMENT_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(FILE_BYTES, |m| m << 20)
}

fn bench_dir() -> std::path::PathBuf {
    std::env::var_os("WAL_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into)
}

struct Log {
    wal: Wal,
    next: u64,
    _dir: tempfile::TempDir,
}

impl Log {
    fn new(durability: Durability, backend: BackendKind) -> Log {
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        let segment_bytes = if bench_mode() {
            segment_bytes()
        } else {
            1 << 20
        };
        let cfg = Config {
            durability,
            backend,
            segment_bytes,
            record_bytes_max: 64 << 10,
            ..Config::default()
        };
        Log {
            wal: Wal::open(dir.path(), cfg).unwrap(),
            next: 1,
            _dir: dir,
        }
    }

    fn append(&mut self, records: usize, payload: &Bytes) {
        let e = (0..records)
            .map(|k| Entry::new(self.next + k as u64, 1, payload.clone()))
            .collect();
        self.next += records as u64;
        self.wal.append(e).unwrap().wait().unwrap();
    }
}

fn append_group(c: &mut Criterion, durability: Durability, batches: &[usize], payloads: &[usize]) {
    let name = match durability {
        Durability::NoSync => "append_nosync",
        _ => "append_fdatasync",
    };
    let mut g = c.benchmark_group(name);
    for &payload in payloads {
        for &batch in batches {
            let id = format!("b{batch}_p{payload}");
            g.throughput(Throughput::Elements(batch as u64));
            let p = Bytes::from(vec![7u8; payload]);
            let mut log = Log::new(durability, BackendKind::Auto);
            let label = format!("wal_{}", log.wal.backend_name());
            g.bench_function(BenchmarkId::new(label, &id), |b| {
                b.iter(|| log.append(batch, &p))
            });
            drop(log);
            if durability == Durability::Fdatasync {
                let mut floor = Floor::new();
                g.bench_function(BenchmarkId::new("floor", &id), |b| {
                    b.iter(|| floor.write(batch, payload))
                });
            }
        }
    }
    g.finish();
}

fn concurrent_group(c: &mut Criterion) {
    let mut g = c.benchmark_group("concurrent_fdatasync");
    let payload = Bytes::from(vec![7u8; 256]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for appenders in [1usize, 16, 256] {
        g.throughput(Throughput::Elements(appenders as u64));
        for kind in [BackendKind::Auto, BackendKind::Thread] {
            let log = Log::new(Durability::Fdatasync, kind);
            let label = format!("wal_{}", log.wal.backend_name());
            let wal = Arc::new(log.wal);
            let next = Arc::new(std::sync::atomic::AtomicU64::new(1));
            g.bench_function(BenchmarkId::new(label, format!("a{appenders}")), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    concurrent_block(&rt, &wal, &next, appenders, iters as usize, &payload);
                    start.elapsed()
                })
            });
            drop(wal);
            drop(log._dir);
        }
        let mut floor = Floor::new();
        g.bench_function(BenchmarkId::new("floor", format!("a{appenders}")), |b| {
            b.iter(|| floor.write(appenders, 256))
        });
    }
    g.finish();
}

fn read_group(c: &mut Criterion) {
    let mut g = c.benchmark_group("read_range");
    let mut log = Log::new(Durability::NoSync, BackendKind::Thread);
    let p = Bytes::from(vec![1u8; 256]);
    for _ in 0..100 {
        log.append(1000, &p);
    }
    g.throughput(Throughput::Elements(1000));
    let mut start = 1;
    g.bench_function("mmap/1000x256B", |b| {
        b.iter(|| {
            let v = log.wal.entries(start..start + 1000).unwrap();
            start = start % 99_000 + 1;
            v
        })
    });
    g.finish();
}

fn build_log(dir: &Path, bytes: u64) -> u64 {
    let cfg = Config {
        durability: Durability::NoSync,
        backend: BackendKind::Thread,
        ..Config::default()
    };
    let wal = Wal::open(dir, cfg).unwrap();
    let p = Bytes::from(vec![3u8; 4096]);
    let per = (4096 + FRAME_OVERHEAD_BYTES) as u64;
    let n = bytes / per;
    let mut i = 1;
    while i <= n {
        let e: Vec<_> = (i..(i + 256).min(n + 1))
            .map(|k| Entry::new(k, 1, p.clone()))
            .collect();
        i += e.len() as u64;
        drop(wal.append(e).unwrap());
    }
    wal.flush().unwrap();
    n * per
}

fn recovery_group(c: &mut Criterion) {
    let mib: u64 = if bench_mode() {
        std::env::var("WAL_BENCH_RECOVERY_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024)
    } else {
        4
    };
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    let bytes = build_log(dir.path(), mib << 20);
    let mut g = c.benchmark_group("recovery");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    let cfg = Config {
        backend: BackendKind::Thread,
        prepare_ahead: false,
        background_writer: false,
        ..Config::default()
    };
    g.bench_function(format!("thread/{mib}MiB"), |b| {
        b.iter(|| {
            let wal = Wal::open(dir.path(), cfg.clone()).unwrap();
            assert!(wal.last_index() > 0);
            wal
        })
    });
    g.finish();
}

fn latency_report() {
    let n = if bench_mode() { 3000 } else { 3 };
    let p = Bytes::from(vec![7u8; 256]);
    let kind = match std::env::var("WAL_BENCH_BACKEND").as_deref() {
        Ok("thread") => BackendKind::Thread,
        _ => BackendKind::Auto,
    };
    let mut log = Log::new(Durability::Fdatasync, kind);
    let mut floor = Floor::new();
    if let Some(s) = std::env::var("WAL_BENCH_SETTLE_S")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(Duration::from_secs(s));
    }
    let mut hw = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let mut hf = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    // Interleave so both see the same disk conditions.
    for _ in 0..n {
        let t = Instant::now();
        log.append(1, &p);
        hw.record(t.elapsed().as_nanos() as u64).unwrap();
        let t = Instant::now();
        floor.write(1, 256);
        hf.record(t.elapsed().as_nanos() as u64).unwrap();
    }
    let us = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "latency_fdatasync/one_appender_256B: wal_{} p50 {:.1} us p99 {:.1} us | floor p50 {:.1} us p99 {:.1} us | p50 ratio {:.2}",
        log.wal.backend_name(),
        us(&hw, 0.5),
        us(&hw, 0.99),
        us(&hf, 0.5),
        us(&hf, 0.99),
        us(&hw, 0.5) / us(&hf, 0.5)
    );
}

/// Software overhead without the disk: one appender in no-sync mode against a bare pwrite.
fn overhead_report() {
    let n = if bench_mode() { 20_000 } else { 3 };
    let p = Bytes::from(vec![7u8; 256]);
    let mut log = Log::new(Durability::NoSync, BackendKind::Auto);
    let floor = Floor::new();
    let buf = vec![0xABu8; 288];
    let mut hw = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let mut hf = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let mut off = 0;
    for _ in 0..n {
        let t = Instant::now();
        log.append(1, &p);
        hw.record(t.elapsed().as_nanos() as u64).unwrap();
        let t = Instant::now();
        floor.file.write_all_at(&buf, off).unwrap();
        hf.record(t.elapsed().as_nanos() as u64).unwrap();
        off = (off + 288) % (1 << 20);
    }
    let us = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "latency_nosync/one_appender_256B: wal_{} p50 {:.1} us p99 {:.1} us | bare pwrite p50 {:.1} us p99 {:.1} us",
        log.wal.backend_name(),
        us(&hw, 0.5),
        us(&hw, 0.99),
        us(&hf, 0.5),
        us(&hf, 0.99),
    );
}

/// Median of a histogram in microseconds.
fn p50_us(h: &hdrhistogram::Histogram<u64>) -> f64 {
    h.value_at_quantile(0.5) as f64 / 1000.0
}

/// `appenders` concurrent appenders (tokio tasks on one thread), each appending `per_task`
/// records one at a time and awaiting each before the next.
fn concurrent_block(
    rt: &tokio::runtime::Runtime,
    wal: &Arc<Wal>,
    next: &Arc<std::sync::atomic::AtomicU64>,
    appenders: usize,
    per_task: usize,
    payload: &Bytes,
) {
    rt.block_on(async {
        let tasks: Vec<_> = (0..appenders)
            .map(|_| {
                let (wal, next, p) = (wal.clone(), next.clone(), payload.clone());
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        // No await between taking the index and appending: indices are
                        // accepted in order on this thread.
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let t = wal.append(vec![Entry::new(i, 1, p.clone())]).unwrap();
                        t.await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// The WAL and its floor measured in alternation (one WAL iteration, one floor iteration), so
/// both see the same disk: this machine's fdatasync latency swings between ~0.15 and ~4 ms
/// within seconds, which makes back-to-back criterion groups unfit for ratios.
fn paired_report() {
    let rounds = if bench_mode() { 300 } else { 2 };
    println!("paired_fdatasync: shape | wal p50 | floor p50 | wal records/s | floor records/s | wal/floor throughput");
    let row = |shape: String,
               records: usize,
               hw: &hdrhistogram::Histogram<u64>,
               hf: &hdrhistogram::Histogram<u64>| {
        let (w, f) = (p50_us(hw), p50_us(hf));
        let (rw, rf) = (records as f64 * 1e6 / w, records as f64 * 1e6 / f);
        println!(
            "paired_fdatasync: {shape} | {w:.1} us | {f:.1} us | {rw:.0} | {rf:.0} | {:.2}",
            rw / rf
        );
    };
    for payload in [16usize, 256, 4096] {
        for (batch, kind) in [1usize, 8, 64, 512]
            .into_iter()
            .flat_map(|b| [(b, BackendKind::IoUring), (b, BackendKind::Thread)])
        {
            let p = Bytes::from(vec![7u8; payload]);
            let mut log = Log::new(Durability::Fdatasync, kind);
            let mut floor = Floor::new();
            let mut hw = hdrhistogram::Histogram::<u64>::new(3).unwrap();
            let mut hf = hdrhistogram::Histogram::<u64>::new(3).unwrap();
            for _ in 0..rounds {
                let t = Instant::now();
                log.append(batch, &p);
                hw.record(t.elapsed().as_nanos() as u64).unwrap();
                let t = Instant::now();
                floor.write(batch, payload);
                hf.record(t.elapsed().as_nanos() as u64).unwrap();
            }
            let shape = format!(
                "wal_{} batch {batch} payload {payload} B",
                log.wal.backend_name()
            );
            row(shape, batch, &hw, &hf);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let payload = Bytes::from(vec![7u8; 256]);
    for (appenders, kind) in [1usize, 16, 256]
        .into_iter()
        .flat_map(|a| [(a, BackendKind::IoUring), (a, BackendKind::Thread)])
    {
        let log = Log::new(Durability::Fdatasync, kind);
        let name = log.wal.backend_name();
        let wal = Arc::new(log.wal);
        let next = Arc::new(std::sync::atomic::AtomicU64::new(1));
        let mut floor = Floor::new();
        let mut hw = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        let mut hf = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        // Blocks of free-running appenders (10 records each) against blocks of 10 floor
        // writes of `appenders` records each; the median block time gives the rate.
        let per_task = 10;
        for _ in 0..rounds / 10 {
            let t = Instant::now();
            concurrent_block(&rt, &wal, &next, appenders, per_task, &payload);
            hw.record(t.elapsed().as_nanos() as u64 / per_task as u64)
                .unwrap();
            let t = Instant::now();
            for _ in 0..per_task {
                floor.write(appenders, 256);
            }
            hf.record(t.elapsed().as_nanos() as u64 / per_task as u64)
                .unwrap();
        }
        row(
            format!("wal_{name} {appenders} concurrent appenders payload 256 B"),
            appenders,
            &hw,
            &hf,
        );
    }
}

fn main() {
    let mut c = if bench_mode() {
        Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
    } else {
        Criterion::default()
    }
    .configure_from_args();
    let only = std::env::var("WAL_BENCH_ONLY").unwrap_or_default();
    let want = |g: &str| only.is_empty() || only.split(',').any(|o| o == g);
    if want("latency") {
        overhead_report();
        latency_report();
    }
    if want("paired") {
        paired_report();
    }
    if want("append") {
        append_group(
            &mut c,
            Durability::Fdatasync,
            &[1, 8, 64, 512],
            &[16, 256, 4096],
        );
        append_group(&mut c, Durability::NoSync, &[1, 64], &[256]);
    }
    if want("concurrent") {
        concurrent_group(&mut c);
    }
    if want("read") {
        read_group(&mut c);
    }
    if want("recovery") {
        recovery_group(&mut c);
    }
    c.final_summary();
}
