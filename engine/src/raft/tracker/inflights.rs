//! The flow-control window of one follower: AppendEntries sent but not yet acknowledged.

use std::collections::VecDeque;

/// Messages in flight to one follower, each as (last index it carries, entry bytes).
///
/// Invariant: `last` indexes are strictly increasing; `count() <= msgs_max`;
/// `bytes == sum of entry bytes`.
#[derive(Clone, Debug)]
pub(crate) struct Inflights {
    queue: VecDeque<(u64, u64)>,
    bytes: u64,
    msgs_max: usize,
    bytes_max: u64,
}

impl Inflights {
    pub(crate) fn new(msgs_max: usize, bytes_max: u64) -> Self {
        Inflights {
            queue: VecDeque::with_capacity(msgs_max.min(1024)),
            bytes: 0,
            msgs_max,
            bytes_max,
        }
    }

    /// Whether no more message may be sent.
    pub(crate) fn full(&self) -> bool {
        self.queue.len() >= self.msgs_max || self.bytes >= self.bytes_max
    }

    pub(crate) fn count(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records a message carrying entries up to `last`.
    pub(crate) fn add(&mut self, last: u64, bytes: u64) {
        assert!(!self.full(), "invariant: no send into a full window");
        if let Some(&(prev, _)) = self.queue.back() {
            assert!(last > prev, "invariant: in-flight last indexes increase");
        }
        self.queue.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Frees every message whose entries are all acknowledged (`last <= to`).
    pub(crate) fn free_to(&mut self, to: u64) {
        while let Some(&(last, bytes)) = self.queue.front() {
            if last > to {
                break;
            }
            self.queue.pop_front();
            self.bytes -= bytes;
        }
    }

    pub(crate) fn reset(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }
}
