//! Every parameter of a simulated run, drawn from its seed.

use super::clock::PPM;
use super::network::NetParams;
use crate::rng::Rng;

/// Nominal tick length on every node's clock (the core's `tick_nanos`).
pub const TICK_NANOS: u64 = 10_000_000;
/// Minimum election timeout in ticks (the core's `election_ticks_min`).
pub const ELECTION_TICKS_MIN: u64 = 10;
/// Maximum election timeout in ticks (exclusive).
pub const ELECTION_TICKS_MAX: u64 = 20;
/// Heartbeat interval in ticks.
pub const HEARTBEAT_TICKS: u64 = 2;
/// Bound on the rate difference between two clocks the core is configured with, in ppm.
pub const CLOCK_DRIFT_PPM_MAX: u64 = 20_000;
/// Lease safety margin the core is configured with: above the network's normal maximum delay,
/// because the lease starts at the send time of a round, not at its receipt.
pub const LEASE_MARGIN_NANOS: u64 = 10_000_000;
/// Ticks the healed cluster may take to elect a leader and commit a new entry: restarted
/// nodes refuse votes for `ELECTION_TICKS_MIN` after boot, then pre-vote and vote rounds may
/// split a few times; observed worst case over 2,000 seeds was 48 ticks.
pub const LIVENESS_TICKS_MAX: u64 = 15 * ELECTION_TICKS_MAX;
/// Highest node id ever started (initial members plus nodes added by membership changes).
pub const NODES_MAX: u64 = 7;

/// The fault mix and workload of one run.
#[derive(Clone, Debug)]
pub struct SimParams {
    /// The seed everything is drawn from.
    pub seed: u64,
    /// Initial voters (3 or 5).
    pub nodes: u64,
    /// Network faults while the fault phase lasts.
    pub net: NetParams,
    /// Range of one disk write's latency (write plus fdatasync), in nanoseconds.
    pub disk_latency_nanos: (u64, u64),
    /// Clock rate of each node (index 0 is node 1), in ppm of true time; within +-bound/2.
    pub clock_rates_ppm: Vec<i64>,
    /// True time between two nemesis decisions.
    pub nemesis_interval_nanos: u64,
    /// Weights of the nemesis actions (see [`NemesisWeights`]).
    pub nemesis: NemesisWeights,
    /// Applied entries between two snapshots of a node's state machine.
    pub snapshot_every: u64,
    /// Number of concurrent clients.
    pub clients: u64,
    /// Number of keys the clients use.
    pub keys: u64,
    /// Percent of client operations that are writes.
    pub write_percent: u64,
    /// Percent of reads that ask for a lease read (the rest use ReadIndex).
    pub lease_read_percent: u64,
    /// Percent of requests sent to a random node rather than the believed leader.
    pub random_target_percent: u64,
    /// Client think time between operations, range in nanoseconds.
    pub think_nanos: (u64, u64),
    /// How long a client waits for an answer before recording an unknown outcome.
    pub client_timeout_nanos: u64,
    /// Length of the fault phase (true time).
    pub fault_phase_nanos: u64,
    /// Bound on the time the healed cluster may take to elect a leader and commit.
    pub liveness_bound_nanos: u64,
    /// The core's `batch_bytes_max`: tiny values make every AppendEntries carry one entry, so
    /// a new leader's old-term entries reach followers before its own no-op does (the setting
    /// of Raft paper figure 8).
    pub batch_bytes_max: u64,
    /// The core's `inflight_msgs_max`.
    pub inflight_msgs_max: usize,
    /// Percent of new leaders crashed shortly after their election (leader flapping): the
    /// windows in which a leader's log is only partly replicated, where commit rules matter.
    pub flap_percent: u64,
    /// Longest delay between an election and the flapping crash.
    pub flap_delay_nanos_max: u64,
    /// Whether the leader-flapping profile is on (see `make_flappy`).
    pub flappy: bool,
}

/// Percent of seeds run with the leader-flapping profile.
pub const FLAPPY_PERCENT: u64 = 40;

/// Relative weights of the nemesis' choices at each decision point.
#[derive(Clone, Debug)]
pub struct NemesisWeights {
    /// Do nothing.
    pub quiet: u64,
    /// Crash a node (restarted later).
    pub crash: u64,
    /// Restart a crashed node now.
    pub restart: u64,
    /// Partition the cluster (symmetric, asymmetric or isolate the leader).
    pub partition: u64,
    /// Heal every partition.
    pub heal: u64,
    /// A membership change (add learner, promote, remove a voter, the leader included).
    pub membership: u64,
    /// A leadership transfer.
    pub transfer: u64,
    /// Pause a process (the leader half of the time) for up to a second.
    pub pause: u64,
}

impl SimParams {
    /// Draws every parameter from `seed`.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x005E_ED0F_5EED);
        let nodes = if rng.chance(50) { 3 } else { 5 };
        let lossy = rng.chance(60);
        let net = NetParams {
            loss_ppm: if lossy { rng.range(0, 100_000) } else { 0 },
            duplicate_ppm: if rng.chance(50) {
                rng.range(0, 50_000)
            } else {
                0
            },
            delay_min_nanos: rng.range(100_000, 1_000_000),
            delay_max_nanos: rng.range(1_000_000, 8_000_000),
            delay_long_ppm: if rng.chance(40) {
                rng.range(0, 20_000)
            } else {
                0
            },
            delay_long_nanos: rng.range(20_000_000, 300_000_000),
        };
        let slow_disk = rng.chance(30);
        let disk_latency_nanos = if slow_disk {
            (
                rng.range(1_000_000, 5_000_000),
                rng.range(10_000_000, 60_000_000),
            )
        } else {
            (rng.range(50_000, 500_000), rng.range(1_000_000, 4_000_000))
        };
        let half = (CLOCK_DRIFT_PPM_MAX / 2) as i64;
        let clock_rates_ppm = (0..NODES_MAX)
            .map(|_| rng.range(0, 2 * half as u64) as i64 - half)
            .collect();
        const { assert!(CLOCK_DRIFT_PPM_MAX < PPM / 10) };
        let nemesis = NemesisWeights {
            quiet: rng.range(2, 10),
            crash: rng.range(0, 6),
            restart: rng.range(1, 4),
            partition: rng.range(0, 6),
            heal: rng.range(1, 5),
            membership: if rng.chance(50) { rng.range(1, 4) } else { 0 },
            transfer: rng.range(0, 3),
            pause: rng.range(0, 4),
        };
        let mut p = SimParams {
            seed,
            nodes,
            net,
            disk_latency_nanos,
            clock_rates_ppm,
            nemesis_interval_nanos: rng.range(30_000_000, 300_000_000),
            nemesis,
            snapshot_every: rng.range(8, 120),
            clients: rng.range(2, 5),
            keys: rng.range(1, 4),
            write_percent: rng.range(30, 70),
            lease_read_percent: rng.range(20, 90),
            random_target_percent: rng.range(5, 40),
            think_nanos: (0, rng.range(1_000_000, 40_000_000)),
            client_timeout_nanos: rng.range(200_000_000, 1_000_000_000),
            fault_phase_nanos: 4_000_000_000,
            liveness_bound_nanos: LIVENESS_TICKS_MAX * TICK_NANOS,
            batch_bytes_max: if rng.chance(50) {
                1
            } else {
                rng.range(64, 4096)
            },
            inflight_msgs_max: rng.range(1, 16) as usize,
            flap_percent: if rng.chance(50) { rng.range(10, 60) } else { 0 },
            flap_delay_nanos_max: rng.range(1_000_000, 60_000_000),
            flappy: false,
        };
        if rng.chance(FLAPPY_PERCENT) {
            p.make_flappy(&mut rng);
        }
        p
    }

    /// The leader-flapping profile: three nodes, one entry per AppendEntries and one in
    /// flight, new leaders crashed within milliseconds, leaders isolated often. It makes the
    /// Raft paper's figure 8 reachable: a leader whose log holds a long uncommitted tail of an
    /// old term comes back, replicates that tail one entry at a time and crashes before its
    /// own no-op is replicated, while a node holding a conflicting entry of a newer term waits.
    fn make_flappy(&mut self, rng: &mut Rng) {
        self.flappy = true;
        self.nodes = 3;
        self.batch_bytes_max = 1;
        self.inflight_msgs_max = 1;
        self.flap_percent = rng.range(60, 100);
        self.flap_delay_nanos_max = rng.range(500_000, 10_000_000);
        self.net.loss_ppm = rng.range(0, 20_000);
        self.nemesis.partition = rng.range(4, 10);
        self.nemesis.heal = rng.range(3, 8);
        self.nemesis.membership = 0;
        self.nemesis.pause = 0;
        self.nemesis_interval_nanos = rng.range(20_000_000, 100_000_000);
        self.write_percent = rng.range(40, 80);
        // Lease reads right after leader changes, on leaders whose own disk is slow: a new
        // leader that served lease reads before its no-op commits would answer from a state
        // that lacks writes the previous leader acknowledged.
        self.lease_read_percent = rng.range(70, 100);
        self.random_target_percent = rng.range(0, 10);
        self.clients = rng.range(3, 5);
        if rng.chance(50) {
            self.disk_latency_nanos = (
                rng.range(2_000_000, 10_000_000),
                rng.range(20_000_000, 60_000_000),
            );
        }
    }
}
