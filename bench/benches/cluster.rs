//! Propose throughput and latency of an in-process 3-node cluster over real TCP (127.0.0.1)
//! and real WAL files (a temporary directory), at 1, 16 and 256 concurrent proposers with
//! 256-byte payloads. The WAL sync policy is part of every group name.
//!
//! Run: `CARGO_TARGET_DIR=... cargo bench -p ringraft-bench --bench cluster`
//! (`RINGRAFT_BENCH_NOSYNC=1` adds the no-sync groups, for comparison only).
// criterion_group! generates undocumented items.
#![allow(missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hdrhistogram::Histogram;
use ringraft::kv::{KvCommand, KvStateMachine};
use ringraft::node::{Durability, NodeHandle};
use ringraft_bench::local::LocalCluster;

const PAYLOAD_BYTES: usize = 256;
const CONCURRENCY: [usize; 3] = [1, 16, 256];
/// Highest latency recorded (60 s); longer samples are clamped.
const LATENCY_MICROS_MAX: u64 = 60_000_000;

/// Runs `total` proposals split over `proposers` concurrent tasks; returns the elapsed time
/// and records each proposal's latency.
fn run(
    rt: &tokio::runtime::Runtime,
    leader: &NodeHandle<KvStateMachine>,
    proposers: usize,
    total: u64,
    hist: &Arc<Mutex<Histogram<u64>>>,
) -> Duration {
    let value = Bytes::from(vec![b'x'; PAYLOAD_BYTES - 16]);
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..proposers)
            .map(|p| {
                let (leader, hist, value) = (leader.clone(), hist.clone(), value.clone());
                let share =
                    total / proposers as u64 + u64::from((p as u64) < total % proposers as u64);
                tokio::spawn(async move {
                    let mut local = Histogram::<u64>::new_with_bounds(1, LATENCY_MICROS_MAX, 3)
                        .expect("histogram");
                    for i in 0..share {
                        let key = format!("p{p:04}-{:08}", i % 4096);
                        let cmd = KvCommand::set(key, value.clone()).encode();
                        let t = Instant::now();
                        leader.propose(cmd).await.expect("propose");
                        local.saturating_record(t.elapsed().as_micros() as u64);
                    }
                    hist.lock().expect("lock").add(&local).expect("merge");
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
    });
    start.elapsed()
}

fn bench_durability(c: &mut Criterion, durability: Durability) {
    let b = LocalCluster::start(durability);
    println!(
        "cluster bench: 3 nodes, {} B payloads, durability {}, io_uring {}",
        PAYLOAD_BYTES,
        durability.name(),
        b.nodes[0].uses_io_uring()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group(format!("cluster_propose_3n_256B/{}", durability.name()));
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for proposers in CONCURRENCY {
        let hist = Arc::new(Mutex::new(
            Histogram::<u64>::new_with_bounds(1, LATENCY_MICROS_MAX, 3).expect("histogram"),
        ));
        group.bench_with_input(
            BenchmarkId::new("proposers", proposers),
            &proposers,
            |bench, &p| {
                bench.iter_custom(|iters| {
                    let proposers = p.min(usize::try_from(iters).unwrap_or(p)).max(1);
                    run(&rt, &b.leader, proposers, iters, &hist)
                });
            },
        );
        let h = hist.lock().expect("lock");
        println!(
            "latency {} proposers={proposers}: n={} p50={}us p99={}us p99.9={}us max={}us",
            durability.name(),
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
    }
    group.finish();
    let m = b.leader.metrics();
    println!(
        "leader metrics ({}): fsync p50={}us p99={}us, apply batch p50={}us, wal appends={}, proposals={}",
        m.durability.name(),
        m.fsync.p50_us,
        m.fsync.p99_us,
        m.apply_batch.p50_us,
        m.counters.wal_appends,
        m.counters.proposals_applied
    );
    b.shutdown();
}

fn cluster(c: &mut Criterion) {
    bench_durability(c, Durability::Fdatasync);
    if std::env::var_os("RINGRAFT_BENCH_NOSYNC").is_some() {
        bench_durability(c, Durability::NoSync);
    }
}

criterion_group!(benches, cluster);
criterion_main!(benches);
