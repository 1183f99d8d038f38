//! Configuration of one core, with validation.

use crate::raft::errors::ConfigError;
use crate::raft::types::NodeId;

/// Parts per million in one.
const PPM: u64 = 1_000_000;

/// A test-only switch that breaks exactly one safety rule, so the simulation can prove it
/// catches the violation. It can be switched on only through `Config::mutation`, a field that
/// exists only with the `mutations` cargo feature.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mutation {
    /// Commit entries of earlier terms by counting replicas (breaks Raft paper 5.4.2).
    CountOldTermTowardCommit,
    /// Grant votes without the up-to-date log check (breaks leader completeness).
    VoteWithoutLogCheck,
    /// Serve lease reads before an entry of the leader's term commits.
    LeaseReadBeforeNoopCommit,
    /// Followers acknowledge appends before persisting them.
    AckAppendBeforePersist,
    /// The lease starts when a quorum's acknowledgement is received instead of when the
    /// acknowledged round was sent (breaks the lease bound of Raft thesis 6.4).
    LeaseFromReceiveTime,
    /// Votes and pre-votes are granted while a live leader was heard within the minimum
    /// election timeout (no leader stickiness, thesis 4.2.3; breaks lease safety).
    VoteDespiteLeaderLease,
    /// A follower installs a received snapshot even when its commit index is already at or
    /// past the snapshot's index, replacing newer committed entries (Raft figure 13).
    SnapshotOverNewerEntries,
    /// A follower serves a read at its own commit index without asking the leader for the
    /// read index (thesis 6.4.1).
    FollowerReadWithoutReadIndex,
    /// Accept proposals and AppendEntries entries over `entry_bytes_max` (the storage then
    /// refuses them and the node stops).
    AcceptOversizedEntries,
    /// A Ready handed out before the log was rewritten (a truncated suffix, a discard by a
    /// snapshot) still confirms its last entry by (index, term) when it completes, so entries
    /// received after the rewrite count as durable before they are (issue 13 item 4).
    ConfirmReadyAcrossRewrite,
}

/// Configuration of one core. Build with [`Config::new`], adjust fields, then
/// [`Config::validate`] (done by [`crate::raft::RawNode::new`]).
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id; not 0.
    pub id: NodeId,
    /// Lower bound of the randomized election timeout, in ticks. Also the leader-stickiness
    /// window and the CheckQuorum period.
    pub election_ticks_min: u64,
    /// Upper bound (exclusive) of the randomized election timeout, in ticks.
    pub election_ticks_max: u64,
    /// Heartbeat interval, in ticks. Must be below `election_ticks_min`.
    pub heartbeat_ticks: u64,
    /// Nominal length of one tick on the runtime's clock, in nanoseconds. Converts
    /// `election_ticks_min` to time for leases and stickiness.
    pub tick_nanos: u64,
    /// Bound on the rate difference between any two clocks, in parts per million.
    pub max_clock_drift_ppm: u64,
    /// Safety margin subtracted from the lease, in nanoseconds (message delay jitter, scheduling).
    pub lease_margin_nanos: u64,
    /// Run a pre-vote round before raising the term (Raft thesis 9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within `election_ticks_min` steps down.
    pub check_quorum: bool,
    /// Upper bound on the entry bytes of one AppendEntries (at least one entry is always sent).
    pub batch_bytes_max: u64,
    /// Upper bound on AppendEntries in flight to one follower in replicate state.
    pub inflight_msgs_max: usize,
    /// Upper bound on entry bytes in flight to one follower.
    pub inflight_bytes_max: u64,
    /// Upper bound on the data of one entry, bytes. A larger proposal is refused with
    /// [`crate::raft::ProposeError::TooLarge`], and an AppendEntries carrying a larger entry
    /// with [`crate::raft::StepError::EntryTooLarge`]: the runtime's storage and transport are
    /// sized for entries up to this bound (checked by the runtime's configuration), so no
    /// entry that reaches them can be refused there, which would stop the node.
    pub entry_bytes_max: u64,
    /// Upper bound on appended but uncommitted entries on the leader; proposals beyond are
    /// refused with [`crate::raft::ProposeError::TooManyPending`].
    pub proposals_pending_max: u64,
    /// Upper bound on reads waiting for confirmation.
    pub reads_pending_max: u64,
    /// On a snapshot, the leader keeps log entries that a follower in probe or replicate
    /// state still needs if it is at most this many entries behind (it then needs no snapshot).
    pub log_retain_entries_max: u64,
    /// Test-only rule breaker.
    #[cfg(feature = "mutations")]
    pub mutation: Option<Mutation>,
}

impl Config {
    /// Defaults suited to a LAN with a 10 ms tick: elections after 100-200 ms, heartbeats every
    /// 20 ms, 1 MiB batches, 256 messages / 16 MiB in flight per follower.
    #[must_use]
    pub fn new(id: NodeId) -> Self {
        Config {
            id,
            election_ticks_min: 10,
            election_ticks_max: 20,
            heartbeat_ticks: 2,
            tick_nanos: 10_000_000,
            max_clock_drift_ppm: 10_000,
            lease_margin_nanos: 5_000_000,
            pre_vote: true,
            check_quorum: true,
            batch_bytes_max: 1 << 20,
            inflight_msgs_max: 256,
            inflight_bytes_max: 16 << 20,
            // 4 MiB: half the WAL's default 8 MiB record limit (room for the runtime's tag
            // byte and a future header), and one such entry plus a full batch stays far
            // below the transport's default 16 MiB frame.
            entry_bytes_max: 4 << 20,
            proposals_pending_max: 1 << 20,
            reads_pending_max: 1 << 16,
            log_retain_entries_max: 1 << 16,
            #[cfg(feature = "mutations")]
            mutation: None,
        }
    }

    /// Checks the relations between the limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == NodeId(0) {
            return Err(ConfigError::InvalidId);
        }
        let positive: [(&'static str, u64); 8] = [
            ("heartbeat_ticks", self.heartbeat_ticks),
            ("tick_nanos", self.tick_nanos),
            ("batch_bytes_max", self.batch_bytes_max),
            ("inflight_msgs_max", self.inflight_msgs_max as u64),
            ("inflight_bytes_max", self.inflight_bytes_max),
            ("entry_bytes_max", self.entry_bytes_max),
            ("proposals_pending_max", self.proposals_pending_max),
            ("reads_pending_max", self.reads_pending_max),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Zero { field });
        }
        if self.heartbeat_ticks >= self.election_ticks_min
            || self.election_ticks_min >= self.election_ticks_max
        {
            return Err(ConfigError::ElectionTicks {
                heartbeat: self.heartbeat_ticks,
                min: self.election_ticks_min,
                max: self.election_ticks_max,
            });
        }
        if self.max_clock_drift_ppm >= PPM {
            return Err(ConfigError::ClockDrift {
                ppm: self.max_clock_drift_ppm,
            });
        }
        let lease = self.lease_before_margin_nanos();
        if self.lease_margin_nanos >= lease {
            return Err(ConfigError::LeaseMargin {
                margin: self.lease_margin_nanos,
                lease,
            });
        }
        if self.inflight_bytes_max < self.batch_bytes_max {
            return Err(ConfigError::Window {
                inflight: self.inflight_bytes_max,
                batch: self.batch_bytes_max,
            });
        }
        Ok(())
    }

    /// The minimum election timeout in nanoseconds: `election_ticks_min * tick_nanos`.
    #[must_use]
    pub fn election_timeout_min_nanos(&self) -> u64 {
        self.election_ticks_min.saturating_mul(self.tick_nanos)
    }

    fn lease_before_margin_nanos(&self) -> u64 {
        let min = u128::from(self.election_timeout_min_nanos());
        let scaled = min * u128::from(PPM - self.max_clock_drift_ppm) / u128::from(PPM);
        u64::try_from(scaled).unwrap_or(u64::MAX)
    }

    /// Lease length from the send time of a quorum-acknowledged round:
    /// `election_timeout_min * (1 - max_clock_drift) - margin` (Raft thesis 6.4).
    #[must_use]
    pub fn lease_nanos(&self) -> u64 {
        self.lease_before_margin_nanos()
            .saturating_sub(self.lease_margin_nanos)
    }

    /// Whether the given mutation is switched on (always false without the feature).
    pub(crate) fn mutated(&self, m: Mutation) -> bool {
        #[cfg(feature = "mutations")]
        {
            self.mutation == Some(m)
        }
        #[cfg(not(feature = "mutations"))]
        {
            let _ = m;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_table() {
        let ok = Config::new(NodeId(1));
        assert_eq!(ok.validate(), Ok(()));
        type Case = (fn(&mut Config), ConfigError);
        let cases: Vec<Case> = vec![
            (|c| c.id = NodeId(0), ConfigError::InvalidId),
            (
                |c| c.tick_nanos = 0,
                ConfigError::Zero {
                    field: "tick_nanos",
                },
            ),
            (
                |c| c.heartbeat_ticks = 10,
                ConfigError::ElectionTicks {
                    heartbeat: 10,
                    min: 10,
                    max: 20,
                },
            ),
            (
                |c| c.election_ticks_max = 10,
                ConfigError::ElectionTicks {
                    heartbeat: 2,
                    min: 10,
                    max: 10,
                },
            ),
            (
                |c| c.max_clock_drift_ppm = PPM,
                ConfigError::ClockDrift { ppm: PPM },
            ),
            (
                |c| c.lease_margin_nanos = 99_000_000,
                ConfigError::LeaseMargin {
                    margin: 99_000_000,
                    lease: 99_000_000,
                },
            ),
            (
                |c| c.entry_bytes_max = 0,
                ConfigError::Zero {
                    field: "entry_bytes_max",
                },
            ),
            (
                |c| c.inflight_bytes_max = 1,
                ConfigError::Window {
                    inflight: 1,
                    batch: 1 << 20,
                },
            ),
        ];
        for (mutate, want) in cases {
            let mut c = Config::new(NodeId(1));
            mutate(&mut c);
            assert_eq!(c.validate(), Err(want));
        }
    }

    #[test]
    fn lease_formula() {
        // 10 ticks of 10 ms, 1% drift, 5 ms margin: 100 ms * 0.99 - 5 ms = 94 ms.
        assert_eq!(Config::new(NodeId(1)).lease_nanos(), 94_000_000);
    }
}
