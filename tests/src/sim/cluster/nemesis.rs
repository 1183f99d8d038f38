//! The nemesis: crashes, restarts, partitions, membership changes and leadership transfers
//! during the fault phase; then healing and the final checks.

use ringraft::raft::{ConfChange, ConfChangeStep, NodeId, Role};

use super::{Event, Phase, Simulation};
use crate::linearizability::{check_history, CheckResult};
use crate::sim::params;

/// The nemesis' possible actions, weighted by [`crate::sim::params::NemesisWeights`].
#[derive(Clone, Copy, Debug)]
enum Action {
    Quiet,
    Crash,
    Restart,
    Partition,
    Heal,
    Membership,
    Transfer,
    Pause,
    Attack,
}

impl Simulation {
    pub(super) fn member_ids(&self) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| n.member)
            .map(|n| n.id)
            .collect()
    }

    fn alive_members(&self) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| n.member && n.is_alive())
            .map(|n| n.id)
            .collect()
    }

    /// The live member that believes it leads with the highest term.
    pub(super) fn current_leader(&self) -> Option<u64> {
        self.nodes
            .values()
            .filter(|n| n.member && n.role == Role::Leader)
            .filter_map(|n| n.raw.as_ref().map(|r| (r.status().term, n.id)))
            .max()
            .map(|(_, id)| id)
    }

    /// One nemesis decision.
    pub(super) fn on_nemesis(&mut self) {
        if self.phase != Phase::Faults {
            return;
        }
        let w = &self.params.nemesis;
        let choices = [
            (Action::Quiet, w.quiet),
            (Action::Crash, w.crash),
            (Action::Restart, w.restart),
            (Action::Partition, w.partition),
            (Action::Heal, w.heal),
            (Action::Membership, w.membership),
            (Action::Transfer, w.transfer),
            (Action::Pause, w.pause),
            (Action::Attack, w.attack),
        ];
        let total: u64 = choices.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng_nemesis.below(total.max(1));
        let mut action = Action::Quiet;
        for (a, weight) in choices {
            if roll < weight {
                action = a;
                break;
            }
            roll -= weight;
        }
        match action {
            Action::Quiet => {}
            Action::Crash => self.nemesis_crash(),
            Action::Restart => self.nemesis_restart(),
            Action::Partition => self.nemesis_partition(),
            Action::Heal => self.schedule(self.now, Event::Heal),
            Action::Membership => self.nemesis_membership(),
            Action::Transfer => self.nemesis_transfer(),
            Action::Pause => self.nemesis_pause(),
            Action::Attack => self.nemesis_attack(),
        }
        let next = self.now
            + self
                .rng_nemesis
                .range(1, 2 * self.params.nemesis_interval_nanos);
        self.schedule(next, Event::Nemesis);
    }

    fn nemesis_crash(&mut self) {
        let alive = self.alive_members();
        if alive.is_empty() {
            return;
        }
        // Crash the leader more often: that is where lost unpersisted state and stale leases
        // matter most.
        let victim = match self.current_leader() {
            Some(l) if self.rng_nemesis.chance(self.params.crash_leader_percent) => l,
            _ => *self.rng_nemesis.pick(&alive),
        };
        self.crash(victim, "nemesis");
    }

    /// Crashes `victim` (losing its unpersisted writes) and schedules its restart.
    pub(super) fn crash(&mut self, victim: u64, why: &str) {
        let lost = self.nodes.get(&victim).map_or(0, |n| n.disk.pending.len());
        if let Some(n) = self.nodes.get_mut(&victim) {
            n.crash();
        }
        // A crashed process loses what it had not read yet (its sockets die with it).
        self.paused_inputs.remove(&victim);
        if self.muted.remove(&victim) {
            // Nothing a muted leader sent ever arrives: drop its messages still in flight
            // before its links come back.
            self.queue
                .retain(|_, e| !matches!(e, Event::Deliver { msg, .. } if msg.from.0 == victim));
            for m in self.member_ids() {
                self.network.restore_one_way(victim, m);
            }
        }
        self.stats.crashes += 1;
        self.observations
            .push(crate::invariants::Observation::Crashed { node: victim });
        self.trace_line(format!(
            "NEMESIS crash n{victim} ({why}; loses {lost} pending disk writes)"
        ));
        let (down_min, down_max) = self.params.restart_delay_nanos;
        let downtime = self.rng_nemesis.range(down_min, down_max);
        self.schedule(self.now + downtime, Event::Restart { node: victim });
    }

    fn nemesis_pause(&mut self) {
        let alive = self.alive_members();
        if alive.is_empty() {
            return;
        }
        let victim = match self.current_leader() {
            Some(l) if self.rng_nemesis.chance(self.params.pause_leader_percent) => l,
            _ => *self.rng_nemesis.pick(&alive),
        };
        self.pause(victim);
    }

    /// Pauses `victim` for a drawn time; with probability `pause_isolate_percent` it is also
    /// cut off from every peer a little later (once the answers to its last messages are in
    /// its socket buffer) until a while after it resumes.
    fn pause(&mut self, victim: u64) {
        let (pause_min, pause_max) = self.params.pause_nanos;
        let until = self.now + self.rng_nemesis.range(pause_min, pause_max);
        if let Some(n) = self.nodes.get_mut(&victim) {
            n.paused_until = n.paused_until.max(until);
        }
        self.schedule(until, Event::Resume { node: victim });
        self.trace_line(format!(
            "NEMESIS pause n{victim} until {}ms",
            until / 1_000_000
        ));
        if self.params.pause_isolate_percent > 0
            && self.rng_nemesis.chance(self.params.pause_isolate_percent)
        {
            let cut_at = self.now + 2 * self.network.params.delay_max_nanos;
            let heal_at = until + self.rng_nemesis.range(10_000_000, 200_000_000);
            self.schedule(cut_at, Event::Isolate { node: victim });
            self.schedule(heal_at, Event::Heal);
        }
    }

    /// A node started an election: with probability `pause_on_campaign_percent` the leader
    /// (if it is another live node) is paused now, so it cannot learn of a new term while
    /// its lease may still hold, and serves what reached it during the pause on waking.
    pub(super) fn on_campaign(&mut self, candidate: u64) {
        if self.phase != Phase::Faults || self.params.pause_on_campaign_percent == 0 {
            return;
        }
        let Some(leader) = self.current_leader().filter(|l| *l != candidate) else {
            return;
        };
        let paused = self
            .nodes
            .get(&leader)
            .is_some_and(|n| n.paused_until > self.now);
        if !paused
            && self
                .rng_nemesis
                .chance(self.params.pause_on_campaign_percent)
        {
            self.trace_line(format!("NEMESIS n{candidate} campaigns"));
            self.pause(leader);
        }
    }

    fn nemesis_restart(&mut self) {
        let dead: Vec<u64> = self
            .nodes
            .values()
            .filter(|n| n.member && !n.is_alive())
            .map(|n| n.id)
            .collect();
        if dead.is_empty() {
            return;
        }
        let id = *self.rng_nemesis.pick(&dead);
        self.trace_line(format!("NEMESIS restart n{id}"));
        self.schedule(self.now, Event::Restart { node: id });
    }

    /// Figure 8: with probability `mute_percent`, cuts every link out of the new `leader`
    /// (what it appended stays its own) and crashes it once that is durable; its crash
    /// restores the links.
    pub(super) fn maybe_mute(&mut self, leader: u64, incarnation: u64) {
        if !self.rng_nemesis.chance(self.params.mute_percent) {
            return;
        }
        for m in self.member_ids() {
            self.network.cut_one_way(leader, m);
        }
        self.muted.insert(leader);
        // Crash it only once its own entries are durable: they must outlive the crash.
        let at = self.now
            + self.params.disk_latency_nanos.1
            + self.rng_nemesis.range(0, self.params.flap_delay_nanos_max);
        self.schedule(
            at,
            Event::CrashLeader {
                node: leader,
                incarnation,
            },
        );
        self.trace_line(format!("NEMESIS mute new leader n{leader}"));
    }

    /// A bridge: the leader's side and the other side meet only in one node that hears both
    /// (or, a third of the time, the leader's side is cut off one way only: it still hears
    /// the others). The far side loses the leader and asks the bridge for votes while the
    /// bridge still hears a live leader: leader stickiness is what refuses them.
    fn nemesis_bridge(&mut self, leader: u64) {
        let mut others: Vec<u64> = self
            .member_ids()
            .into_iter()
            .filter(|m| *m != leader)
            .collect();
        if others.len() < 2 {
            return;
        }
        self.rng_nemesis.shuffle(&mut others);
        let bridge = others[0];
        let rest = &others[1..];
        // The leader keeps fewer than half of the rest on its side, so the far side plus the
        // bridge is a majority.
        let near_count = (rest.len() - 1) / 2;
        let mut near = vec![leader];
        near.extend_from_slice(&rest[..near_count]);
        let far = rest[near_count..].to_vec();
        let one_way = self.rng_nemesis.chance(33);
        if one_way {
            for a in &near {
                for b in &far {
                    self.network.cut_one_way(*a, *b);
                }
            }
        } else {
            self.network.partition_symmetric(&near, &far);
        }
        let how = if one_way { "one way" } else { "both ways" };
        self.trace_line(format!(
            "NEMESIS bridge n{bridge} between {near:?} and {far:?} (cut {how})"
        ));
    }

    /// A lease attack on the leader (the `slowacks` and `sticky` profiles), unless one is
    /// still running. It ends with a heal of the whole network, which also unpins the
    /// clients.
    fn nemesis_attack(&mut self) {
        if self.now < self.attack_until {
            return;
        }
        let Some(leader) = self.current_leader() else {
            return;
        };
        let (lo, hi) = self.params.attack_delay_nanos;
        let delay = self.rng_nemesis.range(lo, hi);
        let heal_at = if self.params.profile == params::Profile::Sticky {
            self.attack_sticky(leader, delay)
        } else {
            self.attack_slow_acks(leader, delay)
        };
        self.attack_until = heal_at;
        self.schedule(heal_at, Event::Heal);
    }

    /// Slows every link into `leader` by up to `delay`, and cuts every link out of it once
    /// the slowdown is complete (`Event::CutOut`, which also pins the readers on it).
    /// Returns when the attack heals: long after the new leader stepped it down.
    fn attack_slow_acks(&mut self, leader: u64, delay: u64) -> u64 {
        for m in self.member_ids() {
            self.network.slow_one_way(m, leader, self.now, delay);
        }
        self.trace_line(format!(
            "NEMESIS attack: links into leader n{leader} slowed by up to {}ms",
            delay / 1_000_000
        ));
        let cut_at = self.now + 2 * delay + self.rng_nemesis.range(0, 40_000_000);
        self.schedule(cut_at, Event::CutOut { node: leader });
        cut_at + delay + self.rng_nemesis.range(300_000_000, 600_000_000)
    }

    /// Cuts a far side off from `leader` (and from the leader's near side) both ways and
    /// slows the link from a bridge node into the leader by `delay`; the readers stay on
    /// the leader. Three nodes: bridge and one far node; five: one near node, the bridge
    /// and two far nodes, so the far side plus the bridge is a majority.
    fn attack_sticky(&mut self, leader: u64, delay: u64) -> u64 {
        let mut others: Vec<u64> = self
            .member_ids()
            .into_iter()
            .filter(|m| *m != leader)
            .collect();
        if others.len() < 2 {
            return self.now;
        }
        self.rng_nemesis.shuffle(&mut others);
        let bridge = others[0];
        let rest = &others[1..];
        let near_count = (rest.len() - 1) / 2;
        let mut near = vec![leader];
        near.extend_from_slice(&rest[..near_count]);
        let far = rest[near_count..].to_vec();
        self.network.partition_symmetric(&near, &far);
        self.network.slow_one_way(bridge, leader, self.now, delay);
        self.pinned = Some(leader);
        self.trace_line(format!(
            "NEMESIS attack: {far:?} cut from {near:?}, bridge n{bridge} answers leader              n{leader} {}ms late",
            delay / 1_000_000
        ));
        self.now + self.rng_nemesis.range(400_000_000, 900_000_000)
    }

    /// The second step of a slow-acks attack: every link out of `node` is cut (messages
    /// into it, slowed, still arrive), and the readers stay on it.
    pub(super) fn cut_out(&mut self, node: u64) {
        if self.phase != Phase::Faults || self.now >= self.attack_until {
            return;
        }
        for m in self.member_ids() {
            self.network.cut_one_way(node, m);
        }
        self.pinned = Some(node);
        self.trace_line(format!("NEMESIS attack: links out of n{node} cut"));
    }

    fn nemesis_partition(&mut self) {
        let members = self.member_ids();
        let leader = self.current_leader();
        if let Some(l) = leader.filter(|_| self.params.bridge_percent > 0) {
            if self.rng_nemesis.chance(self.params.bridge_percent) {
                self.nemesis_bridge(l);
                self.maybe_schedule_heal();
                return;
            }
        }
        let kind = self.rng_nemesis.below(4);
        match (kind, leader) {
            (0, Some(l)) => {
                // Isolate the leader: a stale leader on the minority side.
                self.network.isolate(l, &members);
                self.trace_line(format!("NEMESIS isolate leader n{l}"));
            }
            (1, Some(l)) => {
                // Asymmetric: the leader still sends but hears nothing back, or the reverse.
                let others: Vec<u64> = members.iter().copied().filter(|m| *m != l).collect();
                let inbound = self.rng_nemesis.chance(50);
                for o in others {
                    if self.rng_nemesis.chance(70) {
                        if inbound {
                            self.network.cut_one_way(o, l);
                        } else {
                            self.network.cut_one_way(l, o);
                        }
                    }
                }
                let dir = if inbound { "into" } else { "out of" };
                self.trace_line(format!(
                    "NEMESIS cut links {dir} leader n{l}: {:?}",
                    self.network.blocked_links()
                ));
            }
            (2, _) => {
                // Random one-way cuts.
                for a in &members {
                    for b in &members {
                        if a != b && self.rng_nemesis.chance(20) {
                            self.network.cut_one_way(*a, *b);
                        }
                    }
                }
                self.trace_line(format!(
                    "NEMESIS random one-way cuts: {:?}",
                    self.network.blocked_links()
                ));
            }
            _ => {
                // A symmetric split into two sides.
                let mut shuffled = members.clone();
                self.rng_nemesis.shuffle(&mut shuffled);
                let cut = self
                    .rng_nemesis
                    .range(1, (shuffled.len() as u64).saturating_sub(1).max(1))
                    as usize;
                let (a, b) = shuffled.split_at(cut.min(shuffled.len()));
                self.network.partition_symmetric(a, b);
                self.trace_line(format!("NEMESIS partition {a:?} | {b:?}"));
            }
        }
        self.maybe_schedule_heal();
    }

    /// Most partitions heal by themselves after a while (the others at the next heal).
    fn maybe_schedule_heal(&mut self) {
        if self.rng_nemesis.chance(60) {
            let heal_at = self.now + self.rng_nemesis.range(50_000_000, 2_000_000_000);
            self.schedule(heal_at, Event::Heal);
        }
    }

    fn nemesis_membership(&mut self) {
        let Some(leader) = self.current_leader() else {
            return;
        };
        let Some(status) = self
            .nodes
            .get(&leader)
            .and_then(|n| n.raw.as_ref())
            .map(|r| r.status())
        else {
            return;
        };
        let m = status.membership;
        if m.is_joint() {
            return;
        }
        let learners: Vec<u64> = m.learners.iter().map(|n| n.0).collect();
        let voters: Vec<u64> = m.voters.iter().map(|n| n.0).collect();
        let next_id = self.nodes.keys().max().copied().unwrap_or(0) + 1;
        let step = if !learners.is_empty() && self.rng_nemesis.chance(70) {
            ConfChangeStep::PromoteLearner(NodeId(*self.rng_nemesis.pick(&learners)))
        } else if voters.len() > 3 && self.rng_nemesis.chance(60) {
            // Remove a voter; the leader itself a third of the time.
            let victim = if self.rng_nemesis.chance(33) {
                leader
            } else {
                *self.rng_nemesis.pick(&voters)
            };
            ConfChangeStep::Remove(NodeId(victim))
        } else if next_id <= params::NODES_MAX {
            ConfChangeStep::AddLearner(NodeId(next_id))
        } else {
            return;
        };
        let change = ConfChange::auto(vec![step]);
        let result = self
            .nodes
            .get_mut(&leader)
            .map(|n| n.raw().propose_conf_change(&change));
        self.trace_line(format!("NEMESIS n{leader} proposes {step:?}: {result:?}"));
        if let Some(Ok(_)) = result {
            self.stats.conf_changes += 1;
            if let ConfChangeStep::AddLearner(id) = step {
                self.add_node(id.0);
            }
        }
        self.drive(leader);
    }

    fn nemesis_transfer(&mut self) {
        let Some(leader) = self.current_leader() else {
            return;
        };
        let Some(status) = self
            .nodes
            .get(&leader)
            .and_then(|n| n.raw.as_ref())
            .map(|r| r.status())
        else {
            return;
        };
        let targets: Vec<u64> = status
            .membership
            .voters
            .iter()
            .map(|n| n.0)
            .filter(|v| *v != leader)
            .collect();
        if targets.is_empty() {
            return;
        }
        let to = *self.rng_nemesis.pick(&targets);
        let local = self.nodes.get(&leader).map(|n| n.local_now(self.now));
        let result = match (self.nodes.get_mut(&leader), local) {
            (Some(n), Some(local)) => Some(n.raw().transfer_leadership(NodeId(to), local)),
            _ => None,
        };
        self.trace_line(format!(
            "NEMESIS transfer leadership n{leader} -> n{to}: {result:?}"
        ));
        if let Some(Ok(())) = result {
            self.stats.transfers += 1;
        }
        self.drive(leader);
    }

    /// Faults stop: the network heals and loses nothing more, crashed members restart.
    pub(super) fn end_faults(&mut self) {
        self.network.heal();
        self.pinned = None;
        self.muted.clear();
        self.network.params.loss_ppm = 0;
        self.network.params.duplicate_ppm = 0;
        self.network.params.delay_long_ppm = 0;
        self.phase = Phase::Healing { since: self.now };
        // A pause never outlives the faults: the liveness bound counts from here, and a node
        // that still holds its inputs would look alive to its peers only in part.
        let paused: Vec<u64> = self
            .nodes
            .values()
            .filter(|n| n.paused_until > self.now)
            .map(|n| n.id)
            .chain(self.paused_inputs.keys().copied())
            .collect::<std::collections::BTreeSet<u64>>()
            .into_iter()
            .collect();
        self.stats.pauses_cut_by_faults_end += paused.len() as u64;
        for id in paused {
            self.resume(id);
        }
        for n in self.nodes.values_mut() {
            n.paused_until = 0;
        }
        self.heal_floor = self
            .nodes
            .values()
            .map(|n| n.log.last_index())
            .max()
            .unwrap_or(0);
        self.schedule(self.now, Event::Probe);
        self.trace_line(
            "FAULTS END: network healed, paused nodes resume, crashed members restart".to_string(),
        );
        let dead: Vec<u64> = self
            .nodes
            .values()
            .filter(|n| n.member && !n.is_alive())
            .map(|n| n.id)
            .collect();
        for id in dead {
            self.start_node(id);
            self.drive(id);
        }
    }

    /// After the run: every acknowledged write is in the leader's log, and the history is
    /// linearizable.
    pub(super) fn final_checks(&mut self) -> Result<(), String> {
        let leader = self.current_leader().ok_or(format!(
            "no leader at the end of the run (none elected within {} ticks after the drain \
             ended){}",
            self.params.liveness_bound_nanos / params::TICK_NANOS,
            self.describe_nodes()
        ))?;
        let node = &self.nodes[&leader];
        for w in &self.acked {
            let held = w.index <= node.log.snapshot_index
                || node
                    .log
                    .entry(w.index)
                    .is_some_and(|e| e.term == w.term && e.digest == w.digest);
            if !held {
                return Err(format!(
                    "acknowledged write k{}={} (index {} term {}) missing from the final leader n{leader}'s log",
                    w.key, w.value, w.index, w.term
                ));
            }
        }
        let ops = self.history.operations();
        self.stats.unknown = ops.iter().filter(|o| o.completion.is_none()).count() as u64;
        match check_history(&ops) {
            CheckResult::Linearizable => Ok(()),
            CheckResult::NotLinearizable(v) => Err(format!("client history not linearizable: {v}")),
            CheckResult::Undecided { key } => Err(format!(
                "linearizability check of key {key} exceeded its search budget (history too \
                 concurrent: lower the seed's unknown-outcome rate)"
            )),
        }
    }
}
