//! The simulated cluster: the event loop, clients, the nemesis and the checks.

mod clients;
mod nemesis;

use std::collections::BTreeMap;
use std::sync::Arc;

use ringraft::raft::{Config, InitialState, Message, MessageBody, NodeId, Role};

use super::client::{Client, Reply, Request};
use super::clock::SimClock;
use super::kv::{KvSnapshot, PutCommand};
use super::network::Network;
use super::node::{role_view, NodeOutput, SimNode};
use super::params::{self, Profile, SimParams};
use super::trace::Trace;
use crate::invariants::{
    self, AckedWrite, ClusterView, ConfigView, DurableView, Invariant, NodeView, Observation,
};
use crate::linearizability::History;
use crate::rng::Rng;

/// A test-only rule breaker to switch on in every node (engine feature `mutations`, which
/// this package always enables).
pub type MutationSwitch = Option<ringraft::raft::Mutation>;

/// Options of one run that are not drawn from the seed.
#[derive(Clone, Debug, Default)]
pub struct SimOptions {
    /// Print the trace live.
    pub trace: bool,
    /// Rule breaker to switch on.
    pub mutation: MutationSwitch,
    /// Fault profile to run instead of the one the seed picks.
    pub profile: Option<Profile>,
}

/// Something scheduled to happen at a true time.
#[derive(Debug)]
enum Event {
    Tick {
        node: u64,
        incarnation: u64,
    },
    Deliver {
        msg: Message,
        snapshot: Option<Arc<KvSnapshot>>,
    },
    /// A message that reached a paused node, taken when it resumes: it already arrived, so
    /// a partition made since does not drop it (it sits in the process' socket buffer).
    Arrived {
        msg: Message,
        snapshot: Option<Arc<KvSnapshot>>,
    },
    /// Cut every link to and from `node` (a pause that comes with a partition).
    Isolate {
        node: u64,
    },
    /// Cut every link out of `node` (the second step of a slow-acks attack).
    CutOut {
        node: u64,
    },
    Persisted {
        node: u64,
        incarnation: u64,
        number: u64,
    },
    Request {
        node: u64,
        client: u64,
        seq: u64,
        request: Request,
    },
    Reply {
        client: u64,
        seq: u64,
        reply: Reply,
    },
    ClientTimeout {
        client: u64,
        seq: u64,
    },
    ClientNext {
        client: u64,
    },
    Nemesis,
    Restart {
        node: u64,
    },
    /// Crash `node` if it still leads in `incarnation`.
    CrashLeader {
        node: u64,
        incarnation: u64,
    },
    Heal,
    /// A pause of `node` ends (if it was not extended meanwhile).
    Resume {
        node: u64,
    },
    EndFaults,
    /// Propose a liveness probe on every leader (healing phase only).
    Probe,
    /// The sender's transport reports on a peer: `Some(ok)` the outcome of a snapshot
    /// stream, `None` the peer is unreachable.
    TransportReport {
        node: u64,
        incarnation: u64,
        peer: u64,
        snapshot: Option<bool>,
    },
}

/// How long a transport takes to notice that a snapshot stream failed.
const SNAPSHOT_FAIL_NANOS: u64 = 50_000_000;

/// Events one run may take: runs take 5,000-15,000, so a run far beyond is a message storm
/// (a leader and a follower that disagree on the follower's log, retrying at every answer),
/// which is reported as a failure instead of running for hours.
const STEPS_MAX: u64 = 2_000_000;

/// Client id of the liveness probes.
const PROBE_CLIENT: u64 = u64::MAX;
/// Key of the liveness probes (clients use keys below `SimParams::keys`).
const PROBE_KEY: u64 = u64::MAX;
/// Interval between probes while healing.
const PROBE_INTERVAL_NANOS: u64 = 5 * params::TICK_NANOS;

/// The phases of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Faults are injected.
    Faults,
    /// Faults stopped at `since`: a leader must be elected and commit within the bound.
    Healing { since: u64 },
    /// Liveness shown; no new client operations, outstanding ones finish until `until`.
    Draining { until: u64 },
}

/// How a run failed.
#[derive(Debug)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// What went wrong.
    pub reason: String,
    /// The last lines of the trace.
    pub trace_tail: Vec<String>,
}

/// Counters of a finished run.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    /// Events processed.
    pub steps: u64,
    /// Simulated time at the end.
    pub sim_nanos: u64,
    /// Client operations invoked.
    pub ops: u64,
    /// Writes acknowledged.
    pub acked_writes: u64,
    /// Reads answered.
    pub reads_ok: u64,
    /// Operations whose outcome stayed unknown.
    pub unknown: u64,
    /// Leaders elected (leader changes).
    pub elections: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Snapshots installed on followers.
    pub snapshots_installed: u64,
    /// Snapshots installed over a log that held the snapshot's entry and a suffix not yet
    /// all durable (see [`crate::invariants::Observation::SnapshotInstalled`]).
    pub snapshots_over_held_suffix: u64,
    /// Membership changes proposed successfully.
    pub conf_changes: u64,
    /// Leadership transfers started.
    pub transfers: u64,
    /// Ticks from healing to liveness.
    pub liveness_ticks: u64,
    /// Pauses that the end of the fault phase cut short.
    pub pauses_cut_by_faults_end: u64,
    /// The drain ended with no leader, so the run waited for the election in progress.
    pub drain_end_waits_for_leader: bool,
    /// Times a leader's commit index advanced onto an entry of an older term (legal only as
    /// a side effect of committing a later own-term entry in the same step).
    pub old_term_commits: u64,
    /// Digest of the trace (see [`crate::sim::trace::Trace::digest`]), to check determinism.
    pub trace_digest: u64,
}

/// A whole simulated cluster.
pub struct Simulation {
    params: SimParams,
    options: SimOptions,
    now: u64,
    step: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    nodes: BTreeMap<u64, SimNode>,
    initial_voters: Vec<u64>,
    network: Network,
    clients: Vec<Client>,
    history: History,
    next_value: u64,
    next_read_id: u64,
    acked: Vec<AckedWrite>,
    invariants: Vec<Box<dyn Invariant>>,
    observations: Vec<Observation>,
    trace: Trace,
    phase: Phase,
    /// Last (term, commit) seen per leader, for [`RunStats::old_term_commits`].
    leader_commits: BTreeMap<u64, (u64, u64)>,
    /// Leaders whose commit advanced in their current term (cleared on role changes).
    leader_first_commit: std::collections::BTreeSet<u64>,
    /// Applied index of the newest membership seen applied (see `update_membership`).
    conf_applied_index: u64,
    /// Every membership seen in force (newest applied), the initial one first.
    configs: Vec<ConfigView>,
    /// Highest log index on any node when the faults stopped.
    heal_floor: u64,
    /// The drain ended with no leader (traced once).
    waited_for_leader: bool,
    /// Probes proposed so far.
    probes: u64,
    /// New leaders muted by the figure-8 profile (every link out of them cut until their
    /// crash).
    muted: std::collections::BTreeSet<u64>,
    /// Inputs of paused nodes, held in arrival order until the node resumes (at the end of
    /// its pause or at the end of the faults, whichever comes first).
    paused_inputs: BTreeMap<u64, Vec<Event>>,
    /// The leader a lease attack targets, while it runs: even clients read from it, odd
    /// clients write elsewhere (see `on_client_next`). Cleared by every heal.
    pinned: Option<u64>,
    /// True time at which the running lease attack heals (no new attack before).
    attack_until: u64,
    rng_net: Rng,
    rng_disk: Rng,
    rng_client: Rng,
    rng_nemesis: Rng,
    rng_seed: Rng,
    stats: RunStats,
}

impl Simulation {
    /// A cluster whose every parameter and fault is drawn from `seed`.
    pub fn new(seed: u64, options: SimOptions) -> Self {
        let params = SimParams::from_seed_with(seed, options.profile);
        let mut root = Rng::new(seed);
        let network = Network::new(params.net.clone());
        let initial_voters: Vec<u64> = (1..=params.nodes).collect();
        let clients = (0..params.clients).map(Client::new).collect();
        let trace = Trace::new(options.trace);
        Simulation {
            now: 0,
            step: 0,
            seq: 0,
            queue: BTreeMap::new(),
            nodes: BTreeMap::new(),
            initial_voters,
            network,
            clients,
            history: History::new(),
            next_value: 1,
            next_read_id: 1,
            acked: Vec::new(),
            invariants: invariants::all(),
            observations: Vec::new(),
            trace,
            phase: Phase::Faults,
            conf_applied_index: 0,
            heal_floor: 0,
            waited_for_leader: false,
            configs: vec![ConfigView {
                voters: (1..=params.nodes).collect(),
                voters_outgoing: Default::default(),
            }],
            probes: 0,
            paused_inputs: BTreeMap::new(),
            pinned: None,
            attack_until: 0,
            muted: std::collections::BTreeSet::new(),
            leader_commits: BTreeMap::new(),
            leader_first_commit: std::collections::BTreeSet::new(),
            rng_net: root.fork(),
            rng_disk: root.fork(),
            rng_client: root.fork(),
            rng_nemesis: root.fork(),
            rng_seed: root.fork(),
            stats: RunStats::default(),
            options,
            params,
        }
    }

    /// The parameters drawn from the seed.
    pub fn params(&self) -> &SimParams {
        &self.params
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((at.max(self.now), self.seq), event);
    }

    fn config_for(&self, id: u64) -> Config {
        let mut c = Config::new(NodeId(id));
        c.election_ticks_min = params::ELECTION_TICKS_MIN;
        c.election_ticks_max = params::ELECTION_TICKS_MAX;
        c.heartbeat_ticks = params::HEARTBEAT_TICKS;
        c.tick_nanos = params::TICK_NANOS;
        c.max_clock_drift_ppm = params::CLOCK_DRIFT_PPM_MAX;
        c.lease_margin_nanos = params::LEASE_MARGIN_NANOS;
        c.batch_bytes_max = self.params.batch_bytes_max;
        c.inflight_bytes_max = 64 << 10;
        c.inflight_msgs_max = self.params.inflight_msgs_max;
        c.proposals_pending_max = 256;
        c.log_retain_entries_max = self.params.log_retain_entries_max;
        c.mutation = self.options.mutation;
        c
    }

    fn bootstrap(&self) -> InitialState {
        InitialState::bootstrap(self.initial_voters.iter().map(|id| NodeId(*id)))
    }

    fn add_node(&mut self, id: u64) {
        let rate = self.params.clock_rates_ppm[(id - 1) as usize];
        // Clocks start at arbitrary readings: the core must only use differences.
        let start_local = self.rng_seed.range(0, 1 << 40);
        let clock = SimClock::new(rate, start_local, self.now);
        let node = SimNode::new(
            id,
            clock,
            self.params.snapshot_every,
            self.params.disk_latency_of(id),
        );
        self.nodes.insert(id, node);
        self.start_node(id);
    }

    fn start_node(&mut self, id: u64) {
        let config = self.config_for(id);
        let bootstrap = self.bootstrap();
        let seed = self.rng_seed.next_u64();
        let now = self.now;
        let node = self.nodes.get_mut(&id).expect("starting a known node");
        node.start(config, bootstrap, seed, now);
        let incarnation = node.incarnation;
        let first_tick = node
            .clock
            .true_time_of(node.next_tick_local + params::TICK_NANOS);
        self.schedule(
            first_tick,
            Event::Tick {
                node: id,
                incarnation,
            },
        );
        if incarnation > 1 {
            self.observations.push(Observation::Restarted { node: id });
        }
        self.trace_line(format!("n{id} starts (incarnation {incarnation})"));
    }

    fn trace_line(&mut self, text: String) {
        self.trace.line(self.step, self.now, text);
    }

    /// Runs the whole scenario: faults, healing (liveness), draining, final checks.
    pub fn run(mut self) -> Result<RunStats, Failure> {
        for id in self.initial_voters.clone() {
            self.add_node(id);
            if let Some(n) = self.nodes.get_mut(&id) {
                n.admitted = true;
            }
        }
        for c in 0..self.params.clients {
            let at = self.rng_client.range(0, 50_000_000);
            self.schedule(at, Event::ClientNext { client: c });
        }
        self.schedule(self.params.nemesis_interval_nanos, Event::Nemesis);
        self.schedule(self.params.fault_phase_nanos, Event::EndFaults);
        if let Err(reason) = self.event_loop() {
            return Err(self.failure(reason));
        }
        if let Err(reason) = self.final_checks() {
            return Err(self.failure(reason));
        }
        self.stats.steps = self.step;
        self.stats.trace_digest = self.trace.digest();
        self.stats.sim_nanos = self.now;
        Ok(self.stats)
    }

    fn failure(&self, reason: String) -> Failure {
        Failure {
            seed: self.params.seed,
            reason,
            trace_tail: self.trace.tail(),
        }
    }

    fn event_loop(&mut self) -> Result<(), String> {
        while let Some(((at, _), event)) = self.queue.pop_first() {
            self.now = at;
            self.step += 1;
            if self.step > STEPS_MAX {
                return Err(format!(
                    "more than {STEPS_MAX} events by {} ms: a message storm{}",
                    self.now / 1_000_000,
                    self.describe_nodes()
                ));
            }
            self.handle(event);
            self.check_invariants()?;
            match self.phase {
                Phase::Healing { since } => {
                    if self.live() {
                        let ticks = (self.now - since) / params::TICK_NANOS;
                        self.stats.liveness_ticks = ticks;
                        self.trace_line(format!(
                            "liveness: leader elected and committed after {ticks} ticks"
                        ));
                        self.phase = Phase::Draining {
                            until: self.now + 2 * self.params.client_timeout_nanos,
                        };
                    } else if self.now - since > self.params.liveness_bound_nanos {
                        return Err(format!(
                            "liveness: no leader committed an entry of its term within {} ticks \
                             after faults stopped{}",
                            self.params.liveness_bound_nanos / params::TICK_NANOS,
                            self.describe_nodes()
                        ));
                    }
                }
                Phase::Draining { until } if self.now >= until => {
                    // A leader can step down while the clients drain (one that removes
                    // itself once its membership change commits, a lost CheckQuorum), and
                    // the election after it may split: the end waits for that election,
                    // within the same bound as healing, rather than judging an instant.
                    let leader = self.current_leader().is_some();
                    if leader || self.now >= until + self.params.liveness_bound_nanos {
                        return Ok(());
                    }
                    if !self.waited_for_leader {
                        self.waited_for_leader = true;
                        self.stats.drain_end_waits_for_leader = true;
                        self.trace_line(
                            "drain ends with no leader: waiting for the election".to_string(),
                        );
                    }
                }
                _ => {}
            }
        }
        Err("event queue ran dry (simulator bug)".to_string())
    }

    fn describe_nodes(&self) -> String {
        let mut s = String::new();
        for n in self.nodes.values() {
            let st = n.raw.as_ref().map(|r| r.status());
            s.push_str(&format!(
                "\n  n{} alive={} member={} role={:?} {}",
                n.id,
                n.is_alive(),
                n.member,
                n.role,
                st.map(|st| format!(
                    "term={} commit={} applied={} last={} leader={:?} voters={:?}",
                    st.term.0,
                    st.commit.0,
                    st.applied.0,
                    st.last_index.0,
                    st.leader,
                    st.membership.voters
                ))
                .unwrap_or_default()
            ));
        }
        s
    }

    /// A member leader holds the commit of an entry of its own term.
    /// Liveness: a member leader has committed an entry of its own term that was appended
    /// after the faults stopped (the probes of [`Event::Probe`] or a new leader's no-op make
    /// sure there is one to commit).
    fn live(&self) -> bool {
        self.nodes.values().any(|n| {
            n.member
                && n.role == Role::Leader
                && n.raw.as_ref().is_some_and(|r| {
                    let st = r.status();
                    st.commit.0 > self.heal_floor && r.term_at(st.commit) == Some(st.term)
                })
        })
    }

    /// During healing, every node that believes it leads is asked to commit a probe write
    /// (outside the client history, on a key no client uses).
    fn on_probe(&mut self) {
        if !matches!(self.phase, Phase::Healing { .. }) {
            return;
        }
        let leaders: Vec<u64> = self
            .nodes
            .values()
            .filter(|n| n.is_alive() && n.role == Role::Leader)
            .map(|n| n.id)
            .collect();
        for id in leaders {
            self.probes += 1;
            let cmd = PutCommand {
                client: PROBE_CLIENT,
                seq: self.probes,
                key: PROBE_KEY,
                value: self.probes,
            };
            self.with_node(id, None, |n, _| {
                // A refusal (not leader any more, too many pending) is fine: the next probe
                // goes to whoever leads then.
                let _ = n.raw().propose(cmd.encode());
            });
        }
        self.schedule(self.now + PROBE_INTERVAL_NANOS, Event::Probe);
    }

    /// Counts old-term commit advances and, in the flapping and figure-8 profiles, crashes a
    /// leader right after its commit index first advances in its term (before the followers
    /// learn it).
    fn watch_leader_commits(&mut self) {
        let mut crash = Vec::new();
        for n in self.nodes.values() {
            let Some(r) = n.raw.as_ref().filter(|_| n.role == Role::Leader) else {
                continue;
            };
            let st = r.status();
            let last = self.leader_commits.insert(n.id, (st.term.0, st.commit.0));
            let advanced = last.is_some_and(|(t, c)| t == st.term.0 && c < st.commit.0);
            if !advanced {
                continue;
            }
            if r.term_at(st.commit).is_some_and(|t| t < st.term) {
                self.stats.old_term_commits += 1;
            }
            let first_in_term = self.leader_first_commit.insert(n.id);
            if first_in_term && self.params.crash_on_first_commit && self.phase == Phase::Faults {
                crash.push((n.id, n.incarnation));
            }
        }
        for (node, incarnation) in crash {
            if self.rng_nemesis.chance(self.params.flap_percent) {
                self.schedule(self.now, Event::CrashLeader { node, incarnation });
            }
        }
    }

    fn check_invariants(&mut self) -> Result<(), String> {
        self.watch_leader_commits();
        let observations = std::mem::take(&mut self.observations);
        let mut nodes = BTreeMap::new();
        for n in self.nodes.values() {
            let (term, commit) = n
                .raw
                .as_ref()
                .map(|r| {
                    let st = r.status();
                    (st.term.0, st.commit.0)
                })
                .unwrap_or((0, 0));
            nodes.insert(
                n.id,
                NodeView {
                    id: n.id,
                    alive: n.is_alive(),
                    member: n.member,
                    incarnation: n.incarnation,
                    role: role_view(n.role),
                    term,
                    commit,
                    applied: n.applied(),
                    log: &n.log,
                    durable: DurableView {
                        term: n.disk.durable.hard_state.term.0,
                        commit: n.disk.durable.hard_state.commit.0,
                        log: &n.disk.durable.mirror,
                    },
                },
            );
        }
        let view = ClusterView {
            step: self.step,
            now: self.now,
            nodes,
            observations: &observations,
            acked_writes: &self.acked,
        };
        for inv in &mut self.invariants {
            if let Err(v) = inv.check(&view) {
                return Err(format!("step {}: {v}", self.step));
            }
        }
        Ok(())
    }

    /// The node an event acts on, if it is a node's own input.
    fn target(event: &Event) -> Option<u64> {
        match event {
            Event::Tick { node, .. }
            | Event::Persisted { node, .. }
            | Event::Request { node, .. }
            | Event::TransportReport { node, .. } => Some(*node),
            Event::Deliver { msg, .. } | Event::Arrived { msg, .. } => Some(msg.to.0),
            _ => None,
        }
    }

    fn handle(&mut self, event: Event) {
        // A paused process (GC pause, SIGSTOP, a stalled VM) takes no input until it resumes;
        // its clock keeps running, so it wakes up with `now` far ahead.
        if let Some(id) = Self::target(&event) {
            let until = self.nodes.get(&id).map_or(0, |n| n.paused_until);
            let arrived = match &event {
                Event::Deliver { msg, .. } => self.network.connected(msg.from.0, msg.to.0),
                _ => true,
            };
            if until > self.now && arrived {
                assert!(
                    self.phase == Phase::Faults,
                    "simulator bug: n{id}'s pause outlived the fault phase"
                );
                self.paused_inputs.entry(id).or_default().push(event);
                return;
            }
        }
        match event {
            Event::Tick { node, incarnation } => self.on_tick(node, incarnation),
            Event::Deliver { msg, snapshot } => {
                if self.network.connected(msg.from.0, msg.to.0) {
                    self.on_deliver(msg, snapshot);
                } // else cut while in flight
            }
            Event::Arrived { msg, snapshot } => self.on_deliver(msg, snapshot),
            Event::Isolate { node } => {
                if self.phase == Phase::Faults {
                    let members = self.member_ids();
                    self.network.isolate(node, &members);
                    self.trace_line(format!("NEMESIS isolate paused n{node}"));
                }
            }
            Event::Persisted {
                node,
                incarnation,
                number,
            } => {
                let now = self.now;
                self.with_node(node, Some(incarnation), |n, out| {
                    n.persisted(number, now, out)
                });
            }
            Event::Request {
                node,
                client,
                seq,
                request,
            } => self.on_request(node, client, seq, request),
            Event::Reply { client, seq, reply } => self.on_reply(client, seq, reply),
            Event::ClientTimeout { client, seq } => self.on_client_timeout(client, seq),
            Event::ClientNext { client } => self.on_client_next(client),
            Event::Nemesis => self.on_nemesis(),
            Event::Restart { node } => {
                if self
                    .nodes
                    .get(&node)
                    .is_some_and(|n| !n.is_alive() && n.member)
                {
                    self.start_node(node);
                    self.drive(node);
                }
            }
            Event::CrashLeader { node, incarnation } => {
                // A muted leader is crashed even if it stepped down meanwhile: its links are
                // restored only by its crash.
                let muted = self.muted.contains(&node);
                let leads = self.nodes.get(&node).is_some_and(|n| {
                    n.is_alive()
                        && n.incarnation == incarnation
                        && (n.role == Role::Leader || muted)
                });
                if leads && self.phase == Phase::Faults {
                    self.crash(
                        node,
                        if muted {
                            "muted leader"
                        } else {
                            "flapping leader"
                        },
                    );
                }
            }
            Event::CutOut { node } => self.cut_out(node),
            Event::Heal => {
                self.network.heal();
                self.pinned = None;
                self.trace_line("network heals".to_string());
            }
            Event::Resume { node } => {
                let until = self.nodes.get(&node).map_or(0, |n| n.paused_until);
                if until <= self.now {
                    self.resume(node);
                }
            }
            Event::EndFaults => self.end_faults(),
            Event::Probe => self.on_probe(),
            Event::TransportReport {
                node,
                incarnation,
                peer,
                snapshot,
            } => {
                self.with_node(node, Some(incarnation), |n, _| match snapshot {
                    Some(ok) => n.raw().report_snapshot(NodeId(peer), ok),
                    None => n.raw().report_unreachable(NodeId(peer)),
                });
            }
        }
    }

    /// Ends `id`'s pause: its held inputs are taken now, in the order they arrived. A pause
    /// never outlives the fault phase: `end_faults` resumes every paused node.
    fn resume(&mut self, id: u64) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.paused_until = 0;
        }
        let held = self.paused_inputs.remove(&id).unwrap_or_default();
        if !held.is_empty() {
            self.trace_line(format!("n{id} resumes ({} inputs held)", held.len()));
        }
        for event in held {
            let event = match event {
                Event::Deliver { msg, snapshot } => Event::Arrived { msg, snapshot },
                other => other,
            };
            self.schedule(self.now, event);
        }
    }

    /// Runs `f` on a live node (of the given incarnation), then acts on its Readys.
    fn with_node(
        &mut self,
        id: u64,
        incarnation: Option<u64>,
        f: impl FnOnce(&mut SimNode, &mut NodeOutput),
    ) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if !node.is_alive() || incarnation.is_some_and(|i| i != node.incarnation) {
            return;
        }
        let role_before = node.role;
        let mut out = NodeOutput::default();
        f(node, &mut out);
        node.drain_ready(&mut self.rng_disk, self.now, &mut out);
        let campaigns = node.role == Role::PreCandidate && role_before != Role::PreCandidate;
        self.dispatch(id, out);
        if campaigns {
            self.on_campaign(id);
        }
    }

    fn drive(&mut self, id: u64) {
        self.with_node(id, None, |_, _| {});
    }

    fn dispatch(&mut self, id: u64, out: NodeOutput) {
        for line in out.trace {
            self.trace_line(line);
        }
        let incarnation = self.nodes.get(&id).map_or(0, |n| n.incarnation);
        for (number, at) in out.persists {
            self.schedule(
                at,
                Event::Persisted {
                    node: id,
                    incarnation,
                    number,
                },
            );
        }
        for (msg, snapshot) in out.sends {
            self.send(msg, snapshot);
        }
        for (client, seq, reply) in out.replies {
            self.send_reply(client, seq, reply);
        }
        for o in &out.observations {
            match o {
                Observation::BecameLeader { node, .. } => {
                    self.stats.elections += 1;
                    self.leader_first_commit.remove(node);
                    if self.phase == Phase::Faults && self.params.mute_percent > 0 {
                        // Figure 8: the new leader is muted and crashed soon, or left to
                        // replicate until its first commit advance.
                        self.maybe_mute(*node, incarnation);
                        continue;
                    }
                    if self.phase == Phase::Faults
                        && self.rng_nemesis.chance(self.params.flap_percent)
                    {
                        let at =
                            self.now + self.rng_nemesis.range(0, self.params.flap_delay_nanos_max);
                        self.schedule(
                            at,
                            Event::CrashLeader {
                                node: *node,
                                incarnation,
                            },
                        );
                    }
                }
                Observation::SnapshotInstalled {
                    over_held_suffix, ..
                } => {
                    self.stats.snapshots_installed += 1;
                    self.stats.snapshots_over_held_suffix += u64::from(*over_held_suffix);
                }
                Observation::Applied { .. } => {}
                _ => {}
            }
        }
        let conf_applied = out
            .observations
            .contains(&Observation::DurableShrunkOrConfigChanged);
        self.observations.extend(out.observations);
        self.stats.acked_writes += out.acked.len() as u64;
        if conf_applied {
            self.update_membership(id);
        }
        let configs = &self.configs;
        self.acked.extend(out.acked.into_iter().map(|mut w| {
            w.configs = configs.clone();
            w
        }));
    }

    /// After `id` applied a membership change: if it is the newest configuration applied
    /// anywhere, nodes no longer in it are stopped for good (a committed change is final).
    /// Older configurations re-applied by a lagging or restarted node change nothing.
    fn update_membership(&mut self, id: u64) {
        let Some(node) = self.nodes.get(&id) else {
            return;
        };
        let Some(m) = node.raw.as_ref().map(|r| r.status().membership) else {
            return;
        };
        let applied = node.applied();
        if applied <= self.conf_applied_index {
            return;
        }
        self.conf_applied_index = applied;
        let config = ConfigView {
            voters: m.voters.iter().map(|n| n.0).collect(),
            voters_outgoing: m.voters_outgoing.iter().map(|n| n.0).collect(),
        };
        if self.configs.last() != Some(&config) {
            self.configs.push(config);
        }
        for n in self.nodes.values_mut() {
            if m.contains(n.node_id()) {
                n.admitted = true;
            }
        }
        let removed: Vec<u64> = self
            .nodes
            .values()
            .filter(|n| n.member && n.admitted && !m.contains(n.node_id()))
            .map(|n| n.id)
            .collect();
        for r in removed {
            if let Some(n) = self.nodes.get_mut(&r) {
                n.member = false;
                n.crash();
            }
            self.paused_inputs.remove(&r);
            self.trace_line(format!(
                "n{r} removed from the cluster (config applied at {applied}) and stopped"
            ));
        }
    }

    fn send(&mut self, msg: Message, snapshot: Option<Arc<KvSnapshot>>) {
        let (from, to) = (msg.from.0, msg.to.0);
        let arrivals = self.network.route(&mut self.rng_net, from, to, self.now);
        if self.trace.is_live() {
            let fate = if arrivals.is_empty() {
                " (lost)".to_string()
            } else if arrivals.len() > 1 {
                " (duplicated)".to_string()
            } else {
                String::new()
            };
            self.trace_line(format!("send {msg}{fate}"));
        }
        self.transport_reports(&msg, arrivals.first().copied());
        for at in arrivals {
            self.schedule(
                at,
                Event::Deliver {
                    msg: msg.clone(),
                    snapshot: snapshot.clone(),
                },
            );
        }
    }

    /// What the sender's transport learns about a message: a snapshot stream's outcome (the
    /// receiver acknowledges it, so after a round trip), and sometimes that a cut link is down.
    fn transport_reports(&mut self, msg: &Message, first_arrival: Option<u64>) {
        let (from, to) = (msg.from.0, msg.to.0);
        let incarnation = self.nodes.get(&from).map_or(0, |n| n.incarnation);
        let report = |at, snapshot| {
            (
                at,
                Event::TransportReport {
                    node: from,
                    incarnation,
                    peer: to,
                    snapshot,
                },
            )
        };
        let scheduled = if matches!(msg.body, MessageBody::InstallSnapshot { .. }) {
            Some(match first_arrival {
                Some(arrive) => report(2 * arrive - self.now, Some(true)),
                None => report(self.now + SNAPSHOT_FAIL_NANOS, Some(false)),
            })
        } else if !self.network.connected(from, to) && self.rng_net.chance(20) {
            Some(report(self.now + self.network.params.delay_max_nanos, None))
        } else {
            None
        };
        if let Some((at, event)) = scheduled {
            self.schedule(at, event);
        }
    }

    fn on_deliver(&mut self, msg: Message, snapshot: Option<Arc<KvSnapshot>>) {
        let to = msg.to.0;
        if self.trace.is_live() || matches!(msg.body, MessageBody::InstallSnapshot { .. }) {
            self.trace_line(format!("recv {msg}"));
        }
        let now = self.now;
        self.with_node(to, None, |n, _| n.receive(msg, snapshot, now));
    }

    fn on_tick(&mut self, id: u64, incarnation: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if !node.is_alive() || node.incarnation != incarnation {
            return;
        }
        node.next_tick_local += params::TICK_NANOS;
        let next = node.clock.true_time_of(node.next_tick_local);
        let local = node.local_now(self.now);
        node.raw().tick(local);
        self.drive(id);
        self.schedule(
            next,
            Event::Tick {
                node: id,
                incarnation,
            },
        );
    }
}
