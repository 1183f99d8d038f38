//! The loop's clock: the one source of time for every decision the loop makes (ticks, read
//! and transfer deadlines, the core's `now`), so that a simulation can run the loop on a
//! clock it moves itself.
//!
//! Durations that only feed metrics and stall warnings (fsync, apply and turn times) stay on
//! the wall clock on purpose: they measure where real time went, and nothing reads them back.

use std::sync::Mutex;
use std::time::{Duration, Instant as StdInstant};

/// A monotonic source of time for one node loop.
///
/// # Correctness
/// `now` never goes backwards. The loop compares instants from the same clock only.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> StdInstant;
}

/// The monotonic OS clock.
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> StdInstant {
        StdInstant::now()
    }
}

/// A clock that moves only when told: a simulation's (or a test's) time.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<StdInstant>,
}

impl ManualClock {
    /// A clock standing at `start`.
    #[must_use]
    pub fn new(start: StdInstant) -> Self {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock on by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> StdInstant {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
