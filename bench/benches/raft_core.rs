//! Entries per second through a leader core with two followers, driven in memory: messages
//! are delivered directly and persistence is acknowledged at once, so this measures the core's
//! own cost (log, replication, commit, Ready assembly), not I/O.

#![allow(missing_docs)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringraft::raft::{Config, InitialState, Instant, LogIndex, Message, NodeId, RawNode};

/// Payload size of each entry.
const ENTRY_BYTES: usize = 256;
/// Compact the in-memory logs every this many entries so memory stays bounded.
const COMPACT_EVERY: u64 = 64 * 1024;

struct Cluster {
    nodes: Vec<RawNode>,
    net: VecDeque<Message>,
    payload: Bytes,
    compacted: u64,
}

impl Cluster {
    fn new() -> Self {
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let nodes = ids
            .iter()
            .map(|id| {
                let mut cfg = Config::new(*id);
                cfg.proposals_pending_max = 1 << 20;
                cfg.batch_bytes_max = 4 << 20;
                cfg.inflight_bytes_max = 64 << 20;
                RawNode::new(cfg, InitialState::bootstrap(ids), id.0, Instant(0))
                    .expect("valid config")
            })
            .collect();
        let mut c = Cluster {
            nodes,
            net: VecDeque::new(),
            payload: Bytes::from(vec![7u8; ENTRY_BYTES]),
            compacted: 0,
        };
        c.nodes[0].campaign(Instant(0));
        c.settle();
        assert_eq!(c.nodes[0].status().leader, Some(NodeId(1)));
        c
    }

    /// Runs every node and delivers every message until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while self.nodes[i].has_ready() {
                    moved = true;
                    let rd = self.nodes[i].ready();
                    self.net.extend(rd.messages);
                    // "Persist" at once, then the persisted messages may leave.
                    self.nodes[i].on_persisted(rd.number, Instant(0));
                    self.net.extend(rd.persisted_messages);
                    if let Some(last) = rd.committed_entries.last() {
                        self.nodes[i].on_applied(last.index).expect("apply");
                    }
                    black_box(&rd.committed_entries);
                }
            }
            while let Some(m) = self.net.pop_front() {
                moved = true;
                let to = usize::try_from(m.to.0 - 1).expect("small id");
                self.nodes[to].step(m, Instant(0)).expect("step");
            }
            if !moved {
                return;
            }
        }
    }

    /// One loop turn: `batch` proposals on the leader, replicated and committed everywhere.
    fn turn(&mut self, batch: usize) {
        for _ in 0..batch {
            self.nodes[0]
                .propose(self.payload.clone())
                .expect("leader accepts");
        }
        self.settle();
        let commit = self.nodes[0].status().commit;
        if commit.0 - self.compacted >= COMPACT_EVERY {
            for n in &mut self.nodes {
                n.on_snapshot_created(LogIndex(commit.0)).expect("compact");
            }
            self.compacted = commit.0;
        }
    }
}

/// CPU time of this thread: on a shared machine the wall clock also counts time spent waiting
/// for a core, which says nothing about the core's cost.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is always supported
    // on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(
        u64::try_from(ts.tv_sec).expect("non-negative"),
        u32::try_from(ts.tv_nsec).expect("below 1e9"),
    )
}

const BATCHES: [usize; 3] = [1, 64, 1024];

fn bench_replication(c: &mut Criterion) {
    let mut group = c.benchmark_group("raft_core_replicate_3_nodes");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            let mut cluster = Cluster::new();
            b.iter(|| cluster.turn(batch));
        });
    }
    group.finish();
}

/// The same work timed with the thread's CPU clock instead of the wall clock.
fn bench_replication_cpu(c: &mut Criterion) {
    let mut group = c.benchmark_group("raft_core_replicate_3_nodes_cpu_time");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            let mut cluster = Cluster::new();
            b.iter_custom(|iters| {
                let start = thread_cpu_time();
                for _ in 0..iters {
                    cluster.turn(batch);
                }
                thread_cpu_time() - start
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_replication, bench_replication_cpu);
criterion_main!(benches);
