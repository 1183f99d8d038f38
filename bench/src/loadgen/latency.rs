//! Latency histograms: one per client while it runs, merged into one summary per run.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency a histogram tracks, nanoseconds; longer samples saturate to it (a minute is
/// far beyond any run's timeout, so saturation never hides a real figure).
pub const LATENCY_NS_MAX: u64 = 60_000_000_000;
/// Significant decimal digits kept: 3 digits bounds the quantization error at 0.1 %.
const SIGNIFICANT_DIGITS: u8 = 3;

/// A latency histogram in nanoseconds.
#[derive(Clone, Debug)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty histogram covering 1 ns to [`LATENCY_NS_MAX`].
    #[must_use]
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, LATENCY_NS_MAX, SIGNIFICANT_DIGITS)
            .expect("constant bounds: 1 < LATENCY_NS_MAX and 3 significant digits are valid");
        Self { histogram }
    }

    /// Records one sample; below 1 ns counts as 1 ns, above [`LATENCY_NS_MAX`] as the maximum.
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.histogram
            .saturating_record(ns.clamp(1, LATENCY_NS_MAX));
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        // Both histograms have the same bounds, so adding cannot fail.
        self.histogram
            .add(&other.histogram)
            .expect("histograms built by Latencies::new share their bounds");
    }

    /// Samples recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The summary, or `None` when no sample was recorded.
    #[must_use]
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.histogram.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        let h = &self.histogram;
        Some(LatencySummary {
            count: h.len(),
            mean_us: h.mean() / 1_000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        })
    }
}

/// Percentiles of one latency distribution, microseconds. Each percentile is the smallest
/// recorded value (to 3 significant digits) that at least that fraction of samples do not
/// exceed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Arithmetic mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

/// A duration in microseconds for people: `637 us`, `5.12 ms`, `1.30 s`.
#[must_use]
pub fn format_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0} us")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error 3 significant digits allow, plus the bucket width at the top.
    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.002
    }

    #[test]
    fn uniform_one_to_thousand_microseconds() {
        let mut l = Latencies::new();
        for us in 1..=1000u64 {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary().expect("1000 samples");
        assert_eq!(s.count, 1000);
        assert!(close(s.p50_us, 500.0), "p50 {}", s.p50_us);
        assert!(close(s.p90_us, 900.0), "p90 {}", s.p90_us);
        assert!(close(s.p99_us, 990.0), "p99 {}", s.p99_us);
        assert!(close(s.p999_us, 999.0), "p99.9 {}", s.p999_us);
        assert!(close(s.max_us, 1000.0), "max {}", s.max_us);
        assert!(close(s.mean_us, 500.5), "mean {}", s.mean_us);
    }

    #[test]
    fn merge_adds_counts_and_keeps_the_tail() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        for _ in 0..999 {
            a.record(Duration::from_micros(100));
        }
        b.record(Duration::from_millis(50));
        a.merge(&b);
        let s = a.summary().expect("samples");
        assert_eq!(s.count, 1000);
        assert!(close(s.p50_us, 100.0));
        assert!(close(s.p99_us, 100.0));
        assert!(close(s.max_us, 50_000.0));
        // The one slow sample is the 1000th of 1000: p99.9 (the 999th) is still fast.
        assert!(close(s.p999_us, 100.0));
    }

    #[test]
    fn out_of_range_samples_saturate() {
        let mut l = Latencies::new();
        l.record(Duration::ZERO);
        l.record(Duration::from_secs(3600));
        let s = l.summary().expect("two samples");
        assert_eq!(s.count, 2);
        assert!(s.p50_us <= 0.01, "zero counts as 1 ns: {}", s.p50_us);
        assert!(close(s.max_us, LATENCY_NS_MAX as f64 / 1000.0));
    }

    #[test]
    fn empty_has_no_summary() {
        assert_eq!(Latencies::new().summary(), None);
    }

    #[test]
    fn formats_each_unit() {
        assert_eq!(format_us(637.2), "637 us");
        assert_eq!(format_us(5_123.0), "5.12 ms");
        assert_eq!(format_us(1_300_000.0), "1.30 s");
    }
}
