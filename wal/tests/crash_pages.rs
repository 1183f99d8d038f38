//! Crash states under out-of-order persistence: concurrent appenders (three threads, group
//! commit) with truncation, compaction and hard state mixed in, both between rounds and from a
//! fourth thread while batches are in flight; power cut
//! at a random operation; of every file any subset of the dirty 4 KiB pages survives, and
//! directory operations survive only if a directory fsync followed them. A second model
//! crashes the process first (nothing lost), restarts, writes, then cuts power.
//!
//! Property: every state opens without operator action (`RecoveryMode::Strict`) and holds
//! every acknowledged record and marker, and nothing but a prefix of the later ones.
//!
//! Counts per model are printed (`--nocapture`). Replay with `WAL_SEED=<seed>`; run more
//! with `WAL_SEEDS=<n>`. Thread interleaving is not replayable, the property holds for any.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use common::*;
use ringraft_wal::sim::{CrashKeep, SimDisk};
use ringraft_wal::{Entry, Error, HardState, Wal};

/// Appending threads per round.
const APPENDERS: usize = 3;
/// Rounds per workload; each ends with a marker step on the main thread.
const ROUNDS: usize = 6;
/// Batches each appender submits per round.
const BATCHES_PER_APPENDER: usize = 4;
/// Crash points per workload, and page-subset images per crash point.
const CRASH_POINTS: u64 = 25;
const IMAGES_PER_POINT: usize = 4;

/// Counts of one crash model.
#[derive(Default)]
struct Counts {
    generated: AtomicU64,
    opened: AtomicU64,
    /// Opened with fewer steps than were submitted: recovery cut an unsynced tail.
    cut: AtomicU64,
    refused: AtomicU64,
}

static POWER: Counts = Counts::new();
static PROCESS_THEN_POWER: Counts = Counts::new();

impl Counts {
    const fn new() -> Counts {
        Counts {
            generated: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            cut: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }
    fn print(&self, name: &str) {
        eprintln!(
            "crash model {name}: generated {}, opened {}, cut {}, refused {}",
            self.generated.load(Ordering::Relaxed),
            self.opened.load(Ordering::Relaxed),
            self.cut.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        );
    }
}

/// The history of one run: the model after each unit (record or marker), in the order the
/// log accepted them, and how far acknowledgements reached.
struct History {
    states: Vec<Model>,
    acked: AtomicUsize,
}

impl History {
    fn push(&mut self, m: Model) -> usize {
        self.states.push(m);
        self.states.len() - 1
    }
}

/// Appends from `APPENDERS` threads; indexes are assigned and submitted under one lock so
/// that submission order is index order, then each thread waits outside it.
///
/// A fourth thread runs marker steps (truncation, compaction, hard state) while the
/// appenders' batches are in flight: the log quiesces for truncation and compaction and
/// orders hard state among the appends; the crash states must show the same order.
fn append_round(wal: &Wal, h: &Mutex<History>, rng_seed: u64, term: u64) -> bool {
    let failed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let failed_markers = &failed;
        s.spawn(move || {
            let mut rng = Rng::new(rng_seed ^ 0x3A4C);
            for _ in 0..1 + rng.below(2) {
                std::thread::yield_now();
                if !marker(wal, h, &mut rng, term) {
                    failed_markers.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        });
        for t in 0..APPENDERS {
            let failed = &failed;
            s.spawn(move || {
                let mut rng = Rng::new(rng_seed ^ ((t as u64 + 1) * 0x5151));
                for _ in 0..BATCHES_PER_APPENDER {
                    let ticket = {
                        let mut h = h.lock().unwrap();
                        let mut m = h.states.last().unwrap().clone();
                        let n = 1 + rng.below(3);
                        let start = m.next_index();
                        let mut entries = Vec::new();
                        let mut unit = 0;
                        for i in 0..n {
                            let p = payload(&mut rng, 300);
                            entries.push(Entry::new(start + i, term, p.clone()));
                            m.append(term, p);
                            unit = h.push(m.clone());
                        }
                        match wal.append(entries) {
                            Ok(t) => (t, unit),
                            Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                        }
                    };
                    match ticket.0.wait() {
                        Ok(_) => {
                            h.lock()
                                .unwrap()
                                .acked
                                .fetch_max(ticket.1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            });
        }
    });
    failed.load(Ordering::Relaxed) == 0
}

/// A marker step: on the main thread between rounds, or on the marker thread of a round
/// while appends are in flight. Acknowledgements only move forward (`fetch_max`): a marker
/// is ordered after every batch submitted before it.
fn marker(wal: &Wal, h: &Mutex<History>, rng: &mut Rng, term: u64) -> bool {
    let mut h = h.lock().unwrap();
    let mut m = h.states.last().unwrap().clone();
    let len = m.entries.len() as u64;
    let r = rng.below(4);
    let res = match r {
        0 if len > 0 => {
            let from = m.first + rng.below(len);
            m.truncate(from);
            wal.truncate_suffix(from)
        }
        // Compaction drops at least one entry: a no-op compaction writes nothing, so its
        // success says nothing of the batches before it (which may have failed once the
        // disk died) and must not count as their acknowledgement.
        1 if len > 0 => {
            let up_to = m.first + rng.below(len);
            m.compact(up_to);
            wal.compact_prefix(up_to)
        }
        _ => {
            let hs = HardState {
                term,
                vote: Some(rng.below(3)),
                commit: m.first,
            };
            m.hard_state = Some(hs);
            wal.set_hard_state(hs).and_then(|t| t.wait().map(|_| ()))
        }
    };
    let unit = h.push(m);
    match res {
        Ok(()) => {
            h.acked.fetch_max(unit, Ordering::Relaxed);
            true
        }
        Err(_) => false,
    }
}

/// Runs the concurrent workload on `disk` until it dies or ends.
fn run(seed: u64, disk: &SimDisk) -> History {
    let h = Mutex::new(History {
        states: vec![Model::new()],
        acked: AtomicUsize::new(0),
    });
    let Ok(wal) = open(&disk.backend(), &sim_config()) else {
        return h.into_inner().unwrap();
    };
    let mut rng = Rng::new(seed);
    for round in 0..ROUNDS as u64 {
        let term = round + 1;
        if !append_round(&wal, &h, rng.next_u64(), term) || !marker(&wal, &h, &mut rng, term) {
            break;
        }
    }
    drop(wal);
    h.into_inner().unwrap()
}

/// Opens `image` and checks it against the history; counts the outcome in `c`.
fn check(h: &History, image: &SimDisk, c: &Counts, what: &str) {
    c.generated.fetch_add(1, Ordering::Relaxed);
    let acked = h.acked.load(Ordering::Relaxed);
    let wal = match open(&image.backend(), &sim_config()) {
        Ok(wal) => wal,
        Err(e @ Error::Corruption { .. }) => {
            c.refused.fetch_add(1, Ordering::Relaxed);
            panic!("{what}: an ordinary crash state needs an operator: {e}");
        }
        Err(e) => panic!("{what}: recovery failed: {e}"),
    };
    c.opened.fetch_add(1, Ordering::Relaxed);
    let got = Model::read(&wal);
    let at = h.states[acked..].iter().position(|m| m.same(&got));
    let Some(at) = at else {
        panic!("{what}: recovered state matches no state at or after ack {acked}:\n{got:?}");
    };
    if acked + at + 1 < h.states.len() {
        c.cut.fetch_add(1, Ordering::Relaxed);
    }
    // The recovered log accepts the next record and keeps it across a reopen.
    let next = got.first + got.entries.len() as u64;
    let term = got.entries.last().map_or(0, |e| e.0) + 1000;
    wal.append(vec![Entry::new(next, term, Bytes::from_static(b"after"))])
        .unwrap()
        .wait()
        .unwrap();
    drop(wal);
    let again = open(&image.backend(), &sim_config()).unwrap();
    assert_eq!(
        again.last_index(),
        next,
        "{what}: append after recovery lost"
    );
}

/// Process crash at `disk`'s state, restart (recovery syncs what it read), a few more
/// appends, then a power cut with a page subset.
fn process_then_power(h: &History, disk: &SimDisk, seed: u64, what: &str) {
    let restarted = disk.process_crash();
    let Ok(wal) = open(&restarted.backend(), &sim_config()) else {
        panic!("{what}: restart after a process crash failed");
    };
    // After a process crash nothing is lost: the restarted log holds a state at or after
    // the acknowledged one, which it must keep through the power cut that follows.
    let got = Model::read(&wal);
    let acked = h.acked.load(Ordering::Relaxed);
    let at = h.states[acked..]
        .iter()
        .position(|m| m.same(&got))
        .unwrap_or_else(|| panic!("{what}: process crash lost acknowledged data"));
    let mut h2 = History {
        states: vec![h.states[acked + at].clone()],
        acked: AtomicUsize::new(0),
    };
    let mut m = got.clone();
    let mut rng = Rng::new(seed);
    // Power is cut after a random number of the restarted log's own operations.
    restarted.die_after_ops(rng.below(10));
    for _ in 0..3 {
        let next = m.next_index();
        let p = payload(&mut rng, 300);
        m.append(2000, p.clone());
        let unit = h2.push(m.clone());
        match wal
            .append(vec![Entry::new(next, 2000, p)])
            .and_then(|t| t.wait())
        {
            Ok(_) => h2.acked.store(unit, Ordering::Relaxed),
            Err(_) => break,
        }
    }
    drop(wal);
    let image = restarted.crash_image(CrashKeep::PageSubset(rng.next_u64()));
    check(&h2, &image, &PROCESS_THEN_POWER, what);
}

fn crash_workload(seed: u64) {
    let total_ops = run(seed, &SimDisk::new()).states.len() as u64 * 4;
    let mut rng = Rng::new(seed ^ 0xFA11);
    for p in 0..CRASH_POINTS {
        let k = rng.below(total_ops);
        let disk = SimDisk::new();
        disk.die_after_ops(k);
        let h = run(seed, &disk);
        for i in 0..IMAGES_PER_POINT {
            let what = format!("seed {seed} point {p} (op {k}) page subset {i}");
            check(
                &h,
                &disk.crash_image(CrashKeep::PageSubset(rng.next_u64())),
                &POWER,
                &what,
            );
        }
        let what = format!("seed {seed} point {p} (op {k}) process crash then power cut");
        process_then_power(&h, &disk, rng.next_u64(), &what);
    }
}

#[test]
fn concurrent_appenders_page_subsets_and_directory_loss() {
    run_seeded(7000, 20, crash_workload);
    POWER.print("power cut, any subset of dirty 4 KiB pages, unsynced directory ops lost");
    PROCESS_THEN_POWER.print("process crash, restart, appends, then power cut");
    let n = POWER.generated.load(Ordering::Relaxed)
        + PROCESS_THEN_POWER.generated.load(Ordering::Relaxed);
    if std::env::var("WAL_SEED").is_err() {
        assert!(n >= 1000, "only {n} crash states");
        assert!(
            POWER.cut.load(Ordering::Relaxed) > 0,
            "no state needed a cut"
        );
    }
}

static FLIPPED: Counts = Counts::new();

/// Power cut at a random operation, page subset kept, then one bit flipped in a frame that
/// an fdatasync covered before the cut: the open must refuse with the typed error.
fn flip_in_crash_state(seed: u64) {
    let total_ops = run(seed, &SimDisk::new()).states.len() as u64 * 4;
    let mut rng = Rng::new(seed ^ 0xF11B);
    for p in 0..CRASH_POINTS {
        let k = rng.below(total_ops);
        let disk = SimDisk::new();
        disk.die_after_ops(k);
        run(seed, &disk);
        let image = disk.crash_image(CrashKeep::PageSubset(rng.next_u64()));
        let (_, durable_names) = disk.names();
        let synced: Vec<(String, (usize, usize))> = durable_names
            .iter()
            .filter(|n| n.ends_with(".wal"))
            .flat_map(|n| {
                let file = disk.durable_file(n).unwrap();
                frames(&file)
                    .into_iter()
                    .map(move |(off, len, _)| (n.clone(), (off, len)))
            })
            .collect();
        if synced.is_empty() {
            continue;
        }
        let (name, (off, len)) = &synced[rng.below(synced.len() as u64) as usize];
        let at = off + rng.below(*len as u64) as usize;
        let bit = rng.below(8) as u8;
        image.flip_bit(name, at, bit);
        FLIPPED.generated.fetch_add(1, Ordering::Relaxed);
        match open(&image.backend(), &sim_config()) {
            Err(Error::Corruption { .. }) => {
                FLIPPED.refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => panic!("seed {seed} point {p}: {name} byte {at} bit {bit}: {e}"),
            Ok(_) => panic!(
                "seed {seed} point {p} (op {k}): {name} byte {at} bit {bit}: \
                 damage to a synced frame was cut silently"
            ),
        }
    }
}

#[test]
fn flipped_bit_in_a_synced_frame_of_a_crash_state_is_refused() {
    run_seeded(7500, 20, flip_in_crash_state);
    FLIPPED.print("power cut with page subset, then one bit flipped in a synced frame");
    if std::env::var("WAL_SEED").is_err() {
        assert!(FLIPPED.generated.load(Ordering::Relaxed) >= 300);
    }
}

/// Under the `cut instead of refuse` mutation the property above must fail, on the same
/// seeds. It used to try seed 7500 alone and failed once in five runs: the concurrent
/// appenders batch differently from run to run, so whether one seed's flips land in a last
/// write group (the only one the mutation cuts) can vary. Over the 20 seeds it was caught by
/// all 20 in three runs.
#[cfg(feature = "mutations")]
#[test]
fn mutation_cut_instead_of_refuse_turns_the_crash_state_bit_flips_red() {
    ringraft_wal::mutation::set_cut_refused(true);
    let seeds = seeds(7500, 20);
    let caught = seeds
        .iter()
        .filter(|&&seed| std::panic::catch_unwind(|| flip_in_crash_state(seed)).is_err())
        .count();
    ringraft_wal::mutation::set_cut_refused(false);
    eprintln!(
        "cut instead of refuse: caught by {caught} of {} seeds",
        seeds.len()
    );
    assert!(caught > 0, "the bit-flip check did not notice the mutation");
}
