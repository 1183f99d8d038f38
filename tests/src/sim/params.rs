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
    /// The fault profile of this run (see [`Profile`]).
    pub profile: Profile,
    /// Crash a leader right after its commit index first advances in its term (before its
    /// followers learn the new commit), with probability `flap_percent`.
    pub crash_on_first_commit: bool,
    /// Percent of new leaders muted at once (every link out of them cut, so their first
    /// entries stay theirs alone) and crashed within `flap_delay_nanos_max`: the unreplicated
    /// conflicting tails of Raft paper figure 8.
    pub mute_percent: u64,
    /// The core's `log_retain_entries_max`: small values send lagging followers snapshots.
    pub log_retain_entries_max: u64,
    /// Range of a crashed node's downtime, in nanoseconds.
    pub restart_delay_nanos: (u64, u64),
    /// Range of a process pause, in nanoseconds.
    pub pause_nanos: (u64, u64),
    /// Percent of crashes aimed at the leader (when there is one).
    pub crash_leader_percent: u64,
    /// Percent of pauses aimed at the leader (when there is one).
    pub pause_leader_percent: u64,
    /// Percent of pauses that also cut the paused node off from its peers (from shortly after
    /// the pause starts until a while after it ends).
    pub pause_isolate_percent: u64,
    /// Percent of pre-vote campaigns that pause the leader at once (see `on_campaign`).
    pub pause_on_campaign_percent: u64,
    /// Percent of partitions that are bridges: the leader's side and the others' side meet
    /// only in one bridge node that hears both (see `nemesis_bridge`).
    pub bridge_percent: u64,
    /// Range of the delay a lease attack adds to the slowed links into the leader, in
    /// nanoseconds (see `nemesis_attack`).
    pub attack_delay_nanos: (u64, u64),
    /// Per-node disk latency ranges (index 0 is node 1), replacing `disk_latency_nanos` when
    /// set: a new leader whose own disk is slower than its followers' holds a quorum's
    /// acknowledgement of its first round before its no-op is durable on itself.
    pub disk_latency_per_node: Option<Vec<(u64, u64)>>,
}

/// A fault mix aimed at one family of rules. The seed picks the profile (`Profile::draw`),
/// so a seed still determines everything; `sim --profile NAME` forces one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Profile {
    /// The broad mix: every fault with weights drawn per seed.
    Default,
    /// Leaders crashed within milliseconds of their election or first commit, one entry per
    /// AppendEntries, lease reads (see `make_flapping`).
    Flapping,
    /// Snapshots every few entries, a leader that keeps almost no log for laggards, lagging
    /// and restarted followers, duplicated and late messages: InstallSnapshot races appends.
    Snapshot,
    /// Clocks at the drift bound, long message delays, leader pauses around lease expiry,
    /// mostly lease reads sent to any node.
    Lease,
    /// New leaders muted and crashed before they replicate, or crashed right after a first
    /// partial commit; fast restarts and term churn (Raft paper figure 8).
    Figure8,
    /// Bridge and one-way partitions: a node that still hears the leader is asked to vote
    /// by a node that does not (leader stickiness).
    Bridge,
    /// Lease attacks: the links into the leader slowed by 120-300 ms, then the links out of
    /// it cut while readers stay on it and writers go elsewhere (a lease measured from the
    /// receipt of late acknowledgements outlives the followers' stickiness).
    SlowAcks,
    /// Stickiness attacks: one side cut off from the leader both ways, a bridge node that
    /// still hears the leader and answers it over a slow link, few writes; readers stay on
    /// the leader and writers go elsewhere (a bridge that votes although it heard a live
    /// leader lets the far side commit while the leader's lease holds).
    Sticky,
}

impl Profile {
    /// Every profile, in the order of their seed shares.
    pub const ALL: [Profile; 8] = [
        Profile::Flapping,
        Profile::Snapshot,
        Profile::Lease,
        Profile::Figure8,
        Profile::Bridge,
        Profile::SlowAcks,
        Profile::Sticky,
        Profile::Default,
    ];

    /// Percent of seeds that run each targeted profile (the rest run `Default`): together
    /// 70% of the seeds. The last two were taken from `Default`'s share, so every seed of
    /// the other profiles kept its profile and its parameters.
    pub const SHARES_PERCENT: [u64; 7] = [20, 10, 10, 10, 10, 5, 5];

    /// The profile of a seed, from a roll in `0..100`.
    fn from_roll(roll: u64) -> Profile {
        let mut floor = 0;
        for (profile, share) in Profile::ALL.iter().zip(Profile::SHARES_PERCENT) {
            floor += share;
            if roll < floor {
                return *profile;
            }
        }
        Profile::Default
    }

    /// The lower-case name `sim --profile` takes.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Flapping => "flapping",
            Profile::Snapshot => "snapshot",
            Profile::Lease => "lease",
            Profile::Figure8 => "figure8",
            Profile::Bridge => "bridge",
            Profile::SlowAcks => "slowacks",
            Profile::Sticky => "sticky",
        }
    }

    /// The profile named `name`, if any.
    pub fn from_name(name: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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
    /// A lease attack on the leader (the `slowacks` and `sticky` profiles only).
    pub attack: u64,
}

impl SimParams {
    /// Draws every parameter from `seed`, the profile included.
    pub fn from_seed(seed: u64) -> Self {
        Self::from_seed_with(seed, None)
    }

    /// Draws every parameter from `seed`; `forced` replaces the profile the seed would pick
    /// (every other draw stays the same).
    pub fn from_seed_with(seed: u64, forced: Option<Profile>) -> Self {
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
            attack: 0,
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
            profile: Profile::Default,
            crash_on_first_commit: false,
            mute_percent: 0,
            log_retain_entries_max: 1 << 16,
            restart_delay_nanos: (10_000_000, 1_500_000_000),
            pause_nanos: (20_000_000, 1_000_000_000),
            crash_leader_percent: 40,
            pause_leader_percent: 50,
            bridge_percent: 0,
            pause_isolate_percent: 0,
            pause_on_campaign_percent: 0,
            attack_delay_nanos: (0, 0),
            disk_latency_per_node: None,
        };
        let drawn = Profile::from_roll(rng.below(100));
        p.profile = forced.unwrap_or(drawn);
        match p.profile {
            Profile::Default => {}
            Profile::Flapping => p.make_flapping(&mut rng),
            Profile::Snapshot => p.make_snapshot(&mut rng),
            Profile::Lease => p.make_lease(&mut rng),
            Profile::Figure8 => p.make_figure8(&mut rng),
            Profile::Bridge => p.make_bridge(&mut rng),
            Profile::SlowAcks => p.make_slow_acks(&mut rng),
            Profile::Sticky => p.make_sticky(&mut rng),
        }
        p
    }

    /// The disk latency range of node `id`.
    pub fn disk_latency_of(&self, id: u64) -> (u64, u64) {
        self.disk_latency_per_node
            .as_ref()
            .and_then(|v| v.get((id - 1) as usize).copied())
            .unwrap_or(self.disk_latency_nanos)
    }

    /// What the two attack profiles share: the attack is the nemesis' main action and ends
    /// only by its own heal (no heals, partitions, pauses, membership changes or transfers
    /// cut it short); one register, so every write an attack lets commit elsewhere is one
    /// the leader's readers should see; short client timeouts, so a writer stuck on the
    /// attacked leader moves on.
    fn make_attack_common(&mut self, rng: &mut Rng) {
        self.nemesis.attack = rng.range(6, 12);
        self.nemesis.quiet = rng.range(1, 4);
        self.nemesis.crash = rng.range(0, 2);
        self.nemesis.restart = 2;
        self.nemesis.partition = 0;
        self.nemesis.heal = 0;
        self.nemesis.pause = 0;
        self.nemesis.membership = 0;
        self.nemesis.transfer = 0;
        self.nemesis_interval_nanos = rng.range(50_000_000, 150_000_000);
        self.flap_percent = 0;
        self.net.loss_ppm = rng.range(0, 5_000);
        self.net.delay_long_ppm = 0;
        self.keys = 1;
        self.clients = rng.range(4, 6);
        self.lease_read_percent = rng.range(80, 100);
        self.think_nanos = (0, rng.range(500_000, 4_000_000));
        self.client_timeout_nanos = rng.range(150_000_000, 400_000_000);
    }

    /// The slow-acks profile (lease start, Raft thesis 6.4): an attack slows every link into
    /// the leader by 120-300 ms, then cuts every link out of it. Its followers stop hearing
    /// it and elect a new leader once their stickiness ends, about an election timeout after
    /// the last round they heard; the answers to that round reach the old leader only
    /// 120-300 ms after they were sent, so a lease counted from their receipt instead of
    /// from the round's send time still holds after the new leader committed writes.
    /// Clocks sit at the drift bound; half of the disks are slow, so a new leader often
    /// holds its followers' acknowledgement of its first round before its own no-op is
    /// durable.
    fn make_slow_acks(&mut self, rng: &mut Rng) {
        self.make_attack_common(rng);
        let half = (CLOCK_DRIFT_PPM_MAX / 2) as i64;
        for rate in self.clock_rates_ppm.iter_mut() {
            *rate = if rng.chance(50) { half - 1 } else { 1 - half };
        }
        self.attack_delay_nanos = (120_000_000, 300_000_000);
        self.write_percent = rng.range(30, 60);
        // Two clients of each role (see `on_client_next`).
        self.clients = 6;
        let disks = (0..NODES_MAX)
            .map(|_| {
                if rng.chance(50) {
                    (
                        rng.range(10_000_000, 20_000_000),
                        rng.range(25_000_000, 50_000_000),
                    )
                } else {
                    (rng.range(50_000, 300_000), rng.range(500_000, 2_000_000))
                }
            })
            .collect();
        self.disk_latency_per_node = Some(disks);
    }

    /// The sticky profile (leader stickiness, thesis 4.2.3): an attack cuts one side off
    /// from the leader both ways, and leaves a bridge node that hears the leader and
    /// answers it over a link slowed by 45-75 ms (so the leader's lease still holds, and it
    /// learns late of any newer term the bridge took on). The far side campaigns: only the
    /// bridge's refusal, since it hears a live leader, keeps it from winning while the
    /// leader serves lease reads. Few writes (the far side's logs stay as up to date as the
    /// bridge's, so the vote is not refused for a stale log), fast disks and a fast network
    /// (the far side commits within the lease).
    fn make_sticky(&mut self, rng: &mut Rng) {
        self.make_attack_common(rng);
        self.attack_delay_nanos = (45_000_000, 75_000_000);
        self.write_percent = rng.range(10, 30);
        self.net.delay_min_nanos = rng.range(100_000, 500_000);
        self.net.delay_max_nanos = rng.range(1_000_000, 3_000_000);
        self.disk_latency_nanos = (rng.range(50_000, 200_000), rng.range(300_000, 1_500_000));
    }

    /// The leader-flapping profile: three nodes, one entry per AppendEntries and one in
    /// flight, new leaders crashed within milliseconds, leaders isolated often. It makes the
    /// Raft paper's figure 8 reachable: a leader whose log holds a long uncommitted tail of an
    /// old term comes back, replicates that tail one entry at a time and crashes before its
    /// own no-op is replicated, while a node holding a conflicting entry of a newer term waits.
    fn make_flapping(&mut self, rng: &mut Rng) {
        self.crash_on_first_commit = true;
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

    /// The snapshot profile: state machines snapshot every few entries and the leader keeps
    /// almost no log for laggards, so followers that lag (paused, restarted, cut off from the
    /// leader for a while) get InstallSnapshot while appends, duplicates and late copies of
    /// older messages still arrive: a snapshot then races entries the follower already holds,
    /// acknowledged or not yet persisted.
    fn make_snapshot(&mut self, rng: &mut Rng) {
        self.snapshot_every = rng.range(2, 10);
        self.log_retain_entries_max = rng.range(0, 4);
        self.write_percent = rng.range(60, 90);
        self.net.duplicate_ppm = rng.range(20_000, 100_000);
        self.net.delay_long_ppm = rng.range(10_000, 40_000);
        self.net.delay_long_nanos = rng.range(20_000_000, 200_000_000);
        self.nemesis.crash = rng.range(3, 8);
        self.nemesis.restart = rng.range(2, 5);
        self.nemesis.pause = rng.range(3, 8);
        self.nemesis.partition = rng.range(2, 6);
        self.nemesis_interval_nanos = rng.range(20_000_000, 120_000_000);
        // Followers are the victims: a lagging follower is what needs a snapshot.
        self.crash_leader_percent = 10;
        self.pause_leader_percent = 10;
        self.restart_delay_nanos = (5_000_000, 400_000_000);
        self.pause_nanos = (20_000_000, 400_000_000);
        if rng.chance(50) {
            // Followers' disks slower than the network: entries still unpersisted (their acks
            // queued) when the snapshot that covers them arrives.
            self.disk_latency_nanos = (
                rng.range(2_000_000, 10_000_000),
                rng.range(20_000_000, 80_000_000),
            );
        }
    }

    /// The lease profile: clock rates at the edges of the drift bound, long message delays
    /// (late acknowledgements), leader pauses about as long as the lease, mostly lease reads,
    /// often sent to a node other than the believed leader.
    fn make_lease(&mut self, rng: &mut Rng) {
        let half = (CLOCK_DRIFT_PPM_MAX / 2) as i64;
        for rate in self.clock_rates_ppm.iter_mut() {
            *rate = if rng.chance(50) { half - 1 } else { 1 - half };
        }
        self.net.delay_min_nanos = rng.range(1_000_000, 4_000_000);
        self.net.delay_max_nanos = rng.range(6_000_000, 9_000_000);
        self.net.delay_long_ppm = rng.range(20_000, 80_000);
        self.net.delay_long_nanos = rng.range(30_000_000, 150_000_000);
        self.nemesis.pause = rng.range(4, 10);
        self.nemesis.partition = rng.range(2, 6);
        self.nemesis.crash = rng.range(0, 3);
        self.nemesis.membership = 0;
        self.nemesis_interval_nanos = rng.range(30_000_000, 150_000_000);
        self.pause_nanos = (60_000_000, 250_000_000);
        self.pause_leader_percent = 80;
        // A paused leader cut off after its last round's answers arrived: on waking it
        // takes those answers first, then the reads that queued up while a new leader
        // was elected and committed writes on the other side.
        self.pause_isolate_percent = rng.range(50, 90);
        self.write_percent = rng.range(25, 50);
        self.lease_read_percent = rng.range(85, 100);
        self.random_target_percent = rng.range(20, 60);
        self.clients = rng.range(4, 5);
        self.think_nanos = (0, rng.range(500_000, 5_000_000));
        self.flap_percent = if rng.chance(50) { rng.range(20, 60) } else { 0 };
    }

    /// The figure-8 profile (Raft paper section 5.4.2): three nodes, one entry per
    /// AppendEntries; most new leaders are muted and crashed before anything they appended
    /// leaves them, the others crash right after their first commit advance; restarts are
    /// fast, so terms churn and leaders with conflicting unreplicated tails alternate. A
    /// leader that counted replicas of an old-term entry toward commit is then replaced by
    /// one whose newer-term entry at that index wins the election.
    fn make_figure8(&mut self, rng: &mut Rng) {
        self.nodes = 3;
        self.batch_bytes_max = 1;
        self.inflight_msgs_max = 1;
        self.crash_on_first_commit = true;
        self.mute_percent = rng.range(40, 70);
        self.flap_percent = rng.range(70, 100);
        self.flap_delay_nanos_max = rng.range(500_000, 5_000_000);
        self.restart_delay_nanos = (5_000_000, rng.range(50_000_000, 300_000_000));
        self.net.loss_ppm = rng.range(0, 10_000);
        self.nemesis.crash = rng.range(1, 4);
        self.nemesis.partition = rng.range(0, 3);
        self.nemesis.membership = 0;
        self.nemesis.pause = 0;
        self.nemesis.transfer = 0;
        self.nemesis_interval_nanos = rng.range(50_000_000, 200_000_000);
        self.write_percent = rng.range(50, 90);
        self.random_target_percent = rng.range(0, 20);
    }

    /// The bridge profile: most partitions leave one node that hears both the leader's side
    /// and the other side (or cut links one way), so a node that lost the leader asks for
    /// votes from one that still hears it; mostly lease reads, sent to any node.
    fn make_bridge(&mut self, rng: &mut Rng) {
        self.bridge_percent = rng.range(60, 90);
        self.nemesis.partition = rng.range(4, 10);
        self.nemesis.heal = rng.range(2, 5);
        self.nemesis.pause = rng.range(0, 3);
        self.pause_nanos = (20_000_000, 90_000_000);
        self.pause_leader_percent = 80;
        // A leader paused when a node that lost it campaigns: the bridge's vote (refused
        // while it still hears the leader) is what decides whether a second leader can
        // commit while the paused one's lease holds.
        self.pause_on_campaign_percent = rng.range(30, 80);
        self.nemesis.membership = 0;
        self.nemesis_interval_nanos = rng.range(30_000_000, 150_000_000);
        self.lease_read_percent = rng.range(70, 100);
        self.random_target_percent = rng.range(20, 60);
        self.clients = rng.range(3, 5);
    }
}
