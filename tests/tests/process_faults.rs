//! Fault runs against real `ringraft serve` processes (issue 10, DESIGN.md testing layer 5).
//!
//! Each run starts a cluster on loopback with a proxy on every peer link, drives it with
//! concurrent recorded clients, waits until enough operations were acknowledged, injects one
//! fault, heals, reads every key back through the leader, and checks: the history (final
//! reads included) is linearizable; no acknowledged write is lost; the replicas converge (same
//! commit and applied index, the same value for every key on every node, WALs that agree on
//! every committed index); no process died by a signal it was not sent or panicked; the fault
//! happened (the leader changed, the partition dropped traffic). Runs are serialized (one
//! cluster at a time on the 2-core machine) and bounded: each stops its clients after at most
//! `run::RUN_MAX_DEFAULT`. A run whose tool (the binary, root, libfaketime) is missing prints a SKIPPED
//! line. `RINGRAFT_FAULT_SEED=n` changes the seeded choices (keys, mix, which follower).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ringraft_tests::process::checks;
use ringraft_tests::process::cluster::ClusterSpec;
use ringraft_tests::process::run::{self, or_fail, Run, RunOptions};
use ringraft_tests::process::tools;

/// Longer than the election timeout (100-200 ms by default) many times over.
const PAUSE: Duration = Duration::from_millis(1500);

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

/// Starts a run with the seed of `RINGRAFT_FAULT_SEED`, or `None` when it is skipped.
fn start(name: &str, nodes: u64, adjust: impl FnOnce(&mut ClusterSpec)) -> Option<Run> {
    or_fail(run::start(RunOptions::new(name, nodes, seed()), |spec| {
        adjust(spec);
        Ok(())
    }))
}

#[test]
fn sigkill_leader_then_restart() {
    let _s = serial();
    let Some(mut run) = start("sigkill_leader", 3, |_| {}) else {
        return;
    };
    let leader = or_fail(run.leader());
    run.cluster.node_mut(leader).proc.kill().expect("kill");
    or_fail(run.new_leader(leader));
    or_fail(run.wait_ops(50, "without the old leader"));
    run.cluster
        .node_mut(leader)
        .proc
        .restart()
        .expect("restart");
    or_fail(run.finish(&[]));
}

#[test]
fn sigkill_follower_then_restart() {
    let _s = serial();
    let Some(mut run) = start("sigkill_follower", 3, |_| {}) else {
        return;
    };
    let leader = or_fail(run.leader());
    let f = run.follower(leader);
    run.cluster.node_mut(f).proc.kill().expect("kill");
    or_fail(run.wait_ops(100, "with a follower down"));
    run.cluster.node_mut(f).proc.restart().expect("restart");
    or_fail(run.finish(&[]));
}

#[test]
fn sigkill_majority_then_restart() {
    let _s = serial();
    let Some(mut run) = start("sigkill_majority", 3, |_| {}) else {
        return;
    };
    let leader = or_fail(run.leader());
    let f = run.follower(leader);
    run.cluster.node_mut(leader).proc.kill().expect("kill");
    run.cluster.node_mut(f).proc.kill().expect("kill");
    // No quorum: writes cannot commit; they stay unknown.
    run.during(Duration::from_millis(500));
    run.cluster
        .node_mut(leader)
        .proc
        .restart()
        .expect("restart");
    run.cluster.node_mut(f).proc.restart().expect("restart");
    or_fail(run.finish(&[]));
}

#[test]
fn sigstop_leader_past_the_election_timeout() {
    let _s = serial();
    let Some(mut run) = start("sigstop_leader", 3, |_| {}) else {
        return;
    };
    let leader = or_fail(run.leader());
    run.cluster.node_mut(leader).proc.stop().expect("stop");
    or_fail(run.new_leader(leader));
    run.during(PAUSE);
    // The old leader wakes up believing it leads: clients still send it reads and writes,
    // and the history shows whether it served a stale read.
    run.cluster.node_mut(leader).proc.cont().expect("cont");
    or_fail(run.wait_ops(100, "after the old leader woke"));
    or_fail(run.finish(&[]));
}

#[test]
fn partition_isolates_the_leader() {
    let _s = serial();
    let Some(mut run) = start("isolate_leader", 3, |_| {}) else {
        return;
    };
    let leader = or_fail(run.leader());
    run.cluster.isolate(leader);
    or_fail(run.new_leader(leader));
    or_fail(run.wait_ops(100, "with the old leader isolated"));
    assert!(
        run.cluster.dropped_bytes() > 0,
        "the partition dropped no traffic"
    );
    or_fail(run.finish(&[]));
}

#[test]
fn partition_bridge_of_five() {
    let _s = serial();
    let Some(mut run) = start("bridge", 5, |_| {}) else {
        return;
    };
    let leader = or_fail(run.leader());
    // {leader, a} | bridge b | {c, d}: only b talks to both sides.
    let others: Vec<u64> = run
        .cluster
        .ids()
        .into_iter()
        .filter(|&i| i != leader)
        .collect();
    let (a, b, cd) = (others[0], others[1], [others[2], others[3]]);
    run.cluster.partition(&[leader, a], &cd);
    run.during(PAUSE);
    or_fail(run.wait_ops(100, "with a bridge partition"));
    assert!(
        run.cluster.dropped_bytes() > 0,
        "the partition dropped no traffic"
    );
    println!("bridge: {leader},{a} | {b} | {},{}", cd[0], cd[1]);
    or_fail(run.finish(&[]));
}

#[test]
fn one_way_partition_from_the_leader() {
    let _s = serial();
    let Some(mut run) = start("one_way", 3, |_| {}) else {
        return;
    };
    let leader = or_fail(run.leader());
    // The leader's messages are lost; it still hears the followers.
    for f in run.cluster.ids().into_iter().filter(|&i| i != leader) {
        run.cluster.cut(leader, f);
    }
    or_fail(run.new_leader(leader));
    or_fail(run.wait_ops(100, "with the leader's outbound links cut"));
    or_fail(run.finish(&[]));
}

fn skewed_clock(name: &'static str, rate: f64, read_mode: &'static str, must_hold: bool) {
    let _s = serial();
    let Some(lib) = tools::libfaketime() else {
        tools::skip(name, "libfaketime is not installed (Debian faketime)");
        return;
    };
    let Some(mut run) = start(name, 3, |spec| {
        spec.read_mode = read_mode;
        // Node 1 usually wins the first election (it starts first); the skewed clock is its.
        spec.env.insert(1, tools::clock_rate_env(&lib, rate));
    }) else {
        return;
    };
    let leader = or_fail(run.leader());
    run.cluster.isolate(leader);
    or_fail(run.new_leader(leader));
    or_fail(run.wait_ops(100, "with the skewed leader isolated"));
    if must_hold {
        or_fail(run.finish(&[]));
        return;
    }
    // Beyond the drift bound a lease read on the old leader may be stale: report, not assert.
    run.cluster.heal();
    let history = run.recorder.history();
    match checks::linearizable(&history) {
        Ok(()) => println!("{name}: rate {rate}: no stale lease read observed"),
        Err(e) => {
            println!("{name}: rate {rate}: stale lease read (expected beyond the bound):\n{e}")
        }
    }
}

#[test]
fn clock_skew_within_the_drift_bound_lease_reads() {
    // The default bound is 10,000 ppm: 0.5 % slower is within it.
    skewed_clock("skew_within_lease", 0.995, "lease", true);
}

#[test]
fn clock_skew_beyond_the_drift_bound_readindex_stays_linearizable() {
    // Half speed: the old leader's lease lasts twice as long in real time. ReadIndex reads
    // confirm leadership with a quorum round and do not depend on clocks.
    skewed_clock("skew_beyond_readindex", 0.5, "readindex", true);
}

#[test]
fn clock_skew_beyond_the_drift_bound_lease_reads_are_reported() {
    skewed_clock("skew_beyond_lease", 0.5, "lease", false);
}

/// A bit flipped in a committed WAL record of a stopped node: the node refuses to start with
/// the typed corruption error (in its log and a non-zero exit); the cluster goes on without it
/// and loses nothing.
#[test]
fn bit_flip_in_a_committed_wal_record_is_refused_at_start() {
    let _s = serial();
    let Some(mut run) = start("bit_flip", 3, |_| {}) else {
        return;
    };
    let leader = or_fail(run.leader());
    let f = run.follower(leader);
    let (_, clean) = run
        .cluster
        .node_mut(f)
        .proc
        .terminate(Duration::from_secs(10))
        .expect("terminate");
    assert!(clean, "bit_flip: node {f} did not stop cleanly");
    let wal = run.cluster.node(f).data_dir.join("wal");
    let flipped = flip_a_committed_entry_bit(&wal);
    println!("bit_flip: node {f}: flipped a bit at {flipped}");
    run.cluster.node_mut(f).proc.restart().expect("restart");
    let status = run
        .cluster
        .node_mut(f)
        .proc
        .wait_exit(run.opts.wait_max)
        .expect("wait")
        .unwrap_or_else(|| panic!("bit_flip: node {f} started on a corrupt WAL"));
    assert!(!status.success(), "bit_flip: node {f} exited 0");
    let log = run.cluster.node(f).proc.log_tail(8192).to_lowercase();
    assert!(
        log.contains("corruption"),
        "bit_flip: no corruption error in the log:\n{log}"
    );
    assert!(
        !run.cluster.node(f).proc.panicked(),
        "bit_flip: the refusal is a panic"
    );
    or_fail(run.wait_ops(100, "with the corrupt node down"));
    or_fail(run.finish(&[f]));
}

/// Flips one payload bit of an entry frame that later frames follow (so recovery can prove
/// it was synced) in the oldest segment of `wal`; returns where.
fn flip_a_committed_entry_bit(wal: &Path) -> String {
    use ringraft_wal::layout::{FRAME_HEADER_LEN, HEADER_LEN};
    let mut segs: Vec<_> = std::fs::read_dir(wal)
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    let path = segs.first().expect("a segment");
    let mut b = std::fs::read(path).expect("read segment");
    // Walk the frames by their length fields; pick an entry (kind 1) with data and at least
    // two frames after it.
    let mut frames = Vec::new();
    let mut off = HEADER_LEN;
    while off + FRAME_HEADER_LEN <= b.len() {
        let len = u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes")) as usize;
        if b[off..off + FRAME_HEADER_LEN].iter().all(|&x| x == 0) {
            break;
        }
        frames.push((off, len, b[off + 24]));
        off += (FRAME_HEADER_LEN + len + 7) & !7;
    }
    let (at, len, _) = frames
        .iter()
        .rev()
        .skip(2)
        .find(|&&(_, len, kind)| kind == 1 && len > 0)
        .copied()
        .expect("an entry followed by two frames");
    let byte = at + FRAME_HEADER_LEN + len / 2;
    b[byte] ^= 0x10;
    std::fs::write(path, &b).expect("write segment");
    format!("{} byte {byte}", path.display())
}
