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
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringraft::kv::{KvCommand, KvStateMachine};
use ringraft::node::{Durability, Node, NodeConfig, NodeHandle};
use ringraft::raft::NodeId;

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

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn start(durability: Durability) -> (Vec<Node<KvStateMachine>>, Vec<tempfile::TempDir>) {
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let addrs: BTreeMap<NodeId, SocketAddr> = ids.iter().map(|id| (*id, free_addr())).collect();
    let dirs: Vec<_> = ids
        .iter()
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let nodes = ids
        .iter()
        .zip(&dirs)
        .map(|(id, dir)| {
            let mut cfg = NodeConfig::new(1, *id, dir.path());
            cfg.listen = addrs[id];
            cfg.initial_voters = ids.clone();
            cfg.peers = addrs
                .iter()
                .filter(|(p, _)| *p != id)
                .map(|(p, a)| (*p, *a))
                .collect();
            cfg.durability = durability;
            cfg.snapshot_entries_threshold = u64::MAX / 4;
            cfg.snapshot_bytes_threshold = u64::MAX / 4;
            Node::start(cfg, KvStateMachine::default()).expect("start")
        })
        .collect();
    (nodes, dirs)
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let total: u64 = args
        .get(1)
        .map_or(20_000, |s| s.parse().expect("proposals"));
    let durability = match args.get(2).map(String::as_str) {
        Some("fdatasync") => Durability::Fdatasync,
        _ => Durability::NoSync,
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
    let (nodes, _dirs) = start(durability);
    let leader_id = nodes[0]
        .wait_for_leader(Duration::from_secs(20))
        .expect("leader");
    let leader = nodes
        .iter()
        .map(Node::handle)
        .find(|h| h.id() == leader_id)
        .expect("leader");
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
    for node in nodes {
        node.shutdown();
    }
}
