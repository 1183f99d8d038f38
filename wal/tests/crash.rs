//! Crash images: cut power at every operation of random workloads, at every byte of the last
//! frames, with torn sectors and with any subset of unsynced sectors, then reopen and check
//! that every acknowledged step is there and nothing else but a prefix of later steps.
//!
//! Replay one workload with `WAL_SEED=<seed> cargo test -p ringraft-wal --test crash`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use common::*;
use ringraft_wal::sim::{CrashKeep, SimDisk};
use ringraft_wal::{Entry, Error, Wal};

static CRASH_STATES: AtomicU64 = AtomicU64::new(0);

/// Per crash model: states generated, opened, refused (corruption reported where allowed).
static PER_MODEL: Mutex<BTreeMap<&'static str, [u64; 3]>> = Mutex::new(BTreeMap::new());

fn count(model: &'static str, slot: usize) {
    PER_MODEL.lock().unwrap().entry(model).or_default()[slot] += 1;
}

/// A workload: steps and the model after each atomic unit (one record, or one marker).
struct Workload {
    steps: Vec<Step>,
    /// `states[k]` is the model after `k` atomic units; `units[s]` is the number of units
    /// after step `s` completed.
    states: Vec<Model>,
    units: Vec<usize>,
}

fn workload(seed: u64, steps: usize, payload_max: usize) -> Workload {
    let mut rng = Rng::new(seed);
    let mut m = Model::new();
    let mut term = 1;
    let mut w = Workload {
        steps: Vec::new(),
        states: vec![m.clone()],
        units: Vec::new(),
    };
    for _ in 0..steps {
        let before = m.clone();
        let step = random_step(&mut rng, &mut m, payload_max, &mut term);
        if let Step::Append(batch) = &step {
            let mut partial = before;
            for (t, p) in batch {
                partial.append(*t, p.clone());
                w.states.push(partial.clone());
            }
        } else {
            w.states.push(m.clone());
        }
        w.units.push(w.states.len() - 1);
        w.steps.push(step);
    }
    w
}

/// Submits a ticket-based step without waiting (appends, hard state, snapshot metadata).
fn submit(wal: &Wal, m: &Model, step: &Step) -> Option<ringraft_wal::Result<ringraft_wal::Ticket>> {
    Some(match step {
        Step::Append(batch) => {
            let start = m.next_index() - batch.len() as u64;
            let e = batch
                .iter()
                .enumerate()
                .map(|(i, (t, p))| Entry::new(start + i as u64, *t, p.clone()));
            wal.append(e.collect())
        }
        Step::HardState(hs) => wal.set_hard_state(*hs),
        Step::Snapshot(s) => wal.set_snapshot_meta(s.clone()),
        Step::Truncate(_) | Step::Compact(_) => return None,
    })
}

/// Runs the workload on `disk` until the disk dies; returns the number of acknowledged units.
/// Runs of up to three ticket-based steps are submitted before any is waited on, so that
/// they share one group commit (one write, one fdatasync) and a crash can tear between them.
fn run(w: &Workload, disk: &SimDisk) -> usize {
    let Ok(wal) = open(&disk.backend(), &sim_config()) else {
        return 0;
    };
    let mut acked = 0;
    let mut s = 0;
    while s < w.steps.len() {
        let mut tickets = Vec::new();
        while s < w.steps.len() && tickets.len() < 1 + s % 3 {
            match submit(&wal, &w.states[w.units[s]], &w.steps[s]) {
                Some(Ok(t)) => tickets.push((s, t)),
                Some(Err(_)) => return acked,
                None => break,
            }
            s += 1;
        }
        if tickets.is_empty() {
            match apply(&wal, &w.states[w.units[s]], &w.steps[s]) {
                Ok(()) => acked = w.units[s],
                Err(_) => return acked,
            }
            s += 1;
            continue;
        }
        for (step, t) in tickets {
            match t.wait() {
                Ok(_) => acked = w.units[step],
                Err(_) => return acked,
            }
        }
    }
    acked
}

/// Reopens a crash image and checks it against the workload.
fn check_image(w: &Workload, image: SimDisk, acked: usize, may_corrupt: bool, what: &str) {
    CRASH_STATES.fetch_add(1, Ordering::Relaxed);
    let model = MODELS
        .iter()
        .copied()
        .find(|m| what.ends_with(m))
        .expect("a known crash model");
    count(model, 0);
    let wal = match open(&image.backend(), &sim_config()) {
        Ok(wal) => {
            count(model, 1);
            wal
        }
        Err(Error::Corruption { .. }) if may_corrupt => {
            count(model, 2);
            return;
        }
        Err(e) => panic!("{what}: recovery failed: {e}"),
    };
    let got = Model::read(&wal);
    let ok = w.states[acked..].iter().any(|m| m.same(&got));
    assert!(
        ok,
        "{what}: recovered state matches no state at or after ack {acked}:\n{got:?}"
    );
    // The recovered log must accept the next record, and keep it across another reopen.
    let next = got.first + got.entries.len() as u64;
    let term = got.entries.last().map_or(0, |e| e.0) + 1000;
    wal.append(vec![Entry::new(next, term, "after")])
        .unwrap()
        .wait()
        .unwrap();
    drop(wal);
    let again: Wal = open(&image.backend(), &sim_config()).unwrap();
    assert_eq!(
        again.last_index(),
        next,
        "{what}: append after recovery lost"
    );
}

/// Names of the crash models below, as they end the `what` of each check.
const MODELS: [&str; 6] = [
    "synced only",
    "all written",
    "prefix",
    "torn sector",
    "sector subset",
    "byte",
];

fn crash_everywhere(seed: u64) {
    let w = workload(seed, 80, 300);
    let total_ops = {
        let disk = SimDisk::new();
        run(&w, &disk);
        disk.ops()
    };
    let mut rng = Rng::new(seed ^ 0xC0FFEE);
    for k in 0..=total_ops {
        let disk = SimDisk::new();
        disk.die_after_ops(k);
        let acked = run(&w, &disk);
        let unsynced = disk.unsynced_bytes();
        let what = |m: &str| format!("seed {seed} op {k} {m}");
        check_image(
            &w,
            disk.crash_image(CrashKeep::Prefix(0)),
            acked,
            false,
            &what("synced only"),
        );
        if unsynced == 0 {
            continue;
        }
        check_image(
            &w,
            disk.crash_image(CrashKeep::Prefix(unsynced)),
            acked,
            false,
            &what("all written"),
        );
        let n = rng.below(unsynced);
        check_image(
            &w,
            disk.crash_image(CrashKeep::Prefix(n)),
            acked,
            false,
            &what("prefix"),
        );
        let n = rng.below(unsynced);
        // Garbage in a sector breaks the atomic-sector assumption of the recovery rule: in the
        // last write group it cannot be told from a bit flip, so it may be refused.
        let keep = CrashKeep::TornSector(n, rng.next_u64());
        check_image(
            &w,
            disk.crash_image(keep),
            acked,
            true,
            &what("torn sector"),
        );
        let keep = CrashKeep::SectorSubset(rng.next_u64());
        check_image(
            &w,
            disk.crash_image(keep),
            acked,
            true,
            &what("sector subset"),
        );
        if k % 16 == 0 {
            // Every byte of the last frames of the unsynced write.
            for n in unsynced.saturating_sub(340)..unsynced {
                check_image(
                    &w,
                    disk.crash_image(CrashKeep::Prefix(n)),
                    acked,
                    false,
                    &what("byte"),
                );
            }
        }
    }
}

#[test]
fn crash_at_every_operation() {
    run_seeded(1000, 12, crash_everywhere);
    let n = CRASH_STATES.load(Ordering::Relaxed);
    eprintln!("crash states checked: {n}");
    for (model, [generated, opened, refused]) in PER_MODEL.lock().unwrap().iter() {
        eprintln!("crash model {model}: generated {generated}, opened {opened}, refused {refused}");
    }
    if std::env::var("WAL_SEED").is_err() {
        assert!(n >= 1000, "only {n} crash states");
    }
}
