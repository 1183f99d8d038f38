//! Membership changes and leadership transfers under faults, against real `ringraft serve`
//! processes (issue 10): the leader killed while a joint configuration is uncommitted, and a
//! transfer to a node that is paused (SIGSTOP) around it. The checks of every run are those
//! of `process_faults.rs` (`ringraft_tests::process::run`), plus every node that is still a
//! member agreeing on one configuration that is no longer joint. `RINGRAFT_FAULT_SEED=n`
//! changes the seeded choices.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ringraft_tests::process::client::Client;
use ringraft_tests::process::run::{self, or_fail, Run, RunOptions};
use ringraft_tests::rng::Rng;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn seed() -> u64 {
    std::env::var("RINGRAFT_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

fn field(run: &Run, id: u64, name: &str) -> Option<String> {
    run.cluster
        .info(id, Duration::from_secs(2))
        .and_then(|i| i.get(name).cloned())
}

/// Sends `args` to node `id` from a thread (a membership change or a transfer blocks until it
/// completes); the reply, or the client error, as text.
fn call_async(run: &Run, id: u64, args: Vec<String>) -> std::thread::JoinHandle<String> {
    let addr = run.cluster.node(id).client;
    std::thread::spawn(move || {
        let mut c = Client::new(addr, Duration::from_secs(5));
        match c.call(&args) {
            Ok(r) => r.display(),
            Err(e) => format!("client error: {e}"),
        }
    })
}

/// Waits until every node of `ids` reports the same voters and no outgoing (joint) voters;
/// returns the voters.
fn wait_one_config(run: &Run, ids: &[u64]) -> String {
    let deadline = Instant::now() + run.opts.wait_max;
    loop {
        let configs: Vec<(Option<String>, Option<String>)> = ids
            .iter()
            .map(|&id| {
                (
                    field(run, id, "raft_voters"),
                    field(run, id, "raft_voters_outgoing"),
                )
            })
            .collect();
        let first = &configs[0];
        let settled = first.0.is_some()
            && configs
                .iter()
                .all(|c| c == first && c.1.as_deref() == Some(""));
        if settled {
            return first.0.clone().expect("checked above");
        }
        assert!(
            Instant::now() < deadline,
            "{} (seed {}): configurations never settled: {configs:?} (nodes {ids:?})",
            run.opts.name,
            run.opts.seed
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Five nodes; the leader's links to two followers are cut, so the joint configuration that
/// removes a third follower appends but cannot commit (the new configuration has no majority
/// without them); the leader is SIGKILLed while its configuration is joint, the links heal.
/// The new leader either holds the joint entry and must finish the change, or does not and
/// the removal never happened; either way every member ends in one non-joint configuration
/// and nothing acknowledged is lost.
#[test]
fn sigkill_leader_during_a_joint_configuration() {
    let _s = serial();
    let name = "joint_sigkill";
    let Some(mut run) = or_fail(run::start(RunOptions::new(name, 5, seed()), |_| Ok(()))) else {
        return;
    };
    let leader = or_fail(run.leader());
    let mut others: Vec<u64> = run
        .cluster
        .ids()
        .into_iter()
        .filter(|&i| i != leader)
        .collect();
    Rng::new(seed()).shuffle(&mut others);
    let (removed, cut) = (others[0], [others[1], others[2]]);
    for &c in &cut {
        run.cluster.cut(leader, c);
    }
    let remove = call_async(
        &run,
        leader,
        vec!["RAFT.REMOVE".into(), removed.to_string()],
    );
    let deadline = Instant::now() + run.opts.wait_max;
    while field(&run, leader, "raft_voters_outgoing")
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "{name} (seed {}): leader {leader} never entered the joint configuration",
            run.opts.seed
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    run.say(&format!(
        "leader {leader} joint (removing {removed}, links to {cut:?} cut): voters {:?} outgoing {:?}",
        field(&run, leader, "raft_voters"),
        field(&run, leader, "raft_voters_outgoing")
    ));
    run.cluster.node_mut(leader).proc.kill().expect("kill");
    run.cluster.heal();
    run.say(&format!(
        "RAFT.REMOVE {removed}: {}",
        remove.join().expect("thread")
    ));
    or_fail(run.new_leader(leader));
    run.cluster
        .node_mut(leader)
        .proc
        .restart()
        .expect("restart");
    let all = run.cluster.ids();
    let members: Vec<u64> = all.iter().copied().filter(|&i| i != removed).collect();
    let voters = wait_one_config(&run, &members);
    let down: Vec<u64> = if voters.split(',').any(|v| v == removed.to_string()) {
        run.say(&format!(
            "the removal was lost with the old leader: voters {voters}"
        ));
        vec![]
    } else {
        run.say(&format!(
            "the new leader finished the removal: voters {voters}"
        ));
        vec![removed]
    };
    or_fail(run.finish(&down));
}

/// A transfer to a follower that is SIGSTOPped a seeded 0-4 ms after the request was sent
/// (before or after it got the leader's TimeoutNow): the transfer completes or is
/// abandoned, the cluster serves while the target is paused, and when it wakes (possibly
/// campaigning at a higher term) nothing breaks: no stale read, nothing lost.
#[test]
fn transfer_to_a_node_that_gets_sigstopped() {
    let _s = serial();
    let name = "transfer_sigstop";
    let Some(mut run) = or_fail(run::start(RunOptions::new(name, 3, seed()), |_| Ok(()))) else {
        return;
    };
    let leader = or_fail(run.leader());
    let target = run.follower(leader);
    let delay = Duration::from_millis(Rng::new(seed()).below(5));
    let transfer = call_async(
        &run,
        leader,
        vec!["RAFT.TRANSFER".into(), target.to_string()],
    );
    std::thread::sleep(delay);
    run.cluster.node_mut(target).proc.stop().expect("stop");
    let reply = transfer.join().expect("thread");
    run.say(&format!(
        "RAFT.TRANSFER {target} (stopped after {delay:?}): {reply}"
    ));
    let (now, term) = or_fail(run.wait_leader(&[target]));
    run.say(&format!(
        "leader {now} in term {term} while {target} is paused"
    ));
    or_fail(run.wait_ops(100, "while the transfer target is paused"));
    run.cluster.node_mut(target).proc.cont().expect("cont");
    or_fail(run.wait_ops(100, "after the transfer target woke"));
    or_fail(run.finish(&[]));
}
