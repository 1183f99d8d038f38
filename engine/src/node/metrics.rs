//! Counters and latency histograms of one node.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::node::Durability;

/// Highest latency recorded, in microseconds (60 s); longer samples are clamped.
const LATENCY_MICROS_MAX: u64 = 60_000_000;

/// Upper bounds (inclusive) of the Prometheus latency buckets, in microseconds. They span a
/// loopback fdatasync on fast NVMe (tens of us) to a node starved of CPU for seconds, at
/// roughly 1-2.5-5 steps so a quantile interpolated between two bounds is off by at most 2.5x;
/// the precise tail stays in the HdrHistogram percentiles. Past the last bound a sample
/// counts only in `+Inf` (the total).
pub const LATENCY_BUCKET_BOUNDS_MICROS: [u64; 20] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

const _: () = {
    let b = &LATENCY_BUCKET_BOUNDS_MICROS;
    let mut i = 1;
    while i < b.len() {
        assert!(b[i - 1] < b[i], "bucket bounds must increase");
        i += 1;
    }
};

macro_rules! counters {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {
        /// Monotonic counters, updated by the node thread.
        #[derive(Debug, Default)]
        pub(crate) struct Counters { $(pub(crate) $name: AtomicU64,)* }

        /// A copy of the node's counters.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct CounterSnapshot { $($(#[$m])* pub $name: u64,)* }

        impl Counters {
            fn snapshot(&self) -> CounterSnapshot {
                CounterSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters!(
    /// Proposals completed with their response.
    proposals_applied,
    /// Proposals failed (not leader, leadership lost, dropped).
    proposals_failed,
    /// Proposals the loop held back because the WAL had half its queue bound in flight
    /// (released, in order, as writes become durable).
    proposals_held,
    /// Entries applied to the state machine (commands only).
    entries_applied,
    /// Loop turns that processed at least one Ready.
    readies,
    /// WAL appends submitted (one per Ready with entries).
    wal_appends,
    /// Raft messages sent.
    messages_sent,
    /// Raft messages received and stepped.
    messages_received,
    /// Received payloads that did not decode, or claimed a wrong sender or recipient.
    messages_rejected,
    /// Reads served.
    reads_served,
    /// Reads failed.
    reads_failed,
    /// Snapshots taken locally.
    snapshots_taken,
    /// Background snapshots that failed (the file could not be written, for example on a
    /// full disk); each is retried with backoff, so a count that keeps growing means the
    /// log is no longer compacted.
    snapshots_failed,
    /// Snapshots streamed to followers.
    snapshots_sent,
    /// Snapshots received and installed.
    snapshots_installed,
);

/// Latency percentiles of one histogram, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Maximum.
    pub max_us: u64,
}

/// A latency distribution in fixed buckets, for a Prometheus histogram.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LatencyBuckets {
    /// Cumulative counts: `cumulative[i]` samples were at most
    /// `LATENCY_BUCKET_BOUNDS_MICROS[i]` microseconds.
    pub cumulative: [u64; LATENCY_BUCKET_BOUNDS_MICROS.len()],
    /// All samples (the `+Inf` bucket and `_count`).
    pub count: u64,
    /// Sum of all samples, in microseconds (exact, not clamped).
    pub sum_us: u64,
}

/// Per-bucket sample counts that any thread can bump without a lock.
#[derive(Debug, Default)]
struct Buckets {
    /// `counts[i]` for samples in `(bound[i-1], bound[i]]`; the last slot is past every bound.
    counts: [AtomicU64; LATENCY_BUCKET_BOUNDS_MICROS.len() + 1],
    sum_us: AtomicU64,
}

impl Buckets {
    fn record(&self, us: u64) {
        let slot = LATENCY_BUCKET_BOUNDS_MICROS.partition_point(|&bound| bound < us);
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Cumulative counts; the total is the sum of the slots read, so `_count` always equals
    /// the `+Inf` bucket even while the node records concurrently.
    fn snapshot(&self) -> LatencyBuckets {
        let mut out = LatencyBuckets {
            sum_us: self.sum_us.load(Ordering::Relaxed),
            ..LatencyBuckets::default()
        };
        let mut running = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            running += c.load(Ordering::Relaxed);
            if let Some(slot) = out.cumulative.get_mut(i) {
                *slot = running;
            }
        }
        out.count = running;
        out
    }
}

/// A copy of the node's metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// The WAL sync policy these numbers were measured under.
    pub durability: Durability,
    /// Counters.
    pub counters: CounterSnapshot,
    /// From `propose` being called to its response (commit and apply included).
    pub propose_to_apply: LatencySummary,
    /// From a WAL submission to its ticket completing (write and fdatasync).
    pub fsync: LatencySummary,
    /// One `StateMachine::apply` call.
    pub apply_batch: LatencySummary,
    /// `propose_to_apply` in fixed buckets.
    pub propose_to_apply_buckets: LatencyBuckets,
    /// `fsync` in fixed buckets.
    pub fsync_buckets: LatencyBuckets,
    /// `apply_batch` in fixed buckets.
    pub apply_batch_buckets: LatencyBuckets,
}

#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) durability: Durability,
    pub(crate) counters: Counters,
    propose_to_apply: Latency,
    fsync: Latency,
    apply_batch: Latency,
}

/// One latency: an HdrHistogram for precise percentiles, and fixed buckets for Prometheus
/// (whose histograms aggregate across nodes and scrapes, which percentiles cannot).
#[derive(Debug)]
struct Latency {
    hdr: Mutex<Histogram<u64>>,
    buckets: Buckets,
}

impl Latency {
    fn new() -> Self {
        // 3 significant digits over 1 us .. 60 s: about 100 KiB per histogram.
        let hdr = Histogram::new_with_bounds(1, LATENCY_MICROS_MAX, 3)
            .expect("static histogram bounds are valid");
        Latency {
            hdr: Mutex::new(hdr),
            buckets: Buckets::default(),
        }
    }

    fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets.record(us);
        let mut h = self
            .hdr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        h.saturating_record(us.clamp(1, LATENCY_MICROS_MAX));
    }
}

fn summary(l: &Latency) -> LatencySummary {
    let h = l
        .hdr
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    LatencySummary {
        count: h.len(),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    }
}

impl Metrics {
    pub(crate) fn new(durability: Durability) -> Self {
        Metrics {
            durability,
            counters: Counters::default(),
            propose_to_apply: Latency::new(),
            fsync: Latency::new(),
            apply_batch: Latency::new(),
        }
    }

    pub(crate) fn inc(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn record_propose(&self, d: Duration) {
        self.propose_to_apply.record(d);
    }

    pub(crate) fn record_fsync(&self, d: Duration) {
        self.fsync.record(d);
    }

    pub(crate) fn record_apply(&self, d: Duration) {
        self.apply_batch.record(d);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            durability: self.durability,
            counters: self.counters.snapshot(),
            propose_to_apply: summary(&self.propose_to_apply),
            fsync: summary(&self.fsync),
            apply_batch: summary(&self.apply_batch),
            propose_to_apply_buckets: self.propose_to_apply.buckets.snapshot(),
            fsync_buckets: self.fsync.buckets.snapshot(),
            apply_batch_buckets: self.apply_batch.buckets.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_on_a_bound_counts_in_that_bucket_and_every_later_one() {
        let m = Metrics::new(Durability::Fdatasync);
        for us in [25, 26, 1_000, 70_000_000] {
            m.record_fsync(Duration::from_micros(us));
        }
        let b = m.snapshot().fsync_buckets;
        let at = |bound: u64| {
            let i = LATENCY_BUCKET_BOUNDS_MICROS
                .iter()
                .position(|&x| x == bound)
                .expect("a listed bound");
            b.cumulative[i]
        };
        assert_eq!(at(25), 1, "25 us is <= 25");
        assert_eq!(at(50), 2);
        assert_eq!(at(500), 2);
        assert_eq!(at(1_000), 3);
        assert_eq!(at(60_000_000), 3, "70 s is past every bound");
        assert_eq!(b.count, 4, "+Inf holds every sample");
        assert_eq!(
            b.sum_us,
            25 + 26 + 1_000 + 70_000_000,
            "the sum is not clamped"
        );
        assert_eq!(
            m.snapshot().fsync.count,
            4,
            "the HdrHistogram saw the same samples"
        );
    }

    #[test]
    fn cumulative_counts_never_decrease() {
        let m = Metrics::new(Durability::Fdatasync);
        for us in (0..2_000u64).map(|i| i * i * 17 % 80_000_000) {
            m.record_propose(Duration::from_micros(us));
        }
        let b = m.snapshot().propose_to_apply_buckets;
        assert!(b.cumulative.windows(2).all(|w| w[0] <= w[1]));
        assert!(b.cumulative.last() <= Some(&b.count));
        assert_eq!(b.count, 2_000);
    }
}
