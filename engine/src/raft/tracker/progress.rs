//! What the leader knows about one follower's log.

use crate::raft::tracker::Inflights;
use crate::raft::types::LogIndex;

/// How the leader sends to a follower (etcd's progress states).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProgressState {
    /// Unknown match: one AppendEntries at a time until one is accepted.
    Probe,
    /// Known match: `next` advances optimistically, bounded by the in-flight window.
    Replicate,
    /// Waiting for the follower to install the snapshot at this index.
    Snapshot(LogIndex),
}

/// One follower's replication progress.
///
/// Invariant: `match_index < next` (asserted on every change).
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// Highest index known to be durable and matching on the follower.
    pub(crate) match_index: LogIndex,
    /// Next index to send.
    pub(crate) next: LogIndex,
    pub(crate) state: ProgressState,
    /// In probe state: an AppendEntries is outstanding; wait for its answer or a heartbeat.
    pub(crate) probe_sent: bool,
    pub(crate) inflights: Inflights,
    /// Heard from since the last CheckQuorum.
    pub(crate) recent_active: bool,
    /// Highest heartbeat round the follower acknowledged in this term.
    pub(crate) acked_round: u64,
    /// Round current when the last AppendEntries was sent; a heartbeat of a later round that
    /// comes back while `match` lags shows the appends were lost.
    pub(crate) sent_round: u64,
    /// Highest commit index sent to the follower; commit-only appends are skipped below it.
    pub(crate) commit_sent: LogIndex,
}

impl Progress {
    pub(crate) fn new(next: LogIndex, msgs_max: usize, bytes_max: u64) -> Self {
        assert!(next > LogIndex(0), "invariant: next >= 1");
        Progress {
            match_index: LogIndex(0),
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(msgs_max, bytes_max),
            recent_active: false,
            acked_round: 0,
            sent_round: 0,
            commit_sent: LogIndex(0),
        }
    }

    fn assert_invariant(&self) {
        assert!(
            self.match_index < self.next,
            "invariant: match {} < next {}",
            self.match_index,
            self.next
        );
    }

    /// Whether the leader must hold off sending entries.
    pub(crate) fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot(_) => true,
        }
    }

    pub(crate) fn become_probe(&mut self) {
        if let ProgressState::Snapshot(pending) = self.state {
            self.next = self.match_index.max(pending).next();
        } else {
            self.next = self.match_index.next();
        }
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.inflights.reset();
        self.assert_invariant();
    }

    pub(crate) fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next = self.match_index.next();
        self.probe_sent = false;
        self.inflights.reset();
        self.assert_invariant();
    }

    pub(crate) fn become_snapshot(&mut self, index: LogIndex) {
        self.state = ProgressState::Snapshot(index);
        self.probe_sent = false;
        self.inflights.reset();
        self.next = self.next.max(index.next());
        self.assert_invariant();
    }

    /// Records a send of entries up to `last` (`bytes` of entries).
    pub(crate) fn on_sent(&mut self, last: LogIndex, bytes: u64, entries: bool) {
        match self.state {
            ProgressState::Replicate if entries => {
                self.next = last.next();
                self.inflights.add(last.0, bytes);
            }
            ProgressState::Replicate => {}
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot(_) => panic!("no append while sending a snapshot"),
        }
        self.assert_invariant();
    }

    /// The follower acknowledged `index`. Returns whether `match` advanced.
    pub(crate) fn maybe_update(&mut self, index: LogIndex) -> bool {
        let updated = index > self.match_index;
        if updated {
            self.match_index = index;
            self.probe_sent = false;
        }
        self.next = self.next.max(index.next());
        self.inflights.free_to(index.0);
        self.assert_invariant();
        updated
    }

    /// The follower rejected an append at `rejected`, hinting it may match at `hint`.
    /// Returns false for a stale rejection (etcd `MaybeDecrTo`).
    pub(crate) fn maybe_decr_to(&mut self, rejected: LogIndex, hint: LogIndex) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.match_index {
                return false;
            }
            self.become_probe();
            return true;
        }
        if rejected != self.next.prev() {
            return false;
        }
        self.next = rejected.min(hint.next()).max(self.match_index.next());
        self.probe_sent = false;
        self.assert_invariant();
        true
    }
}
