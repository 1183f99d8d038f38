//! A readable step-by-step trace of a run: printed live with `SIM_TRACE=1`, and the last lines
//! are kept so that a failure can show what led to it.

use std::collections::VecDeque;

/// Lines kept for the failure report when not tracing live.
const TAIL_LINES_MAX: usize = 300;

/// The trace of one run.
#[derive(Debug)]
pub struct Trace {
    live: bool,
    tail: VecDeque<String>,
    /// FNV-1a digest of every line so far: two runs of one seed must agree on it.
    digest: u64,
}

impl Trace {
    /// A trace that prints every line at once when `live`.
    pub fn new(live: bool) -> Self {
        Trace {
            live,
            tail: VecDeque::with_capacity(TAIL_LINES_MAX),
            digest: 0xcbf2_9ce4_8422_2325,
        }
    }

    /// True when printing live. Lines about every message are only built then; the rest are
    /// always built, kept in the tail and folded into the digest.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Records one line stamped with the step and the true time.
    pub fn line(&mut self, step: u64, now: u64, text: impl AsRef<str>) {
        let line = format!(
            "[{:>6} {:>5}.{:03}ms] {}",
            step,
            now / 1_000_000,
            (now / 1_000) % 1_000,
            text.as_ref()
        );
        if self.live {
            println!("{line}");
        }
        for b in line.bytes().chain(std::iter::once(b'\n')) {
            self.digest ^= u64::from(b);
            self.digest = self.digest.wrapping_mul(0x0100_0000_01b3);
        }
        if self.tail.len() == TAIL_LINES_MAX {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    /// Digest of every line recorded.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The last lines recorded, oldest first.
    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }
}
