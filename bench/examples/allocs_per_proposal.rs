//! Heap allocations per committed proposal (issue 9 item 6), counted by a global allocator
//! that counts every `alloc`/`realloc` in the process: an in-process 3-node cluster over
//! real TCP (127.0.0.1) and real WAL files, N concurrent proposers of 256 B `SET`s on the
//! leader. The client's own share (the key's `format!`, the command's encoding) is counted
//! apart and subtracted, so the figure is what the three nodes allocate per write.
//!
//! ```sh
//! cargo run --release -p ringraft-bench --example allocs_per_proposal -- 20000 nosync
//! cargo run --release -p ringraft-bench --example allocs_per_proposal -- 20000 fdatasync
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use ringraft::kv::{KvCommand, KvStateMachine};
use ringraft::node::{Durability, NodeHandle};
use ringraft_bench::local::LocalCluster;

const PAYLOAD_BYTES: usize = 256;

/// Counts allocations and allocated bytes of the whole process.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// Bytes freed, so that live heap = `BYTES - FREED` (what the cluster keeps, such as read
/// buffers pinned by the log entries and state-machine values sliced out of them).
static FREED: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        FREED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counts() -> (u64, u64) {
    (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    )
}

fn command(p: usize, i: u64, value: &Bytes) -> Bytes {
    KvCommand::set(format!("p{p:04}-{i:08}"), value.clone()).encode()
}

/// Proposes `total` writes from `proposers` tasks; returns the allocation counts it took.
fn run(leader: &NodeHandle<KvStateMachine>, proposers: usize, total: u64) -> (u64, u64, Duration) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let value = Bytes::from(vec![b'x'; PAYLOAD_BYTES - 16]);
    let share = total / proposers as u64;
    let (a0, b0) = counts();
    let t = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..proposers)
            .map(|p| {
                let (leader, value) = (leader.clone(), value.clone());
                tokio::spawn(async move {
                    for i in 0..share {
                        leader
                            .propose(command(p, i, &value))
                            .await
                            .expect("propose");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    });
    let took = t.elapsed();
    let (a1, b1) = counts();
    (a1 - a0, b1 - b0, took)
}

/// WAL sync policy of the nodes.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Sync {
    /// No fdatasync (what the allocation count is usually quoted for).
    Nosync,
    /// fdatasync per group commit.
    Fdatasync,
}

/// Heap allocations per committed 256 B SET in an in-process 3-node cluster.
#[derive(Parser, Debug)]
struct Args {
    /// Proposals per proposer count (a tenth of it for 1 proposer).
    #[arg(default_value_t = 20_000)]
    proposals: u64,
    /// WAL sync policy.
    #[arg(value_enum, default_value_t = Sync::Nosync)]
    sync: Sync,
}

fn main() {
    let args = Args::parse();
    let total = args.proposals;
    let durability = match args.sync {
        Sync::Fdatasync => Durability::Fdatasync,
        Sync::Nosync => Durability::NoSync,
    };
    // The client's share: building the same commands without proposing them.
    let value = Bytes::from(vec![b'x'; PAYLOAD_BYTES - 16]);
    let (a0, b0) = counts();
    let built: Vec<Bytes> = (0..1000).map(|i| command(0, i, &value)).collect();
    let (a1, b1) = counts();
    drop(built);
    let client = ((a1 - a0) as f64 / 1000.0, (b1 - b0) as f64 / 1000.0);
    println!(
        "client side per command: {:.2} allocations, {:.0} bytes ({durability:?})",
        client.0, client.1
    );
    let cluster = LocalCluster::start(durability);
    let leader = cluster.leader.clone();
    // Warm up (connections, first segment, map growth).
    run(&leader, 16, 2_000);
    for proposers in [1, 16, 256] {
        let n = if proposers == 1 { total / 10 } else { total };
        let (allocs, bytes, took) = run(&leader, proposers, n);
        let n = (n / proposers as u64 * proposers as u64) as f64;
        println!(
            "{proposers:>3} proposers: {:.0} writes/s, {:.1} allocations and {:.0} bytes per \
             write in the process, {:.1} allocations per write by the nodes",
            n / took.as_secs_f64(),
            allocs as f64 / n,
            bytes as f64 / n,
            allocs as f64 / n - client.0
        );
    }
    // Everything above is still held by the three nodes (their logs and their key-value
    // maps): the live heap says how much memory each written byte keeps.
    let live = BYTES.load(Ordering::Relaxed) - FREED.load(Ordering::Relaxed);
    println!(
        "live heap after the runs: {:.1} MB for 3 nodes",
        live as f64 / 1e6
    );
    cluster.shutdown();
}
