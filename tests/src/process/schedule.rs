//! Randomized fault schedules for the `soak` command: from one seed, a cluster size, maybe a
//! node with a skewed clock, and a sequence of faults (kill, pause, partition, one-way cut, power cut, transfer), each held
//! for a seeded time, healed, and followed by a check that the cluster makes progress again.
//! The schedule's choices replay from the seed; the processes' timing does not (real
//! processes), so a failing run keeps its history and node logs ([`super::run::Run::keep`]).

use std::time::{Duration, Instant};

use crate::rng::Rng;

use super::client::Client;
use super::power_cut::power_cut;
use super::run::{self, Run, RunError};

/// Fewest milliseconds a fault is held: about the election timeout (100-200 ms).
const HOLD_MS_MIN: u64 = 150;
/// Most milliseconds a fault is held: many election timeouts.
const HOLD_MS_MAX: u64 = 2000;
/// Operations acknowledged after each healed fault: proof that the cluster serves again.
const OPS_AFTER_HEAL: u64 = 20;

/// One fault of a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the leader, restart it after the hold.
    KillLeader,
    /// SIGKILL a follower, restart it after the hold.
    KillFollower,
    /// SIGKILL the leader and a follower (a majority of 3), restart both after the hold.
    KillMajority,
    /// SIGSTOP the leader, SIGCONT after the hold (a stale leader wakes up).
    PauseLeader,
    /// SIGSTOP a follower, SIGCONT after the hold.
    PauseFollower,
    /// Cut the leader off from every peer.
    IsolateLeader,
    /// Cut the leader's outbound links only.
    OneWayFromLeader,
    /// A random minority (with or without the leader) against the rest.
    Partition,
    /// SIGKILL a follower and drop the unsynced pages of its last WAL write.
    PowerCutFollower,
    /// Transfer leadership to a follower.
    Transfer,
}

impl Fault {
    /// Every fault (drawn with equal weight).
    pub const ALL: [Fault; 10] = [
        Fault::KillLeader,
        Fault::KillFollower,
        Fault::KillMajority,
        Fault::PauseLeader,
        Fault::PauseFollower,
        Fault::IsolateLeader,
        Fault::OneWayFromLeader,
        Fault::Partition,
        Fault::PowerCutFollower,
        Fault::Transfer,
    ];

    /// A fault drawn from `rng`.
    pub fn draw(rng: &mut Rng) -> Fault {
        *rng.pick(&Fault::ALL)
    }
}

/// Clock rates a skewed node runs at, in thousandths: 0.995 to 1.005, so that any two
/// clocks differ by at most 0.5 %, within the default 1 % drift bound that lease reads
/// assume (beyond it a stale lease read is allowed; `process_faults.rs` shows that case).
const SKEW_PERMILLE: (u64, u64) = (995, 1005);

/// The seeded choices of one run: its cluster size, a node with a skewed clock, and the seed
/// of its fault stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    /// The run's seed.
    pub seed: u64,
    /// 3 nodes usually, 5 one time in four.
    pub nodes: u64,
    /// One time in three, a node whose clocks run at this rate (through libfaketime; the
    /// run goes without it when libfaketime is not installed).
    pub skew: Option<(u64, f64)>,
}

impl Plan {
    /// The plan of `seed`.
    pub fn new(seed: u64) -> Plan {
        let mut rng = Rng::new(seed);
        let nodes = if rng.chance(25) { 5 } else { 3 };
        let skew = rng.chance(33).then(|| {
            let permille = rng.range(SKEW_PERMILLE.0, SKEW_PERMILLE.1);
            (rng.range(1, nodes), permille as f64 / 1000.0)
        });
        Plan { seed, nodes, skew }
    }
}

/// What a schedule did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Done {
    /// Faults applied.
    pub faults: u64,
    /// Longest time from a fault's undoing (processes restarted or resumed, links healed) to
    /// the next acknowledged write. Reported, never asserted (tests do not assert on speed);
    /// the bound is twice the maximum election timeout plus 1 s, 1.4 s by default.
    pub heal_to_write_max: Duration,
    /// Faults after which the next write took longer than [`run::heal_to_write_bound`].
    pub heals_over_bound: u64,
}

/// Applies faults drawn from `rng` to `run` until `fault_time` has passed (at least one),
/// each held for a seeded time, healed, and followed by `OPS_AFTER_HEAL` acknowledged
/// operations. Every step is appended to `log` (the run's notes when it fails).
///
/// # Errors
/// The first step whose leader, restart or progress fails.
pub fn run_faults(
    run: &mut Run,
    rng: &mut Rng,
    fault_time: Duration,
    log: &mut Vec<String>,
) -> Result<Done, RunError> {
    let end = Instant::now() + fault_time;
    let mut done = Done::default();
    while done.faults == 0 || Instant::now() < end {
        let fault = Fault::draw(rng);
        let hold = Duration::from_millis(rng.range(HOLD_MS_MIN, HOLD_MS_MAX));
        let what = apply(run, rng, fault, hold)?;
        let to_write = run.wait_next_write(&format!("after {fault:?}"))?;
        done.heal_to_write_max = done.heal_to_write_max.max(to_write);
        if to_write > run::heal_to_write_bound() {
            done.heals_over_bound += 1;
        }
        let line = format!(
            "{:>6} ms: {fault:?} held {} ms, next write {} ms later: {what}",
            run.elapsed().as_millis(),
            hold.as_millis(),
            to_write.as_millis()
        );
        run.say(&line);
        log.push(line);
        run.wait_leader(&[])?;
        run.wait_ops(OPS_AFTER_HEAL, &format!("after {fault:?}"))?;
        run.cluster
            .check_processes()
            .map_err(|e| run.error(format!("after {fault:?}: {e}")))?;
        done.faults += 1;
    }
    Ok(done)
}

fn restart(run: &mut Run, id: u64) -> Result<(), RunError> {
    run.cluster
        .node_mut(id)
        .proc
        .restart()
        .map_err(|e| run.error(format!("restart {id}: {e}")))
}

fn kill(run: &mut Run, id: u64) -> Result<(), RunError> {
    run.cluster
        .node_mut(id)
        .proc
        .kill()
        .map(|_| ())
        .map_err(|e| run.error(format!("kill {id}: {e}")))
}

fn pause(run: &mut Run, id: u64, hold: Duration) -> Result<(), RunError> {
    let stopped = run.cluster.node_mut(id).proc.stop();
    stopped.map_err(|e| run.error(format!("stop {id}: {e}")))?;
    std::thread::sleep(hold);
    let resumed = run.cluster.node_mut(id).proc.cont();
    resumed.map_err(|e| run.error(format!("cont {id}: {e}")))
}

/// Applies one fault and undoes it; returns what it did.
fn apply(run: &mut Run, rng: &mut Rng, fault: Fault, hold: Duration) -> Result<String, RunError> {
    let leader = run.leader()?;
    let others: Vec<u64> = run
        .cluster
        .ids()
        .into_iter()
        .filter(|&i| i != leader)
        .collect();
    let f = *rng.pick(&others);
    match fault {
        Fault::KillLeader | Fault::KillFollower => {
            let id = if fault == Fault::KillLeader {
                leader
            } else {
                f
            };
            kill(run, id)?;
            std::thread::sleep(hold);
            restart(run, id)?;
            Ok(format!("node {id}"))
        }
        Fault::KillMajority => {
            let mut ids = vec![leader];
            ids.extend(
                others
                    .iter()
                    .copied()
                    .filter(|&o| o != f)
                    .take(others.len() / 2 - 1),
            );
            ids.push(f);
            for &id in &ids {
                kill(run, id)?;
            }
            std::thread::sleep(hold);
            for &id in &ids {
                restart(run, id)?;
            }
            Ok(format!("nodes {ids:?}"))
        }
        Fault::PauseLeader | Fault::PauseFollower => {
            let id = if fault == Fault::PauseLeader {
                leader
            } else {
                f
            };
            pause(run, id, hold)?;
            Ok(format!("node {id}"))
        }
        Fault::IsolateLeader | Fault::OneWayFromLeader | Fault::Partition => {
            let what = cut(run, rng, fault, leader, &others);
            std::thread::sleep(hold);
            run.cluster.heal();
            Ok(what)
        }
        Fault::PowerCutFollower => power_cut_follower(run, rng, leader, f, hold),
        Fault::Transfer => {
            let mut c = Client::new(run.cluster.node(leader).client, Duration::from_secs(5));
            let reply = c
                .call(&["RAFT.TRANSFER", &f.to_string()])
                .map_or_else(|e| format!("client error: {e}"), |r| r.display());
            Ok(format!("{leader} -> {f}: {reply}"))
        }
    }
}

fn cut(run: &Run, rng: &mut Rng, fault: Fault, leader: u64, others: &[u64]) -> String {
    match fault {
        Fault::IsolateLeader => {
            run.cluster.isolate(leader);
            format!("leader {leader} isolated")
        }
        Fault::OneWayFromLeader => {
            for &o in others {
                run.cluster.cut(leader, o);
            }
            format!("links out of leader {leader} cut")
        }
        _ => {
            let mut ids = run.cluster.ids();
            rng.shuffle(&mut ids);
            let minority = ids.len() / 2;
            let (a, b) = ids.split_at(minority);
            run.cluster.partition(a, b);
            format!("{a:?} | {b:?}")
        }
    }
}

fn power_cut_follower(
    run: &mut Run,
    rng: &mut Rng,
    leader: u64,
    f: u64,
    hold: Duration,
) -> Result<String, RunError> {
    kill(run, f)?;
    let acked = run
        .cluster
        .follower_match(leader, f)
        .ok_or_else(|| run.error(format!("leader {leader} reports no match of {f}")))?;
    let wal = run.cluster.node(f).data_dir.join("wal");
    let (_, what) = power_cut(&wal, acked, rng);
    std::thread::sleep(hold);
    restart(run, f)?;
    Ok(format!("node {f}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_replay_from_the_seed_and_use_both_sizes() {
        let plans: Vec<Plan> = (0..200).map(Plan::new).collect();
        assert_eq!(plans, (0..200).map(Plan::new).collect::<Vec<_>>());
        assert!(plans.iter().any(|p| p.nodes == 3) && plans.iter().any(|p| p.nodes == 5));
        assert!(plans.iter().any(|p| p.skew.is_some()) && plans.iter().any(|p| p.skew.is_none()));
        for (node, rate) in plans.iter().filter_map(|p| p.skew) {
            assert!((1..=5).contains(&node) && (0.995..=1.005).contains(&rate));
        }
    }

    #[test]
    fn every_fault_is_drawn() {
        let mut rng = Rng::new(7);
        let drawn: std::collections::BTreeSet<String> = (0..500)
            .map(|_| format!("{:?}", Fault::draw(&mut rng)))
            .collect();
        assert_eq!(drawn.len(), Fault::ALL.len());
    }
}
