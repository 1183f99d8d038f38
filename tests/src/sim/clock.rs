//! Simulated per-node monotonic clocks that drift within a bound.

/// Parts per million, the unit of clock drift.
pub const PPM: u64 = 1_000_000;

/// A node's monotonic clock: it runs at `1 + rate_ppm / 10^6` times true (simulated) time.
///
/// Invariant: `|rate_ppm|` is at most half the configured relative drift bound, so any two
/// clocks differ in rate by at most the bound the core is configured with.
#[derive(Clone, Debug)]
pub struct SimClock {
    rate_ppm: i64,
    /// Local reading at true time `epoch_true`.
    epoch_local: u64,
    epoch_true: u64,
}

impl SimClock {
    /// A clock reading `start_local` at true time `now_true`, running at the given rate.
    pub fn new(rate_ppm: i64, start_local: u64, now_true: u64) -> Self {
        assert!(rate_ppm.unsigned_abs() < PPM / 2, "clock rate out of range");
        SimClock {
            rate_ppm,
            epoch_local: start_local,
            epoch_true: now_true,
        }
    }

    /// Rate offset from true time, in ppm.
    pub fn rate_ppm(&self) -> i64 {
        self.rate_ppm
    }

    fn scale(&self) -> u128 {
        (PPM as i64 + self.rate_ppm) as u128
    }

    /// The local reading at true time `now_true` (which must not precede the epoch).
    pub fn local(&self, now_true: u64) -> u64 {
        assert!(now_true >= self.epoch_true, "true time went backwards");
        let elapsed = u128::from(now_true - self.epoch_true);
        self.epoch_local + (elapsed * self.scale() / u128::from(PPM)) as u64
    }

    /// The earliest true time at which the local reading is at least `local`.
    pub fn true_time_of(&self, local: u64) -> u64 {
        if local <= self.epoch_local {
            return self.epoch_true;
        }
        let elapsed_local = u128::from(local - self.epoch_local);
        let elapsed_true = (elapsed_local * u128::from(PPM)).div_ceil(self.scale());
        let t = self.epoch_true + elapsed_true as u64;
        debug_assert!(self.local(t) >= local);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::SimClock;

    #[test]
    fn fast_and_slow_clocks() {
        let fast = SimClock::new(1000, 0, 0);
        let slow = SimClock::new(-1000, 0, 0);
        assert_eq!(fast.local(1_000_000_000), 1_001_000_000);
        assert_eq!(slow.local(1_000_000_000), 999_000_000);
        for local in [1u64, 999, 1_000_000_007] {
            for c in [&fast, &slow] {
                let t = c.true_time_of(local);
                assert!(c.local(t) >= local && (t == 0 || c.local(t - 1) < local));
            }
        }
    }
}
