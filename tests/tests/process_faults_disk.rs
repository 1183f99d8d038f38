//! Disk faults against real `ringraft serve` processes (issue 10): a full disk, and a power cut
//! that loses what no fdatasync covered. The checks of every run are those of
//! `process_faults.rs` (`ringraft_tests::process::run`): a linearizable history, no
//! acknowledged write lost, replicas that converge and WALs that agree, no process that died
//! by itself or panicked. `RINGRAFT_FAULT_SEED=n` changes the seeded choices (the keys and
//! mix, which follower, which pages a power cut loses).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ringraft_tests::process::client::Client;
use ringraft_tests::process::power_cut::power_cut;
use ringraft_tests::process::run::{self, or_fail, Run, RunOptions};
use ringraft_tests::process::tools::{self, TmpfsMount};
use ringraft_tests::rng::Rng;

/// Room left on the tmpfs above what a started node uses: less than one 64 MiB WAL segment
/// (the node's default), so the next segment the WAL prepares does not fit.
const HEADROOM_BYTES: u64 = 8 << 20;
/// The tmpfs size before the disk is filled and after space is freed.
const ROOMY_BYTES: u64 = 512 << 20;
/// Value size of the writes that fill the disk, each to a key of its own outside the checked
/// registers: the state machine grows, so snapshots grow too and compacting the log cannot
/// free the disk (overwriting a few keys fills nothing: each snapshot recycles segments).
const FILL_VALUE_BYTES: usize = 256 << 10;
/// Acknowledged filling writes at most: 256 MiB, room for the current segment, a spare and
/// the next.
const FILL_WRITES_MAX: u64 = 1024;

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

/// Writes that may fail before the filler gives up: elections under the big writes of a
/// loaded machine make some fail, which must not end the filling early.
const FILL_ATTEMPTS_MAX: u64 = 4 * FILL_WRITES_MAX;

/// What the filler did.
#[derive(Debug, Default)]
struct Filled {
    acked: u64,
    failed: u64,
    last_error: Option<String>,
}

/// Writes big values to `targets` (the next one after a failure) until `done` is set,
/// `FILL_WRITES_MAX` are acknowledged or `FILL_ATTEMPTS_MAX` were tried.
fn fill(targets: &[std::net::SocketAddr], done: &AtomicBool) -> Filled {
    let value = "x".repeat(FILL_VALUE_BYTES);
    let mut t = 0;
    let mut c = Client::new(targets[t], Duration::from_secs(5));
    let mut f = Filled::default();
    for i in 0..FILL_ATTEMPTS_MAX {
        if done.load(Ordering::SeqCst) || f.acked >= FILL_WRITES_MAX {
            break;
        }
        match c.set(&format!("fill{i}"), &value) {
            Ok(Ok(())) => f.acked += 1,
            other => {
                f.failed += 1;
                f.last_error = Some(format!("{other:?}"));
                t = (t + 1) % targets.len();
                c = Client::new(targets[t], Duration::from_secs(5));
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    f
}

/// Makes `want` the leader (a leadership transfer) if it is not already.
fn lead_with(run: &Run, want: u64) {
    let leader = or_fail(run.leader());
    if leader == want {
        return;
    }
    let mut c = Client::new(run.cluster.node(leader).client, Duration::from_secs(5));
    let reply = c.call(&["RAFT.TRANSFER", &want.to_string()]);
    run.say(&format!("transfer {leader} -> {want}: {reply:?}"));
    let deadline = Instant::now() + run.opts.wait_max;
    while or_fail(run.leader()) != want {
        assert!(
            Instant::now() < deadline,
            "{}: {want} never led",
            run.opts.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A node whose data directory is on a small tmpfs fills it under writes: it must stop with a
/// clear error to its clients (never a panic, never an acknowledged write it loses), the rest
/// of the cluster goes on, and once space is freed and the node restarted it catches up.
fn full_disk(name: &str, on_leader: bool) {
    let _s = serial();
    if !tools::is_root() {
        tools::skip(name, "not root: cannot mount a tmpfs");
        return;
    }
    let mnt_dir = tempfile::tempdir().expect("tempdir");
    let mount = match TmpfsMount::mount(mnt_dir.path(), ROOMY_BYTES) {
        Ok(m) => m,
        Err(e) => {
            tools::skip(name, &format!("mount tmpfs: {e}"));
            return;
        }
    };
    // Node 1 for the leader case (it usually wins the first election anyway), 3 otherwise.
    let full = if on_leader { 1 } else { 3 };
    let opts = RunOptions::new(name, 3, seed());
    let Some(mut run) = or_fail(run::start(opts, |spec| {
        spec.data_dirs
            .insert(full, mount.dir().join(format!("n{full}")));
        Ok(())
    })) else {
        return;
    };
    if on_leader {
        lead_with(&run, full);
    } else if or_fail(run.leader()) == full {
        lead_with(&run, 1);
    }
    let used = mount.used_bytes().expect("statvfs");
    mount
        .resize(used + HEADROOM_BYTES)
        .expect("shrink the tmpfs");
    run.say(&format!(
        "node {full}: tmpfs shrunk to {} MiB",
        (used + HEADROOM_BYTES) >> 20
    ));
    let (status, log) = fill_until_exit(&mut run, full);
    run.say(&format!(
        "node {full} exited ({status}); its last error: {}",
        last_error(&log)
    ));
    // A failed WAL write is never retried (DESIGN.md): the process exits with status 1 and
    // a log line naming the cause, so that a supervisor restarts it once there is room.
    assert_eq!(
        status.code(),
        Some(1),
        "{name}: node {full} did not exit with status 1 after its disk filled:\n{log}"
    );
    // The exit line must name the first failure (an append refused for want of a segment),
    // not a symptom of it (the next append, refused as non-consecutive once the WAL rolled
    // its end back: seen in 2 of 9 runs of `full_disk_on_the_leader` before the runtime reported the earlier failure).
    let exit_line = last_error(&log);
    assert!(
        exit_line.contains("stopped on a fatal error") && exit_line.contains("No space"),
        "{name}: the full node's exit line does not say the disk is full: {exit_line}\n{log}"
    );
    assert!(
        !run.cluster.node(full).proc.panicked(),
        "{name}: node {full} panicked:\n{log}"
    );
    if on_leader {
        or_fail(run.new_leader(full));
    }
    or_fail(run.wait_ops(100, "with a full disk on one node"));
    mount.resize(ROOMY_BYTES).expect("grow the tmpfs");
    run.cluster.node_mut(full).proc.restart().expect("restart");
    or_fail(run.finish(&[]));
    drop(run);
    drop(mount);
}

/// The line the process exits with (`ringraft: error: ...`), or `(none)`.
fn last_error(log: &str) -> &str {
    log.lines()
        .rev()
        .find(|l| l.starts_with("ringraft: error:"))
        .unwrap_or("(none)")
}

/// Fills the disk through the leader until node `full` exits by itself; returns how it
/// ended and the tail of its log.
fn fill_until_exit(run: &mut Run, full: u64) -> (std::process::ExitStatus, String) {
    let done = Arc::new(AtomicBool::new(false));
    // The leader first, then the others: a follower forwards to the leader.
    let leader = or_fail(run.leader());
    let first = run.cluster.node(leader).client;
    let mut targets = vec![first];
    targets.extend(
        run.cluster
            .client_addrs()
            .into_iter()
            .filter(|&a| a != first),
    );
    let filler = {
        let done = done.clone();
        std::thread::spawn(move || fill(&targets, &done))
    };
    let mut status = None;
    while status.is_none() && !filler.is_finished() {
        status = run
            .cluster
            .node_mut(full)
            .proc
            .wait_exit(Duration::from_millis(100))
            .expect("wait for the full node");
    }
    done.store(true, Ordering::SeqCst);
    let filled = filler.join().expect("filler thread");
    run.say(&format!(
        "{} writes of {} KiB acknowledged, {} failed",
        filled.acked,
        FILL_VALUE_BYTES >> 10,
        filled.failed
    ));
    // Bounded: the node had stopped when the filler gave up, or it never will.
    let status = status.or_else(|| {
        run.cluster
            .node_mut(full)
            .proc
            .wait_exit(run.opts.wait_max)
            .expect("wait for the full node")
    });
    let log = run.cluster.node(full).proc.log_tail(4096);
    match status {
        Some(s) => (s, log),
        None => panic!(
            "{} (seed {}): node {full} still runs after {filled:?}; its log:\n{log}",
            run.opts.name, run.opts.seed
        ),
    }
}

#[test]
fn full_disk_on_a_follower() {
    full_disk("full_disk_follower", false);
}

#[test]
fn full_disk_on_the_leader() {
    full_disk("full_disk_leader", true);
}

/// A power cut of both followers under load, and the leader killed right after: each
/// follower loses what no fdatasync can have covered (`process::power_cut`), bounded below by
/// what the leader saw it acknowledge (read from the leader after the followers died, so it
/// is final). Every committed entry is durable on a majority counting those
/// acknowledgements, so after all three restart nothing acknowledged may be missing.
///
/// What this proves and what not: the WAL's recovery cuts a torn tail (any subset of the
/// last write's pages, the first always lost) without operator action and the node rejoins,
/// and the cluster's acknowledgements never ran ahead of its followers' fdatasyncs. It does
/// not prove that the kernel and the disk honour fdatasync (the leader is killed, not cut:
/// its own durable point is not observable from outside without a race).
#[test]
fn power_cut_of_the_followers_loses_only_unsynced_writes() {
    let _s = serial();
    let name = "power_cut";
    let Some(mut run) = or_fail(run::start(RunOptions::new(name, 3, seed()), |_| Ok(()))) else {
        return;
    };
    let leader = or_fail(run.leader());
    let followers: Vec<u64> = run
        .cluster
        .ids()
        .into_iter()
        .filter(|&i| i != leader)
        .collect();
    for &f in &followers {
        run.cluster.node_mut(f).proc.kill().expect("kill");
    }
    let acked: Vec<u64> = followers
        .iter()
        .map(|&f| {
            run.cluster
                .follower_match(leader, f)
                .unwrap_or_else(|| panic!("{name}: no match of {f} on leader {leader}"))
        })
        .collect();
    run.cluster.node_mut(leader).proc.kill().expect("kill");
    let mut rng = Rng::new(seed());
    let mut lost_total = 0;
    for (&f, &m) in followers.iter().zip(&acked) {
        let wal = run.cluster.node(f).data_dir.join("wal");
        let (lost, what) = power_cut(&wal, m, &mut rng);
        run.say(&format!("node {f}: {what}"));
        lost_total += lost;
    }
    run.say(&format!("{lost_total} unsynced bytes lost in all"));
    for id in run.cluster.ids() {
        run.cluster.node_mut(id).proc.restart().expect("restart");
    }
    or_fail(run.finish(&[]));
}
