//! Election counters for `/metrics` and `INFO raft`, kept by the server because the node
//! exposes its state (term, role, leader) but counts no elections itself.
//!
//! - **Elections** are new terms: in Raft every term begins with one election (or a
//!   leadership transfer's TimeoutNow, which is an election too), and with PreVote a term
//!   is raised only by a real candidacy. The count is the term now minus the term this
//!   server first saw, so it is exact however rarely it is sampled (it includes terms this
//!   node skipped over by hearing of them late).
//! - **Leader changes** and **times this node became leader** are sampled every
//!   [`SAMPLE_INTERVAL`]; a leadership that starts and ends between two samples is missed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::conn::stopped;
use super::Ctx;
use crate::raft::Role;

/// How often the watcher samples the node's state: well under an election timeout (100 ms
/// and more), so a leadership that lasts one election timeout is seen.
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_millis(50);

/// `first_term` before the first sample.
const UNSET: u64 = u64::MAX;

/// What the watcher counts.
#[derive(Debug)]
pub(crate) struct ElectionStats {
    /// The term at the first sample ([`UNSET`] before it).
    first_term: AtomicU64,
    /// The highest term seen.
    last_term: AtomicU64,
    /// Samples whose known leader differed from the previous sample's (a leader known
    /// after none counts, none after a leader does not).
    pub(crate) leader_changes: AtomicU64,
    /// Samples where this node was leader and the previous one was not.
    pub(crate) became_leader: AtomicU64,
}

impl Default for ElectionStats {
    fn default() -> Self {
        Self {
            first_term: AtomicU64::new(UNSET),
            last_term: AtomicU64::new(0),
            leader_changes: AtomicU64::new(0),
            became_leader: AtomicU64::new(0),
        }
    }
}

impl ElectionStats {
    /// Elections since this server started: terms begun since its first sample.
    pub(crate) fn elections(&self) -> u64 {
        let first = self.first_term.load(Ordering::Relaxed);
        if first == UNSET {
            return 0;
        }
        self.last_term.load(Ordering::Relaxed).saturating_sub(first)
    }

    /// Records one sample of the node's term.
    pub(crate) fn observe_term(&self, term: u64) {
        let _ = self
            .first_term
            .compare_exchange(UNSET, term, Ordering::Relaxed, Ordering::Relaxed);
        self.last_term.fetch_max(term, Ordering::Relaxed);
    }
}

/// Samples the node until `stop`.
pub(crate) async fn watch(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let stats = &ctx.elections;
    let mut leader = None;
    let mut was_leader = false;
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tick.tick() => {}
        }
        // A node that is shutting down answers no more: stop sampling then.
        let Ok(st) = ctx.handle.status().await else {
            return;
        };
        stats.observe_term(st.term.0);
        if st.leader.is_some() && st.leader != leader {
            stats.leader_changes.fetch_add(1, Ordering::Relaxed);
        }
        leader = st.leader.or(leader);
        let is_leader = st.role == Role::Leader;
        if is_leader && !was_leader {
            stats.became_leader.fetch_add(1, Ordering::Relaxed);
        }
        was_leader = is_leader;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elections_are_terms_since_the_first_sample() {
        let s = ElectionStats::default();
        assert_eq!(s.elections(), 0);
        s.observe_term(5);
        assert_eq!(s.elections(), 0);
        s.observe_term(7);
        // A stale sample never lowers the count.
        s.observe_term(6);
        assert_eq!(s.elections(), 2);
    }
}
