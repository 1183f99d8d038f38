//! Counters and latency histograms of one node.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::node::Durability;

/// Highest latency recorded, in microseconds (60 s); longer samples are clamped.
const LATENCY_MICROS_MAX: u64 = 60_000_000;

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
}

#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) durability: Durability,
    pub(crate) counters: Counters,
    propose_to_apply: Mutex<Histogram<u64>>,
    fsync: Mutex<Histogram<u64>>,
    apply_batch: Mutex<Histogram<u64>>,
}

fn histogram() -> Mutex<Histogram<u64>> {
    // 3 significant digits over 1 us .. 60 s: about 100 KiB per histogram.
    Mutex::new(
        Histogram::new_with_bounds(1, LATENCY_MICROS_MAX, 3)
            .expect("static histogram bounds are valid"),
    )
}

fn record(h: &Mutex<Histogram<u64>>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let mut h = h.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    h.saturating_record(us.clamp(1, LATENCY_MICROS_MAX));
}

fn summary(h: &Mutex<Histogram<u64>>) -> LatencySummary {
    let h = h.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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
            propose_to_apply: histogram(),
            fsync: histogram(),
            apply_batch: histogram(),
        }
    }

    pub(crate) fn inc(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn record_propose(&self, d: Duration) {
        record(&self.propose_to_apply, d);
    }

    pub(crate) fn record_fsync(&self, d: Duration) {
        record(&self.fsync, d);
    }

    pub(crate) fn record_apply(&self, d: Duration) {
        record(&self.apply_batch, d);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            durability: self.durability,
            counters: self.counters.snapshot(),
            propose_to_apply: summary(&self.propose_to_apply),
            fsync: summary(&self.fsync),
            apply_batch: summary(&self.apply_batch),
        }
    }
}
